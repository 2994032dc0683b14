// npm run compare on synthetic result sets whose answer is known: a clear slowdown fails the
// gate, a clear speed-up and noise do not, and runs that cannot be compared are refused.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readCsv, writeCsv } from '../../harness/csv.js';
import { cli, scratchDir } from '../helpers/helpers.js';

interface Synthetic {
  experiment?: string;
  options?: Record<string, unknown>;
  hostname?: string;
  /** ops_per_sec of each repetition, per config at concurrency 1 */
  rates: Record<string, number[]>;
}

function writeRun(root: string, name: string, s: Synthetic): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  const experiment = s.experiment ?? 'netns';
  const rows = Object.entries(s.rates).flatMap(([config, rates]) =>
    rates.map((r, i) => ({
      experiment,
      config,
      concurrency: 1,
      repeat: i + 1,
      ops: r,
      seconds: 1,
      ops_per_sec: r,
      p50_us: 1e6 / r,
      p99_us: 2e6 / r,
      mean_us: 1e6 / r,
    })),
  );
  writeCsv(path.join(dir, 'data.csv'), rows);
  fs.writeFileSync(
    path.join(dir, 'meta.json'),
    JSON.stringify({
      experiment,
      status: 'complete',
      options: { _: ['run', experiment], method: 'clone', ...s.options },
      environment: { hostname: s.hostname ?? 'vm', kernel: { release: '6.18' }, cpu: { model: 'AMD EPYC', count: 2 } },
    }),
  );
  return dir;
}

const base = [1000, 1010, 990, 1005, 995, 1002, 998];
const scaled = (k: number) => base.map((x) => x * k);

test('a clear slowdown is worse and fails --fail-on-regression; the ratio and its interval are reported', async () => {
  const root = scratchDir();
  try {
    const a = writeRun(root, 'a', { rates: { net: base, none: base } });
    const b = writeRun(root, 'b', { rates: { net: scaled(0.5), none: base } });
    const r = await cli(['compare', a, b, '--fail-on-regression', '10', '--out', root]);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, 'regression: 3 metrics worse by more than 10%');
    assert.match(
      r.stdout,
      /\| net concurrency=1 +\| ops_per_sec \| 1,000 +\| 500 +\| 0\.500 \[0\.49\d, 0\.50\d\] \| worse/,
    );
    assert.match(r.stdout, /\| none concurrency=1 +\| ops_per_sec .*\| same/);
    assert.ok(fs.existsSync(path.join(root, 'compare', 'netns-a-vs-b', 'compare.csv')));
    assert.ok(fs.existsSync(path.join(root, 'compare', 'netns-a-vs-b', 'figures', 'compare.svg')));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a speed-up, and a change within the threshold, pass the gate', async () => {
  const root = scratchDir();
  try {
    const a = writeRun(root, 'a', { rates: { net: base } });
    const faster = await cli([
      'compare',
      a,
      writeRun(root, 'b', { rates: { net: scaled(2) } }),
      '--fail-on-regression',
      '10',
      '--out',
      root,
    ]);
    assert.is(faster.code, 0, faster.stderr);
    assert.match(faster.stdout, /ops_per_sec .*\| better/);
    const slightly = await cli([
      'compare',
      a,
      writeRun(root, 'c', { rates: { net: scaled(0.95) } }),
      '--fail-on-regression',
      '10',
      '--out',
      root,
    ]);
    assert.is(slightly.code, 0, slightly.stderr);
    assert.match(slightly.stdout, /ops_per_sec .*\| same/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('runs of different experiments, or of different measuring options, are refused with exit 2', async () => {
  const root = scratchDir();
  try {
    const a = writeRun(root, 'a', { rates: { net: base } });
    const other = await cli([
      'compare',
      a,
      writeRun(root, 'b', { experiment: 'mntns', rates: { net: base } }),
      '--out',
      root,
    ]);
    assert.is(other.code, 2);
    assert.is(other.stderr.trim().split('\n').length, 1, other.stderr);
    assert.match(other.stderr, 'cannot compare a run of netns with a run of mntns');
    const method = await cli([
      'compare',
      a,
      writeRun(root, 'c', { options: { method: 'unshare' }, rates: { net: base } }),
      '--out',
      root,
    ]);
    assert.is(method.code, 2);
    assert.match(method.stderr, '--method "clone" against "unshare"');
    const missing = await cli(['compare', a, path.join(root, 'nope'), '--out', root]);
    assert.is(missing.code, 2);
    assert.match(missing.stderr, 'no such run');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('runs from different machines are compared, and the difference is said', async () => {
  const root = scratchDir();
  try {
    const r = await cli([
      'compare',
      writeRun(root, 'a', { rates: { net: base } }),
      writeRun(root, 'b', { hostname: 'other', rates: { net: base } }),
      '--out',
      root,
    ]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, 'different machines (hostname: vm against other)');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('two runs traced for locks: waits per operation made, side by side, with the ones that went away', async () => {
  const root = scratchDir();
  try {
    // B made twice the containers with the same total wait on the mutex: half the wait per container.
    const a = writeRun(root, 'a', { rates: { net: [1000, 1000, 1000] } });
    const b = writeRun(root, 'b', { rates: { net: [2000, 2000, 2000] } });
    const locks = (paths: Record<string, number>) =>
      [1, 2, 3].flatMap((repeat) =>
        Object.entries(paths).map(([callPath, us]) => ({
          config: 'net',
          concurrency: 1,
          repeat,
          lock: `mutex in ${callPath}`,
          kind: 'mutex',
          call_path: callPath,
          operation: 'create',
          contentions: 10,
          wait_total_us: us,
          wait_max_us: us / 10,
        })),
      );
    writeCsv(path.join(a, 'locks.csv'), locks({ setup_net: 30000, 'addrconf_init_net <- ops_init': 12000 }));
    writeCsv(path.join(b, 'locks.csv'), locks({ setup_net: 30000 }));
    const r = await cli(['compare', a, b, '--out', root]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, 'Lock waits per operation');
    const dir = path.join(root, 'compare', fs.readdirSync(path.join(root, 'compare'))[0]!);
    const rows = Object.fromEntries(
      readCsv(path.join(dir, 'lock-waits.csv')).map((w) => [w.path, [w.a_us_per_op, w.b_us_per_op]]),
    );
    assert.equal(rows['create: setup_net'], [30, 15]);
    assert.equal(rows['create: addrconf_init_net <- ops_init'], [12, 0]);
    assert.ok(fs.existsSync(path.join(dir, 'figures/lock-waits.svg')));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test.run();
