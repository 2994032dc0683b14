// The worker with its three caches on, as a user runs it: packages from requirements.txt
// installed once (Debian's PyYAML, whose C extension needs libyaml inside the sandbox, and pip
// from a wheelhouse built here), sandboxes forked from zygotes that imported them, frozen
// instances thawed for the next request, and a kill -9 that leaves nothing running.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mountsUnder } from '../../engine/state/mountinfo.js';
import {
  lambda,
  poolCgroups,
  postStarted as post,
  removeScratch,
  startWorker,
  tasksIn,
  type RunningWorker,
} from '../helpers/sockWorker.js';
import { wheel } from '../helpers/wheelhouse.js';

function requires(registry: string, name: string, ...packages: string[]): void {
  fs.writeFileSync(path.join(registry, name, 'requirements.txt'), `${packages.join('\n')}\n`);
}

const YAML =
  'import yaml\ndef f(event):\n    return [yaml.__with_libyaml__, yaml.load("a: [1, 2]", Loader=yaml.CLoader)]\n';

const caches = suite('worker with caches: install, import and handler caches');
let w: RunningWorker;

caches.before(async () => {
  w = await startWorker({ caches: true, args: ['--zygote-threshold', '1'] });
});

caches.after(async () => {
  const stateDir = w.stateDir;
  assert.is(await w.stop('SIGTERM'), 0);
  assert.equal(mountsUnder(fs.realpathSync(stateDir)), [], 'no mount left: sandboxes, zygotes, installs');
  assert.equal(poolCgroups(stateDir), []);
});

caches("a lambda's second request is a thawed instance; a new version starts anew", async () => {
  lambda(w.registry, 'count', 'n = 0\ndef f(event):\n    global n\n    n += 1\n    return n\n');
  assert.equal(await post(w.url, 'count', ''), { status: 200, body: 1, start: 'zygote:root' });
  assert.equal(await post(w.url, 'count', ''), { status: 200, body: 2, start: 'warm' }, 'the same process, thawed');
  lambda(w.registry, 'count', 'n = 10\ndef f(event):\n    global n\n    n += 1\n    return n\n');
  assert.equal(await post(w.url, 'count', ''), { status: 200, body: 11, start: 'zygote:root' });
});

caches(
  "requirements are installed once from Debian, and their native library loads in a lean start and in a zygote's fork",
  async () => {
    lambda(w.registry, 'yaml1', YAML);
    requires(w.registry, 'yaml1', 'PyYAML');
    const first = await post(w.url, 'yaml1', '');
    assert.equal(first, { status: 200, body: [true, { a: [1, 2] }], start: 'zygote:pyyaml' });
    lambda(w.registry, 'yaml2', YAML);
    requires(w.registry, 'yaml2', 'pyyaml');
    assert.equal(
      await post(w.url, 'yaml2', ''),
      { status: 200, body: [true, { a: [1, 2] }], start: 'zygote:pyyaml' },
      'another lambda forks from the zygote that has yaml',
    );
    const s = (await (await fetch(`${w.url}/status`)).json()) as any;
    assert.is(s.caches.install.installs, 1, 'installed once for both lambdas');
    assert.ok(s.caches.import.zygotes.some((z: { packages: string }) => z.packages === 'pyyaml'));
    assert.ok(s.caches.handler.idle >= 1);
  },
);

caches(
  'a requirement that cannot be installed is a 500 install error naming it; the lambda works once it is fixed',
  async () => {
    lambda(w.registry, 'missing', 'def f(event):\n    return 1\n');
    requires(w.registry, 'missing', 'no-such-package-sockbench');
    const r = await post(w.url, 'missing', '');
    assert.is(r.status, 500);
    assert.is(r.body.kind, 'install');
    assert.match(r.body.error, 'no-such-package-sockbench');
    assert.not.match(r.body.error, '\n');
    requires(w.registry, 'missing', 'six');
    assert.equal((await post(w.url, 'missing', '')).status, 200);
  },
);

caches.run();

const pip = suite('worker with caches: pip from a wheelhouse');

pip('pip installs from --pip-find-links; a failed install is retried cleanly once its dependency appears', async () => {
  const wheels = path.join(fs.mkdtempSync('/tmp/sb-test-wheels-'));
  // pip runs as the install user, who must be able to read the wheels (mkdtemp makes 0700).
  fs.chmodSync(wheels, 0o755);
  wheel(wheels, 'sbdemo', '1.2');
  wheel(wheels, 'sbneeds', '0.1', 'sbdep');
  const p = await startWorker({ caches: true, args: ['--installer', 'pip', '--pip-find-links', wheels] });
  try {
    lambda(p.registry, 'demo', 'import sbdemo\ndef f(event):\n    return sbdemo.hello()\n');
    requires(p.registry, 'demo', 'sbdemo==1.2');
    assert.equal((await post(p.url, 'demo', '')).body, 'hello from sbdemo');
    lambda(p.registry, 'needs', 'import sbneeds\ndef f(event):\n    return sbneeds.VERSION\n');
    requires(p.registry, 'needs', 'sbneeds');
    const failed = await post(p.url, 'needs', '');
    assert.is(failed.status, 500);
    assert.is(failed.body.kind, 'install');
    assert.match(failed.body.error, 'sbneeds');
    wheel(wheels, 'sbdep', '1.0');
    assert.equal(await post(p.url, 'needs', ''), { status: 200, body: '0.1', start: 'zygote:root' });
  } finally {
    assert.is(await p.stop('SIGINT'), 0);
    fs.rmSync(wheels, { recursive: true, force: true });
  }
});

pip.run();

const crash = suite('worker with caches: after kill -9');

crash(
  'zygotes, their forks and frozen instances all die with a killed worker; the next one removes what is left',
  async () => {
    const first = await startWorker({ caches: true, args: ['--zygote-threshold', '1', '--installer', 'off'] });
    lambda(first.registry, 'idle', 'def f(event):\n    return 1\n');
    assert.is((await post(first.url, 'idle', '')).status, 200);
    lambda(first.registry, 'sleep', 'import time\ndef f(event):\n    time.sleep(60)\n');
    const pending = post(first.url, 'sleep', '').catch(() => 'no answer');
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(
      tasksIn(poolCgroups(first.stateDir)).length >= 3,
      'reaper, root zygote, a frozen instance and a running one',
    );
    await first.stop('SIGKILL');
    await pending;
    // The reaper had PDEATHSIG: its namespace, and every fork in it, dies; but a frozen task
    // (cgroup v1 freezer) takes its SIGKILL only once thawed, which the next start does.
    const frozen = () => tasksIn(poolCgroups(first.stateDir)).filter((pid) => fs.existsSync(`/proc/${pid}`));
    for (let i = 0; i < 200 && new Set(frozen()).size > 1; i++) await new Promise((r) => setTimeout(r, 25));
    const left = [...new Set(frozen())];
    assert.ok(left.length <= 1, `only the frozen instance is left: ${left}`);
    const second = await startWorker({
      caches: true,
      registry: first.registry,
      stateDir: first.stateDir,
      args: ['--installer', 'off'],
    });
    assert.match(second.log(), 'removed what a previous engine left');
    assert.equal(
      left.filter((pid) => fs.existsSync(`/proc/${pid}`)),
      [],
      'the next start thawed and killed it',
    );
    assert.is((await post(second.url, 'idle', '')).status, 200);
    assert.is(await second.stop('SIGINT'), 0);
    assert.equal(mountsUnder(fs.realpathSync(second.stateDir)), []);
    assert.equal(poolCgroups(second.stateDir), []);
    removeScratch();
  },
);

crash.run();
