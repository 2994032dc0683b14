// npm run repro and the generated "ours" column: numbers read from synthetic runs whose answer
// is known (the status column's tests are in paperVerdicts.test.ts), and real repro runs: one
// that completes, one whose study is refused (skipped with its reason, the rest still
// regenerated), one interrupted.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeCsv } from '../../harness/csv.js';
import { claimsOf } from '../../harness/paperRepro/claims.js';
import { PAPER_SOURCES } from '../../app/repro.js';
import { claimCells } from '../../harness/paperRepro/regenerate.js';
import { loadRunData, referenceRun } from '../../harness/paperRepro/runData.js';
import { CLI, cli, scratchDir } from '../helpers/helpers.js';

// Every row's claims, as repro fills them: a study without a run says so in its rows.
const CLAIMS = claimsOf(PAPER_SOURCES);

const REPO = path.resolve(path.dirname(CLI), '../..');

/** A complete netns run whose medians are given: ops/s per config and concurrency. */
function netnsRun(
  out: string,
  id: string,
  rates: Record<string, Record<number, number>>,
  options: Record<string, unknown> = {},
  trace: string[] = [],
): string {
  const dir = path.join(out, 'results', 'netns', id);
  fs.mkdirSync(dir, { recursive: true });
  const rows = Object.entries(rates).flatMap(([config, byC]) =>
    Object.entries(byC).map(([c, r]) => ({
      experiment: 'netns',
      config,
      concurrency: Number(c),
      ops_per_sec_median: r,
      ops_per_sec_with_teardown_median: r / 2,
    })),
  );
  writeCsv(path.join(dir, 'summary.csv'), rows);
  writeCsv(path.join(dir, 'data.csv'), rows);
  fs.writeFileSync(
    path.join(dir, 'meta.json'),
    JSON.stringify({
      experiment: 'netns',
      status: 'complete',
      options,
      sweep: { trace },
      environment: { hostname: 'box', kernel: { release: '6.1.0-test' }, cpu: { model: 'Test CPU', count: 4 } },
    }),
  );
  return dir;
}

const RATES = {
  'ipc+mnt+net+pid+uts': { 1: 400, 8: 1000, 64: 800 },
  'ipc+mnt+pid+uts': { 1: 2000, 8: 6000, 64: 4000 },
};

test('netns rows read peaks, the highest concurrency and their ratio from the run, with its id, machine and kernel', () => {
  const out = scratchDir();
  try {
    const run = loadRunData(out, netnsRun(out, '20260101-000000', RATES))!;
    const cells = claimCells(CLAIMS, new Map([['netns', { run }]]));
    const src = '[run 20260101-000000](results/netns/20260101-000000/) (box: Test CPU ×4, Linux 6.1.0-test)';
    // The five-namespace rate with teardown is half the creation rate in this run.
    assert.is(cells.get(1), `**500/s** peak (c=8), 400/s at c=64, with teardown waited; ${src}`);
    assert.is(cells.get(3), `**6,000/s** peak (c=8), 4,000/s at c=64; ${src}`);
    assert.is(cells.get(4), `**10.0x** at c=64 (4,000 / 400); 12.0x at the peaks (6,000 / 500); ${src}`);
    assert.match(cells.get(5)!, /^mntns not run: no complete run/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('the reference run is the newest full untraced one; a quick run says so beside its numbers', () => {
  const out = scratchDir();
  try {
    netnsRun(out, '20260101-000000', RATES);
    netnsRun(out, '20260102-000000', RATES, { quick: true });
    netnsRun(out, '20260103-000000', RATES, { quick: true }, ['locks']);
    assert.is(referenceRun(out, 'netns')!.id, '20260101-000000');
    fs.rmSync(path.join(out, 'results/netns/20260101-000000'), { recursive: true });
    const quick = referenceRun(out, 'netns')!;
    assert.is(quick.id, '20260102-000000', 'an untraced quick run before a traced one');
    assert.match(
      claimCells(CLAIMS, new Map([['netns', { run: quick }]])).get(1)!,
      '(box: Test CPU ×4, Linux 6.1.0-test, `--quick` sweep)',
    );
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('a run without the config a row needs says so in that row instead of a number', () => {
  const out = scratchDir();
  try {
    const run = loadRunData(out, netnsRun(out, '20260101-000000', { net: { 1: 100 } }))!;
    assert.match(
      claimCells(CLAIMS, new Map([['netns', { run }]])).get(3)!,
      /^not measured by \[run 20260101-000000\].*: no config ipc\+mnt\+pid\+uts/,
    );
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

/** Runs `sockbench repro` with the environment given; resolves with its exit code and output. */
function repro(
  args: string[],
  env: Record<string, string> = {},
  interruptAfterMs?: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'repro', '--no-setup', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      // Interrupt once the study is under way, as a user's Ctrl-C would.
      if (interruptAfterMs !== undefined && /\[1\/\d+\] netns/.test(stderr)) {
        setTimeout(() => child.kill('SIGINT'), interruptAfterMs);
        interruptAfterMs = undefined;
      }
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const record = (out: string) => {
  const dir = path.join(out, 'results', 'repro');
  const [stamp] = fs.readdirSync(dir);
  return JSON.parse(fs.readFileSync(path.join(dir, stamp!, 'repro.json'), 'utf8')) as {
    steps: { study: string; status: string; reason?: string; runDir?: string }[];
  };
};

test('repro runs a study, then regenerates paper-repro.md and the figures page from its run', async () => {
  const out = scratchDir();
  try {
    // A full run already there: the --quick run's figure goes in its own directory, not over the full one's.
    netnsRun(out, '20200101-000000', RATES);
    const r = await repro(['--quick', '--no-trace', '--studies', 'netns', '--out', out]);
    assert.is(r.code, 0, r.stderr);
    const [step] = record(out).steps;
    assert.is(step!.status, 'ran');
    const id = path.basename(step!.runDir!);
    const md = fs.readFileSync(path.join(out, 'paper-repro.md'), 'utf8');
    const row1 = md.split('\n').find((l) => l.startsWith('| 1 |'))!;
    assert.match(row1, `[run ${id}](results/netns/${id}/)`);
    assert.match(row1, '`--quick` sweep');
    // Studies not asked for and never run in this directory say so, not a stale number.
    assert.match(
      md.split('\n').find((l) => l.startsWith('| 13 |'))!,
      'zygote not run: no complete run',
    );
    const page = fs.readFileSync(path.join(out, 'figures', 'index.html'), 'utf8');
    assert.match(page, `src="../results/netns/${id}/figures/netns.svg"`);
    assert.ok(fs.statSync(path.join(out, 'results', 'netns', id, 'figures', 'netns.svg')).size > 1000);
    assert.not.ok(
      fs.existsSync(path.join(out, 'figures', 'netns.svg')),
      "the full run's shared figure is not replaced",
    );
    assert.match(r.stdout, /\| netns --quick +\| ran +\|/);
    // The user's own run says whether it reproduced each row, one line per row.
    assert.match(r.stdout, /^ {2}row 1 \(netns\): \S/m);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('a study refused for a missing feature is skipped with its reason, in the summary and its row; the rest still run', async () => {
  const out = scratchDir();
  try {
    // A base that does not exist: bench:engine's preflight refuses it with exit status 3.
    const r = await repro(['--quick', '--no-trace', '--studies', 'ipcuts,engine-overhead', '--out', out], {
      SOCK_BASE: path.join(out, 'no-base'),
    });
    assert.is(r.code, 0, r.stderr);
    const steps = record(out).steps;
    assert.equal(
      steps.map((s) => [s.study, s.status]),
      [
        ['ipcuts', 'ran'],
        ['engine-overhead', 'skipped'],
      ],
    );
    assert.match(steps[1]!.reason!, 'no usable base root file system');
    assert.match(r.stderr, 'repro: incomplete: 0 failed, 1 skipped');
    const md = fs.readFileSync(path.join(out, 'paper-repro.md'), 'utf8').split('\n');
    assert.match(
      md.find((l) => l.startsWith('| 16 |'))!,
      /engine-overhead not run: skipped: no usable base root file system/,
    );
    assert.match(
      md.find((l) => l.startsWith('| 9 |'))!,
      /plain clone [\d,–]+\/s/,
    );
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('Ctrl-C stops after the running study cleans up, exits 130 and leaves paper-repro.md as it was', async () => {
  const out = scratchDir();
  try {
    const before = 'a page that must not change\n';
    fs.writeFileSync(path.join(out, 'paper-repro.md'), before);
    const r = await repro(['--quick', '--no-trace', '--studies', 'netns,ipcuts', '--out', out], {}, 4000);
    assert.is(r.code, 130, r.stderr);
    assert.is(fs.readFileSync(path.join(out, 'paper-repro.md'), 'utf8'), before);
    assert.equal(
      record(out).steps.map((s) => [s.study, s.status]),
      [['netns', 'interrupted']],
    );
    assert.not.ok(fs.existsSync(path.join(out, 'figures', 'index.html')));
    // Whatever the interrupted study kept is marked interrupted, never complete.
    const runs = path.join(out, 'results', 'netns');
    for (const run of fs.existsSync(runs) ? fs.readdirSync(runs) : []) {
      assert.is(JSON.parse(fs.readFileSync(path.join(runs, run, 'meta.json'), 'utf8')).status, 'interrupted');
    }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('bad input: an unknown study, or paper-repro without runs to read, is refused with exit 2 and one line', async () => {
  const r = await cli(['repro', '--studies', 'netns,bogus', '--no-setup']);
  assert.is(r.code, 2);
  assert.is(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, "unknown study 'bogus'");
  const empty = scratchDir();
  try {
    const p = await cli(['paper-repro', '--out', empty]);
    assert.is(p.code, 2);
    assert.match(p.stderr, 'has no results/ directory');
    assert.equal(fs.readdirSync(empty), [], 'nothing written');
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
});

test('not root: repro is refused with exit 3 before anything runs', async () => {
  const out = scratchDir();
  try {
    fs.chmodSync(out, 0o777);
    const r = await cli(['repro', '--no-setup', '--studies', 'netns', '--out', out], { uid: 65534, gid: 65534 });
    assert.is(r.code, 3, r.stderr);
    assert.match(r.stderr, 'repro needs root');
    assert.equal(fs.readdirSync(out), []);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('the committed page and paper-repro.md cite only runs that exist', () => {
  const md = fs.readFileSync(path.join(REPO, 'paper-repro.md'), 'utf8');
  const links = [...md.matchAll(/\]\((results\/[^)]+)\)/g)].map((m) => m[1]!);
  assert.ok(links.length > 10);
  for (const l of links)
    assert.ok(fs.existsSync(path.join(REPO, l)), `paper-repro.md links to ${l}, which is not there`);
});

test.run();
