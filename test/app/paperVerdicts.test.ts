// paper-repro.md's generated status column: the standard tolerances against numbers whose answer
// is known (within, outside, at the edge, missing), the overall verdict a row's checks add up to,
// every claim carrying a check that quotes the paper's number, only the generated columns
// rewritten, and `sockbench paper-repro` writing and printing the verdicts of synthetic runs.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PAPER_SOURCES } from '../../app/repro.js';
import { writeCsv } from '../../harness/csv.js';
import { claimsOf } from '../../harness/paperRepro/claims.js';
import { rewriteClaimsTable } from '../../harness/paperRepro/regenerate.js';
import { MissingData, type Cells, type RunData } from '../../harness/paperRepro/runData.js';
import {
  flat,
  sameDirection,
  stopsGrowingPast,
  underBound,
  withinFactor,
} from '../../harness/paperRepro/tolerances.js';
import { rowVerdicts, verdictWord, type Judged } from '../../harness/paperRepro/verdict.js';
import type { ClaimCheck } from '../../harness/types.js';
import { cli, scratchDir } from '../helpers/helpers.js';

const CLAIMS = claimsOf(PAPER_SOURCES);

/** A run held in memory: only what the checks read. */
function runOf(summary: Cells[], study = 'netns'): RunData {
  return {
    rel: `results/${study}/20260101-000000`,
    id: '20260101-000000',
    study,
    quick: false,
    traced: false,
    machine: 'box: Test CPU ×4',
    kernel: '6.1.0-test',
    emulated: false,
    summary,
    notes: {},
    data: () => summary,
  };
}

/** netns summary rows: creation rates by config and concurrency; the rate with teardown waited is half. */
function netnsRows(rates: Record<string, Record<number, number>>): Cells[] {
  return Object.entries(rates).flatMap(([config, byC]) =>
    Object.entries(byC).map(([c, r]) => ({
      config,
      concurrency: Number(c),
      ops_per_sec_median: r,
      ops_per_sec_with_teardown_median: r / 2,
    })),
  );
}

const FIVE = 'ipc+mnt+net+pid+uts';
const FOUR = 'ipc+mnt+pid+uts';

const one = (v: number) => () => [v];

test('within 2x: inside the band and at its edges holds, outside it does not, either way; the band is stated', () => {
  const check = (v: number) =>
    withinFactor({ paper: '~200/s', value: 200, unit: '/s', what: 'the peak', measure: one(v) });
  assert.is(check(200).tolerance, "within 2x of the paper's ~200/s (the peak: 100–400/s)");
  assert.is(check(200).judges, 'size');
  const run = runOf([]);
  assert.equal(check(100).judge(run), { ours: '100/s', holds: true });
  assert.equal(check(400).judge(run), { ours: '400/s', holds: true });
  assert.equal(check(401).judge(run), { ours: '401/s', holds: false });
  assert.equal(check(99).judge(run), { ours: '99/s', holds: false });
  // Every value measured must be inside: a range holds only when both ends do.
  const both = withinFactor({ paper: '2x', value: 2, unit: 'x', what: 'the ratios', measure: () => [1.5, 4.4] });
  assert.equal(both.judge(run), { ours: '1.5–4.4x', holds: false });
});

test('same direction: every ratio above 1; an upper bound within 2x: every value under twice it', () => {
  const run = runOf([]);
  const direction = (ratios: number[]) =>
    sameDirection({ paper: '4.5x', ratio: 'without over with', ratios: () => ratios });
  assert.is(direction([2]).tolerance, "same direction as the paper's 4.5x (ratio > 1: without over with)");
  assert.equal(direction([1.2, 6]).judge(run), { ours: '1.2–6x', holds: true });
  assert.equal(direction([1, 6]).judge(run), { ours: '1–6x', holds: false });
  const bound = (values: number[]) =>
    underBound({ paper: '< 1 µs', bound: 1, unit: ' µs', what: 'p50', measure: () => values });
  assert.is(bound([1]).tolerance, "within 2x of the paper's < 1 µs (p50: under 2 µs)");
  assert.equal(bound([0.4, 1.9]).judge(run), { ours: '0.4–1.9 µs', holds: true });
  assert.equal(bound([1.5, 2]).judge(run), { ours: '1.5–2 µs', holds: false });
});

test('shapes: flat within 2x across concurrency; stops growing past a concurrency; too few points is missing data', () => {
  const run = runOf([]);
  const flatness = (series: number[][]) => flat({ paper: 'flat', what: 'each rate', series: () => series });
  assert.is(flatness([]).tolerance, 'flat: each rate within 2x across concurrency (the paper: flat)');
  assert.equal(
    flatness([
      [10, 15],
      [8, 16],
    ]).judge(run),
    { ours: '2x apart at most', holds: true },
  );
  assert.equal(
    flatness([
      [10, 15],
      [8, 17],
    ]).judge(run),
    { ours: '2.13x apart at most', holds: false },
  );
  assert.throws(
    () => flatness([[10]]).judge(run),
    (e: Error) => e instanceof MissingData,
  );
  const growth = (rates: [number, number][]) =>
    stopsGrowingPast({ paper: 'a peak', c: 8, unit: '/s', rates: () => rates.map(([c, v]) => ({ c, v })) });
  assert.equal(
    growth([
      [1, 100],
      [8, 200],
      [64, 390],
    ]).judge(run),
    {
      ours: '390/s above c=8 against 200/s up to it',
      holds: true,
    },
  );
  assert.is(
    growth([
      [1, 100],
      [4, 200],
      [16, 400],
    ]).judge(run).holds,
    false,
  );
  assert.throws(
    () =>
      growth([
        [1, 100],
        [8, 200],
      ]).judge(run),
    /no concurrency above 8/,
  );
  // A point the run lacks is never judged as a number.
  const nan = withinFactor({ paper: '2x', value: 2, unit: 'x', what: 'r', measure: one(NaN) });
  assert.throws(
    () => nan.judge(run),
    (e: Error) => e instanceof MissingData,
  );
});

test('the overall verdict: all held, some, none; a name fails if any of its checks did; unmeasured ones say so', () => {
  const check = (judges: string): ClaimCheck => ({
    judges,
    paper: 'p',
    tolerance: 't',
    judge: () => ({ ours: '', holds: true }),
  });
  const held = (judges: string): Judged => ({ check: check(judges), ours: '1x', holds: true });
  const failed = (judges: string): Judged => ({ check: check(judges), ours: '9x', holds: false });
  const missing = (judges: string): Judged => ({ check: check(judges), missing: 'no such point' });
  assert.is(verdictWord([held('direction'), held('size')]), 'reproduced');
  assert.is(verdictWord([held('direction'), failed('size')]), 'reproduced in direction, not in size');
  assert.is(verdictWord([failed('direction'), failed('size')]), 'not reproduced');
  assert.is(
    verdictWord([held('direction'), failed('direction'), held('shape')]),
    'reproduced in shape, not in direction',
  );
  assert.is(
    verdictWord([held('install'), held('import'), failed('download')]),
    'reproduced in install and import, not in download',
  );
  assert.is(verdictWord([held('direction'), missing('size')]), 'reproduced in direction, size not measured');
  assert.is(verdictWord([failed('size'), missing('shape')]), 'not reproduced in size, shape not measured');
  assert.is(verdictWord([missing('size')]), 'not measured');
});

test("netns rows' status from runs whose answer is known: one like the paper's, one unlike it, one lacking a config, one not run", () => {
  // With teardown waited (half these rates): all five peak at 200/s and stop growing; without net 900/s; 4.5x at c=64.
  const likePaper = runOf(netnsRows({ [FIVE]: { 1: 300, 8: 400, 64: 380 }, [FOUR]: { 1: 500, 8: 900, 64: 855 } }));
  const like = rowVerdicts(CLAIMS, new Map([['netns', { run: likePaper }]]));
  assert.is(like.get(1)!.word, 'reproduced');
  assert.is(like.get(3)!.word, 'reproduced');
  assert.is(like.get(4)!.word, 'reproduced');
  assert.is(
    like.get(4)!.cell,
    "**reproduced**: direction, same direction as the paper's 4.5x (ratio > 1: the rate without the network namespace over with it, at the highest concurrency): 4.5x, holds; size, within 2x of the paper's 4.5x (that ratio: 2.25–9x): 4.5x, holds",
  );
  // Today's kernel: five times the paper's rates, still growing past c=8, 10x at c=64.
  const unlike = runOf(netnsRows({ [FIVE]: { 1: 400, 8: 1000, 64: 2400 }, [FOUR]: { 1: 2000, 8: 6000, 64: 12000 } }));
  const got = rowVerdicts(CLAIMS, new Map([['netns', { run: unlike }]]));
  assert.is(got.get(1)!.word, 'not reproduced');
  assert.match(
    got.get(1)!.cell,
    "size, within 2x of the paper's ~200/s (the peak rate with all five: 100–400/s): 1,200/s, does not hold",
  );
  assert.match(got.get(1)!.cell, '1,200/s above c=8 against 500/s up to it, does not hold');
  assert.match(got.get(1)!.cell, /; see below$/);
  assert.is(got.get(4)!.word, 'reproduced in direction, not in size');
  const noFour = rowVerdicts(CLAIMS, new Map([['netns', { run: runOf(netnsRows({ [FIVE]: { 1: 400, 8: 1000 } })) }]]));
  assert.is(noFour.get(3)!.word, 'not measured');
  assert.match(noFour.get(3)!.cell, /size, .*: not measured: no config ipc\+mnt\+pid\+uts/);
  // A study that did not run says so, whatever its checks; rows of other studies are unaffected.
  const skipped = rowVerdicts(CLAIMS, new Map([['netns', { skipped: 'skipped: no bpftrace' }]]));
  assert.equal(skipped.get(1), { word: 'not run', cell: '**not run**' });
  assert.is(skipped.get(5)!.word, 'not run', 'a study with no outcome at all has not run either');
});

test("a row read from two studies: one not run leaves the other's checks judged and says which did not run", () => {
  const resize = runOf(
    ['cold', 'cold+', 'warm'].map((config, i) => ({ config, platform_ms_median: [90, 20, 2][i]! })),
    'resize',
  );
  const row = rowVerdicts(CLAIMS, new Map([['resize', { run: resize }]])).get(14)!;
  assert.is(row.word, 'reproduced in size, direction not measured');
  assert.match(row.cell, '45x, holds');
  assert.match(row.cell, 'not measured: scale not run');
});

test("every claim has a check whose tolerance quotes the paper's number; caveats hold no numbers", () => {
  assert.ok(CLAIMS.length >= 15);
  for (const claim of CLAIMS) {
    assert.ok(claim.checks.length > 0, `row ${claim.row} (${claim.study}) has no check`);
    for (const check of claim.checks) {
      assert.ok(check.judges.length > 0, `row ${claim.row}: a check names what it judges`);
      assert.ok(check.paper.length > 0, `row ${claim.row}: ${check.judges} names the paper's number`);
      assert.match(
        check.tolerance,
        check.paper,
        `row ${claim.row}: ${check.judges}'s tolerance quotes the paper's ${check.paper}`,
      );
    }
    // A caveat is the same for every run, so a number in it would be a number no run made.
    if (claim.caveat) assert.not.match(claim.caveat, /\d/, `row ${claim.row}'s caveat: ${claim.caveat}`);
  }
});

test('only the claims table\'s "ours" and "status" columns are rewritten, and only in rows with claims', () => {
  const md = [
    'intro | with a pipe',
    '| # | study | ours | status |',
    '|---|---|---|---|',
    '| 1 | netns | old **1/s** | typed \\| by hand |',
    '| 2 | none | untouched | kept |',
    '|  10 |  spaced   | as typed | kept |',
    '',
    '| 1 | another table | 5 | 6 |',
  ].join('\n');
  const out = rewriteClaimsTable(md, {
    ours: new Map([
      [1, 'new a|b'],
      [2, 'also new'],
    ]),
    status: new Map([[1, '**reproduced**: size, within 2x|3x']]),
  });
  assert.equal(out.split('\n'), [
    'intro | with a pipe',
    '| # | study | ours | status |',
    '|---|---|---|---|',
    '| 1 | netns | new a\\|b | **reproduced**: size, within 2x\\|3x |',
    '| 2 | none | also new | kept |',
    '|  10 |  spaced   | as typed | kept |',
    '',
    '| 1 | another table | 5 | 6 |',
  ]);
  const empty = { ours: new Map(), status: new Map() };
  assert.throws(() => rewriteClaimsTable('no table here', empty), /no claims table/);
  assert.throws(
    () => rewriteClaimsTable('| # | study | ours |\n|---|---|---|\n| 1 | x | y |', empty),
    /with "ours" and "status" columns/,
  );
});

test('sockbench paper-repro writes each row\'s status from the runs there, "not run" where there is none, and prints the verdicts', async () => {
  const out = scratchDir();
  try {
    const dir = path.join(out, 'results', 'netns', '20260101-000000');
    fs.mkdirSync(dir, { recursive: true });
    const rows = netnsRows({ [FIVE]: { 1: 300, 8: 400, 64: 380 }, [FOUR]: { 1: 500, 8: 900, 64: 855 } }).map((r) => ({
      experiment: 'netns',
      ...r,
    }));
    writeCsv(path.join(dir, 'summary.csv'), rows);
    writeCsv(path.join(dir, 'data.csv'), rows);
    fs.writeFileSync(
      path.join(dir, 'meta.json'),
      JSON.stringify({ experiment: 'netns', status: 'complete', options: {}, sweep: { trace: [] }, environment: {} }),
    );
    const r = await cli(['paper-repro', '--out', out]);
    assert.is(r.code, 0, r.stderr);
    const md = fs.readFileSync(path.join(out, 'paper-repro.md'), 'utf8').split('\n');
    const status = (n: number) =>
      md
        .find((l) => l.startsWith(`| ${n} |`))!
        .split(' | ')
        .at(-1)!;
    assert.match(status(4), /^\*\*reproduced\*\*: direction, same direction as the paper's 4\.5x/);
    assert.is(status(13), '**not run** |');
    assert.match(status(10), 'not reproduced: it counts imports', 'a row without claims keeps its typed status');
    assert.is(status(2), '**not run** |', 'row 2 reads a kernels run, and there is none');
    assert.match(r.stdout, /^ {2}row 1 \(netns\): reproduced$/m);
    assert.match(r.stdout, /^ {2}row 14 \(resize, scale\): not run$/m);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

/** A kernels run's summary rows: five-namespace rates of boots of one kernel, with or without a boot parameter. */
function kernelRows(boots: { params: string; rate: number; plain: number }[]): Cells[] {
  return boots.flatMap((b, i) =>
    [1, 4].flatMap((c) => [
      {
        kernel: `${i + 1}-k`,
        params: b.params,
        accel: 'tcg',
        release: '6.1.0-50-amd64',
        study: 'netns',
        config: 'none',
        concurrency: c,
        ops_per_sec: b.plain,
        relative_to_plain: 1,
      },
      {
        kernel: `${i + 1}-k`,
        params: b.params,
        accel: 'tcg',
        release: '6.1.0-50-amd64',
        study: 'netns',
        config: FIVE,
        concurrency: c,
        ops_per_sec: b.rate,
        relative_to_plain: b.rate / b.plain,
      },
    ]),
  );
}

test('row 2 from a kernels run: IPv6 off at boot against on, judged by their ratio; a run with one setting only is not a measurement', () => {
  const verdict = (boots: { params: string; rate: number; plain: number }[]) =>
    rowVerdicts(CLAIMS, new Map([['kernels', { run: runOf(kernelRows(boots), 'kernels') }]])).get(2)!;
  const doubled = verdict([
    { params: '', rate: 100, plain: 1000 },
    { params: 'ipv6.disable=1', rate: 210, plain: 1000 },
    { params: 'ipv6.disable=1', rate: 190, plain: 1000 },
    { params: '', rate: 100, plain: 1000 },
  ]);
  assert.is(doubled.word, 'reproduced');
  assert.match(doubled.cell, "within 2x of the paper's 2x (~400/s over ~200/s) (that ratio: 1–4x): 2x, holds");
  const same = verdict([
    { params: '', rate: 100, plain: 1000 },
    { params: 'ipv6.disable=1', rate: 95, plain: 1000 },
  ]);
  assert.is(same.word, 'not reproduced');
  assert.match(same.cell, '0.95x, does not hold');
  const oneSetting = verdict([{ params: '', rate: 100, plain: 1000 }]);
  assert.is(oneSetting.word, 'not measured');
  assert.match(oneSetting.cell, 'no ipc+mnt+net+pid+uts netns rates both with and without ipv6.disable=1');
});

test('row 2 reads the newest untraced kernels run that booted the kernel both ways, passing over newer ones that did not or were traced', () => {
  const out = scratchDir();
  try {
    const write = (id: string, rows: Cells[], studyArgs = ['--quick']) => {
      const dir = path.join(out, 'results/kernels', id);
      fs.mkdirSync(dir, { recursive: true });
      writeCsv(path.join(dir, 'summary.csv'), rows);
      fs.writeFileSync(
        path.join(dir, 'meta.json'),
        JSON.stringify({
          command: 'kernels',
          status: 'complete',
          study_args: studyArgs,
          kernels: [{ release: '6.1.0-50-amd64', emulated: true }],
        }),
      );
    };
    write(
      '20260101-000000',
      kernelRows([
        { params: '', rate: 100, plain: 1000 },
        { params: 'ipv6.disable=1', rate: 150, plain: 1000 },
      ]),
    );
    write('20260102-000000', kernelRows([{ params: '', rate: 100, plain: 1000 }]));
    write(
      '20260103-000000',
      kernelRows([
        { params: '', rate: 50, plain: 1000 },
        { params: 'ipv6.disable=1', rate: 80, plain: 1000 },
      ]),
      ['--quick', '--trace', 'locks'],
    );
    const source = PAPER_SOURCES.find((s) => s.name === 'kernels')!;
    const run = source.referenceRun!(out)!;
    assert.is(run.id, '20260101-000000');
    assert.is(run.kernel, '6.1.0-50-amd64', "a kernels run's kernel is its guests'");
    assert.is(run.emulated, true);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test.run();
