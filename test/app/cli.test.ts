// The CLI contract, through the real binary: bad input is refused with exit 2 and nothing
// written, a missing privilege is exit 3, a run writes CSV, meta.json and a figure, and an
// interrupted run leaves no complete-looking CSV and no stray processes or sentinels.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readCsv } from '../../harness/csv.js';
import { CLI, cli, scratchDir } from '../helpers/helpers.js';

const sentinels = () => fs.readdirSync('/sys/class/net').filter((n) => n.startsWith('sbtd'));

for (const [flags, mention] of [
  [['--concurrency', '0'], '--concurrency'],
  [['--concurrency', 'abc'], '--concurrency'],
  [['--concurrency', '1,,2'], '--concurrency'],
  [['--namespaces', 'foo'], '--namespaces'],
  [['--namespaces', 'net+bogus'], '--namespaces'],
  [['--duration', '-1'], '--duration'],
  [['--duration', 'abc'], '--duration'],
  [['--repeat', '0'], '--repeat'],
  [['--duration', '1', '--ops', '5'], '--ops'],
  [['--no-such-flag'], 'no-such-flag'],
  [['--trace', 'foo'], '--trace'],
] as [string[], string][]) {
  test(`bad input ${flags.join(' ')}: exit 2, one line naming ${mention}, nothing written`, async () => {
    const out = scratchDir();
    try {
      const r = await cli(['run', 'netns', ...flags, '--out', out]);
      assert.is(r.code, 2, r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.is(lines.length, 1, `expected one line, got:\n${r.stderr}`);
      assert.match(lines[0]!, mention);
      assert.equal(fs.readdirSync(out), []);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
}

test('an unknown experiment is a usage error', async () => {
  const r = await cli(['run', 'nosuch']);
  assert.is(r.code, 2);
  assert.is(r.stderr.trim().split('\n').length, 1);
});

test('not root: exit 3 with a message saying what is missing, nothing written', async () => {
  const out = scratchDir();
  fs.chmodSync(out, 0o777);
  try {
    const r = await cli(['run', 'netns', '--quick', '--out', out], { uid: 65534, gid: 65534 });
    assert.is(r.code, 3, r.stderr);
    assert.match(r.stderr, /root/);
    assert.is(r.stderr.trim().split('\n').length, 1);
    assert.equal(fs.readdirSync(out), []);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('a run writes data.csv with the contract columns, meta.json and a rendered figure', async () => {
  const out = scratchDir();
  try {
    const r = await cli([
      'run',
      'netns',
      '--namespaces',
      'none,net,uts+ipc',
      '--concurrency',
      '1,2',
      '--duration',
      '0.2',
      '--repeat',
      '2',
      '--warmup',
      '0',
      '--out',
      out,
    ]);
    assert.is(r.code, 0, r.stderr);
    const runs = fs.readdirSync(path.join(out, 'results/netns'));
    assert.is(runs.length, 1);
    const dir = path.join(out, 'results/netns', runs[0]!);
    const header = fs.readFileSync(path.join(dir, 'data.csv'), 'utf8').split('\n')[0]!.split(',');
    for (const c of [
      'experiment',
      'config',
      'concurrency',
      'repeat',
      'ops',
      'seconds',
      'ops_per_sec',
      'p50_us',
      'p99_us',
      'ops_per_sec_with_teardown',
    ]) {
      assert.ok(header.includes(c), `data.csv lacks column ${c}`);
    }
    const rows = readCsv(path.join(dir, 'data.csv'));
    assert.is(rows.length, 3 * 2 * 2);
    assert.equal([...new Set(rows.map((x) => x.config))], ['none', 'net', 'ipc+uts']);
    for (const row of rows) {
      assert.ok(Number(row.ops) > 0 && Number(row.ops_per_sec) > 0, JSON.stringify(row));
      assert.ok(Number(row.p99_us) >= Number(row.p50_us));
      // Waiting for teardown can only lower the rate.
      assert.ok(Number(row.ops_per_sec_with_teardown) <= Number(row.ops_per_sec) + 1e-9);
      if (row.config === 'net') assert.ok(Number(row.teardown_s) > 0, 'net teardown is asynchronous and takes time');
    }
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
    assert.is(meta.status, 'complete');
    assert.is(meta.environment.kernel.release, os.release());
    assert.ok(meta.environment.commandLine.argv.join(' ').includes('--concurrency 1,2'));
    const spec = JSON.parse(fs.readFileSync(path.join(out, 'figures/netns.vl.json'), 'utf8'));
    assert.ok(Array.isArray(spec.layer));
    const svg = fs.readFileSync(path.join(out, 'figures/netns.svg'), 'utf8');
    assert.ok(svg.startsWith('<svg') && svg.includes('<path'));
    assert.match(r.stdout, '| config');
    assert.equal(sentinels(), [], 'teardown sentinels left behind');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('Ctrl-C: exit 130, no data.csv, meta.json says interrupted, no stray children or sentinels', async () => {
  const out = scratchDir();
  try {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'run',
        'netns',
        '--namespaces',
        'net,none',
        '--concurrency',
        '4',
        '--duration',
        '30',
        '--repeat',
        '1',
        '--warmup',
        '0',
        '--out',
        out,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    // Wait until the run directory exists (the run has started), then a little more.
    for (let i = 0; i < 100 && !fs.existsSync(path.join(out, 'results/netns')); i++)
      await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 800));
    const pid = child.pid!;
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    assert.is(code, 130, stderr);
    const dir = path.join(out, 'results/netns');
    const runs = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
    for (const run of runs) {
      assert.not.ok(fs.existsSync(path.join(dir, run, 'data.csv')), 'an interrupted run must not write data.csv');
      const meta = JSON.parse(fs.readFileSync(path.join(dir, run, 'meta.json'), 'utf8'));
      assert.is(meta.status, 'interrupted');
    }
    assert.not.ok(fs.existsSync(path.join(out, 'figures/netns.svg')));
    const orphans = fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/status`, 'utf8').includes(`\nPPid:\t${pid}\n`);
        } catch {
          return false;
        }
      });
    assert.equal(orphans, []);
    assert.equal(sentinels(), []);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('list and --help tell the truth', async () => {
  const list = await cli(['list']);
  assert.is(list.code, 0);
  assert.match(list.stdout, /^netns\s+/m);
  const help = await cli(['run', 'netns', '--help']);
  assert.is(help.code, 0);
  for (const flag of ['--concurrency', '--duration', '--repeat', '--quick', '--out', '--namespaces'])
    assert.match(help.stdout, flag);
});

test.run();
