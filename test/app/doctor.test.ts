// The doctor, through the real binary: it reports every piece in one table and exits 0
// whatever is missing; importing it does nothing.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const DOCTOR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../app/doctor.js');

function node(
  args: string[],
  options: { env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { ...options, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** feature -> [status, detail], from the Markdown table (cells may hold escaped pipes). */
function tableRows(stdout: string): Map<string, [string, string]> {
  const rows = new Map<string, [string, string]>();
  for (const line of stdout.split('\n').filter((l) => l.startsWith('| '))) {
    const [feature, status, detail] = line
      .slice(2, -2)
      .split(/ (?<!\\)\| /)
      .map((c) => c.trim());
    rows.set(feature!, [status!, detail ?? '']);
  }
  return rows;
}

test('doctor prints one table row per feature and exits 0, quickly', async () => {
  const started = Date.now();
  const r = await node([DOCTOR]);
  assert.is(r.code, 0, r.stderr);
  assert.ok(Date.now() - started < 15_000);
  const rows = tableRows(r.stdout);
  assert.ok(rows.has('feature'), r.stdout);
  for (const feature of [
    'root',
    'net namespace',
    'cgroup layout',
    'engine cgroups',
    'bpftrace',
    'kprobe',
    'dockerd',
    'python3',
  ])
    assert.ok(rows.has(feature), `no row for ${feature}`);
  for (const [feature, [status, detail]] of rows) {
    if (feature === 'feature') continue;
    assert.ok(['ok', 'missing', 'refused', 'partial'].includes(status), `${feature}: ${status}`);
    // Anything short of ok says what to do about it.
    if (status !== 'ok') assert.ok(detail.length > 0, `${feature} is ${status} with no hint`);
  }
  assert.is(rows.get('root')![0], 'ok');
  assert.is(rows.get('net namespace')![0], 'ok');
});

test('doctor still reports, exit 0, with nothing on PATH', async () => {
  const r = await node([DOCTOR], { env: { PATH: '/nonexistent' } });
  assert.is(r.code, 0, r.stderr);
  const rows = tableRows(r.stdout);
  assert.equal(rows.get('bpftrace'), ['missing', 'apt-get install bpftrace']);
  assert.is(rows.get('python3')![0], 'missing');
});

test('importing the doctor runs nothing', async () => {
  const r = await node(['--input-type=module', '-e', `await import('${DOCTOR}')`]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, '');
});

test.run();
