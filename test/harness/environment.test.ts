import os from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { captureEnvironment } from '../../harness/environment.js';

test('the environment of this machine is captured sensibly', async () => {
  const env = await captureEnvironment(['run', 'netns', '--quick']);
  assert.ok(!Number.isNaN(Date.parse(env.timestamp)));
  assert.is(env.hostname, os.hostname());
  assert.is(env.kernel.release, os.release());
  assert.ok(env.kernel.version.length > 0);
  assert.ok(Number.isInteger(env.cpu.count) && env.cpu.count > 0);
  assert.ok(env.cpu.governor === null || env.cpu.governor.length > 0);
  assert.ok(env.memoryBytes > 0);
  assert.is(env.loadavg.length, 3);
  assert.ok(['v1', 'v2', 'hybrid', 'none'].includes(env.cgroup.version));
  assert.is(env.cgroup.v2Mount === null, env.cgroup.version === 'v1' || env.cgroup.version === 'none');
  assert.is(env.cgroup.v1Controllers.length > 0, env.cgroup.version === 'v1' || env.cgroup.version === 'hybrid');
  assert.ok(
    env.cgroup.v1Controllers.every((c) => /^[a-z_]+$/.test(c)),
    env.cgroup.v1Controllers.join(','),
  );
  assert.is(env.tools.node, process.version);
  assert.ok(Object.values(env.tools).every((v) => v === null || (v.length > 0 && !v.includes('\n'))));
  assert.ok(
    env.git === null ||
      (typeof env.git.dirty === 'boolean' && (env.git.commit === null || /^[0-9a-f]{40}$/.test(env.git.commit))),
  );
  assert.equal(env.commandLine, { argv: ['run', 'netns', '--quick'], cwd: process.cwd() });
  assert.is(env.user.euid, process.geteuid?.());
});

test.run();
