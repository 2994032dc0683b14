// A machine that boots without tracefs gets it mounted, and says so; one where that is not
// allowed gets a one-line reason. Run in a private mount namespace, so the host keeps its tracefs.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = `
  import fs from 'node:fs';
  const { probeTracing } = await import('${DIST}/harness/capabilities.js');
  const before = fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(' - tracefs ');
  const caps = await probeTracing();
  console.log(JSON.stringify({ before, tracefs: caps.tracefs, lockTracepoints: caps.lockTracepoints }));`;

interface Seen {
  before: boolean;
  tracefs: { path: string; mountedNow: boolean } | { error: string };
  lockTracepoints: { ok: boolean; why?: string };
}

// unshare(1) makes the private mount namespace before Node starts: Node's own threads could not.
function withoutTracefs(setpriv: string[]): Promise<Seen> {
  const shell = 'umount -a -t tracefs; exec "$@"';
  const argv = [
    '-m',
    '--propagation',
    'private',
    'sh',
    '-c',
    shell,
    'sh',
    ...setpriv,
    process.execPath,
    '--input-type=module',
    '-e',
    SCRIPT,
  ];
  return new Promise((resolve, reject) => {
    execFile('unshare', argv, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as Seen);
    });
  });
}

test('as root: tracefs is mounted when absent, and lock tracepoints then attach', async () => {
  const seen = await withoutTracefs([]);
  assert.is(seen.before, false);
  assert.equal(seen.tracefs, { path: '/sys/kernel/tracing', mountedNow: true });
  assert.equal(seen.lockTracepoints, { ok: true });
});

test('unprivileged: a one-line error saying root is needed', async () => {
  const seen = await withoutTracefs(['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups']);
  assert.is(seen.before, false);
  const error = (seen.tracefs as { error: string }).error;
  assert.match(error, /needs root/);
  assert.not.match(error, '\n');
  assert.equal(seen.lockTracepoints, { ok: false, why: 'needs root' });
});

test.run();
