// `npm run compare -- A B`: two result sets of one experiment, point by point (same config,
// concurrency and sweep parameters): the ratio B/A of each metric's median with a 95% bootstrap
// interval, a verdict only where the interval clears the noise, and a gate for CI.
import fs from 'node:fs';
import path from 'node:path';
import { readCsv, writeCsv } from './csv.js';
import { UsageError } from './errors.js';
import { compareLockWaits, lockWaitFigure, lockWaitTable } from './lockComparison.js';
import { renderFigure } from './figures.js';
import { markdownTable } from './markdown.js';
import { latestComplete, readMeta, writeMeta } from './runDirs.js';
import { median } from 'simple-statistics';
import { bootstrapMedianRatio } from './stats.js';

/** The metrics compared, and which way is better. */
const METRICS = { ops_per_sec: 'higher', p50_us: 'lower', p99_us: 'lower' } as const;
export type Metric = keyof typeof METRICS;

/** Columns that name a point beyond config and concurrency, when a run has them. */
const POINT_COLUMNS = ['config', 'concurrency', 'phase', 'host_mounts', 'cgroup_version'];
/** Options that shape the sweep's size, not what a point measures: they may differ between runs. */
const SWEEP_OPTIONS = new Set([
  '_',
  '$0',
  'out',
  'quick',
  'trace',
  'concurrency',
  'duration',
  'repeat',
  'warmup',
  'spin-sample-every',
]);

export interface Run {
  dir: string;
  experiment: string;
  options: Record<string, unknown>;
  environment: { hostname?: string; kernel?: { release?: string }; cpu?: { model?: string | null; count?: number } };
  /** Set by `kernels` on a run made in a qemu guest: how the guest was run. */
  vm?: { kernel?: string; accel?: string; emulated?: boolean; params?: string | null };
  rows: Record<string, string | number>[];
}

/** A run directory (data.csv + meta.json), or an experiment's results directory (its newest complete run). */
function loadRun(arg: string): Run {
  let dir = path.resolve(arg);
  if (!fs.existsSync(dir)) throw new UsageError(`${arg}: no such run or directory`);
  if (!fs.existsSync(path.join(dir, 'meta.json'))) {
    // results/<experiment>: the newest complete run in it.
    const latest = latestComplete(path.dirname(path.dirname(dir)), path.basename(dir));
    if (!latest)
      throw new UsageError(
        `${arg}: neither a run directory (meta.json, data.csv) nor an experiment's results directory with a complete run`,
      );
    dir = latest;
  }
  const meta = readMeta(dir) ?? {};
  if (meta.status !== 'complete' || !fs.existsSync(path.join(dir, 'data.csv')))
    throw new UsageError(`${arg}: the run is not complete (status ${String(meta.status)})`);
  return {
    dir,
    experiment: String(meta.experiment),
    options: (meta.options ?? {}) as Record<string, unknown>,
    environment: (meta.environment ?? {}) as Run['environment'],
    vm: meta.vm,
    rows: readCsv(path.join(dir, 'data.csv')),
  };
}

export interface ComparisonRow {
  point: string;
  metric: Metric;
  a_median: number;
  b_median: number;
  ratio: number;
  ci_low: number;
  ci_high: number;
  /** better / worse only when the whole interval says so, by more than the threshold; else same. */
  verdict: 'better' | 'worse' | 'same';
  n_a: number;
  n_b: number;
}

export interface Comparison {
  experiment: string;
  rows: ComparisonRow[];
  /** Facts a reader must know, e.g. the runs came from different machines. */
  warnings: string[];
  /** Points of one run missing from the other. */
  unmatched: string[];
}

function pointOf(row: Record<string, string | number>): string {
  return POINT_COLUMNS.filter((c) => row[c] !== undefined && row[c] !== '')
    .map((c) => (c === 'config' ? String(row[c]) : `${c}=${row[c]}`))
    .join(' ');
}

/** The experiment-specific options, which must match for the points to mean the same thing. */
function measuringOptions(options: Record<string, unknown>): Record<string, string> {
  // yargs keeps a camelCase twin of every dashed option: the dashed one is enough.
  return Object.fromEntries(
    Object.entries(options)
      .filter(([k, v]) => !SWEEP_OPTIONS.has(k) && !/[A-Z]/.test(k) && v !== undefined)
      .map(([k, v]) => [k, JSON.stringify(v)]),
  );
}

/** Different hardware or kernel: the comparison is still made, and says so. */
function machineDifferences(a: Run, b: Run): string[] {
  const facts: [string, unknown, unknown][] = [
    ['hostname', a.environment.hostname, b.environment.hostname],
    ['kernel', a.environment.kernel?.release, b.environment.kernel?.release],
    ['CPU', a.environment.cpu?.model, b.environment.cpu?.model],
    ['CPU count', a.environment.cpu?.count, b.environment.cpu?.count],
    // One kernel booted two ways (kernels --kernel K:PARAMS) differs only here.
    ['boot parameters', a.vm?.params ?? 'none added', b.vm?.params ?? 'none added'],
  ];
  return facts.filter(([, x, y]) => x !== y).map(([what, x, y]) => `${what}: ${String(x)} against ${String(y)}`);
}

/** Where a run's numbers came from, in words. */
function platform(r: Run): string {
  if (r.vm?.emulated) return 'under software emulation';
  if (r.vm) return `in a ${r.vm.accel === 'kvm' ? 'KVM ' : ''}virtual machine`;
  return 'on bare metal';
}

/**
 * A run under software emulation (qemu TCG, from `kernels`) and one that was not: every
 * operation is slower by an unrelated factor, so only the shape of the curves can be compared.
 */
function emulationDifference(a: Run, b: Run): string[] {
  if (Boolean(a.vm?.emulated) === Boolean(b.vm?.emulated)) return [];
  return [`A ran ${platform(a)}, B ${platform(b)}: absolute numbers are not comparable`];
}

/**
 * Compares b against a. thresholdPct is the smallest change (in %) called better or worse: a
 * change whose 95% interval does not clear it is "same".
 */
function compareRuns(a: Run, b: Run, thresholdPct = 0): Comparison {
  if (a.experiment !== b.experiment)
    throw new UsageError(`cannot compare a run of ${a.experiment} with a run of ${b.experiment}`);
  const oa = measuringOptions(a.options);
  const ob = measuringOptions(b.options);
  const differing = [...new Set([...Object.keys(oa), ...Object.keys(ob)])].filter((k) => oa[k] !== ob[k]);
  if (differing.length > 0) {
    throw new UsageError(
      `the runs measured different things: ${differing.map((k) => `--${k} ${oa[k] ?? '(unset)'} against ${ob[k] ?? '(unset)'}`).join(', ')}`,
    );
  }
  const group = (rows: Run['rows']) => {
    const m = new Map<string, Run['rows']>();
    for (const r of rows) m.set(pointOf(r), [...(m.get(pointOf(r)) ?? []), r]);
    return m;
  };
  const ga = group(a.rows);
  const gb = group(b.rows);
  const common = [...ga.keys()].filter((k) => gb.has(k));
  if (common.length === 0)
    throw new UsageError(
      `the runs have no point in common (${[...ga.keys()].slice(0, 3).join(', ')} against ${[...gb.keys()].slice(0, 3).join(', ')})`,
    );
  const unmatched = [...ga.keys(), ...gb.keys()].filter((k) => !common.includes(k));
  const slack = thresholdPct / 100;
  const rows: ComparisonRow[] = [];
  for (const point of common) {
    for (const [metric, better] of Object.entries(METRICS) as [Metric, 'higher' | 'lower'][]) {
      const xa = ga
        .get(point)!
        .map((r) => Number(r[metric]))
        .filter(Number.isFinite);
      const xb = gb
        .get(point)!
        .map((r) => Number(r[metric]))
        .filter(Number.isFinite);
      if (xa.length === 0 || xb.length === 0) continue;
      const { ratio, low, high } = bootstrapMedianRatio(xb, xa);
      const up = low > 1 + slack;
      const down = high < 1 - slack;
      const verdict =
        up || down ? ((up && better === 'higher') || (down && better === 'lower') ? 'better' : 'worse') : 'same';
      rows.push({
        point,
        metric,
        a_median: median(xa),
        b_median: median(xb),
        ratio,
        ci_low: low,
        ci_high: high,
        verdict,
        n_a: xa.length,
        n_b: xb.length,
      });
    }
  }
  const warnings = machineDifferences(a, b);
  return {
    experiment: a.experiment,
    rows,
    warnings: [
      ...emulationDifference(a, b),
      ...(warnings.length > 0 ? [`the two runs came from different machines (${warnings.join('; ')})`] : []),
    ],
    unmatched,
  };
}

/** Ratios of the comparison, one panel per metric, each point with its interval; 1 marked. */
function comparisonFigure(c: Comparison, a: string, b: string): object {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: `${c.experiment}: ${b} / ${a}`,
      subtitle: 'ratio of medians with 95% bootstrap interval; 1 = no change',
    },
    data: { values: c.rows },
    facet: { row: { field: 'metric', type: 'nominal', title: null } },
    spec: {
      width: 520,
      height: { step: 14 },
      layer: [
        {
          mark: { type: 'rule' },
          encoding: {
            y: { field: 'point', type: 'nominal', title: null },
            x: { field: 'ci_low', type: 'quantitative', scale: { type: 'log' }, title: 'B / A' },
            x2: { field: 'ci_high' },
          },
        },
        {
          mark: { type: 'point', filled: true },
          encoding: {
            y: { field: 'point', type: 'nominal' },
            x: { field: 'ratio', type: 'quantitative' },
            color: {
              field: 'verdict',
              type: 'nominal',
              scale: { domain: ['better', 'same', 'worse'], range: ['#2a9d8f', '#888888', '#d62828'] },
            },
          },
        },
        { mark: { type: 'rule', strokeDash: [4, 4] }, encoding: { x: { datum: 1 } } },
      ],
    },
  };
}

export interface CompareOptions {
  failOnRegressionPct?: number;
  /** Where compare.csv and the figure go. */
  outDir: string;
}

/** Runs the comparison, prints it, writes it; the exit status says whether CI may pass. */
export async function compareCommand(argA: string, argB: string, options: CompareOptions): Promise<number> {
  const pct = options.failOnRegressionPct;
  if (pct !== undefined && !(pct >= 0)) throw new UsageError(`--fail-on-regression: '${pct}' is not a percentage >= 0`);
  const a = loadRun(argA);
  const b = loadRun(argB);
  const c = compareRuns(a, b, pct ?? 0);
  const fmt = (x: number) => (Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : x.toPrecision(3));
  process.stdout.write(
    `${markdownTable(
      ['point', 'metric', 'A median', 'B median', 'B / A [95% CI]', 'verdict'],
      c.rows.map((r) => [
        r.point,
        r.metric,
        fmt(r.a_median),
        fmt(r.b_median),
        `${r.ratio.toFixed(3)} [${r.ci_low.toFixed(3)}, ${r.ci_high.toFixed(3)}]`,
        r.verdict,
      ]),
    )}\n`,
  );
  for (const w of c.warnings) process.stderr.write(`compare: ${w}\n`);
  if (c.unmatched.length > 0)
    process.stderr.write(
      `compare: ${c.unmatched.length} points are in only one of the runs (${c.unmatched.slice(0, 3).join(', ')}${c.unmatched.length > 3 ? ', ...' : ''})\n`,
    );
  const dir = path.resolve(options.outDir, `${c.experiment}-${path.basename(a.dir)}-vs-${path.basename(b.dir)}`);
  fs.mkdirSync(dir, { recursive: true });
  writeCsv(path.join(dir, 'compare.csv'), c.rows);
  writeMeta(dir, {
    experiment: c.experiment,
    a: a.dir,
    b: b.dir,
    fail_on_regression_pct: pct ?? null,
    warnings: c.warnings,
    unmatched: c.unmatched,
  });
  const { svgPath } = await renderFigure(
    comparisonFigure(c, path.basename(a.dir), path.basename(b.dir)),
    dir,
    'compare',
  );
  process.stdout.write(
    `\ncsv:    ${path.relative(process.cwd(), path.join(dir, 'compare.csv'))}\nfigure: ${path.relative(process.cwd(), svgPath)}\n`,
  );
  const waits = compareLockWaits(a.dir, b.dir);
  if (waits && waits.length > 0) {
    const name = (r: Run) => `${path.basename(r.dir)}${r.vm?.params ? ` [${r.vm.params}]` : ''}`;
    writeCsv(path.join(dir, 'lock-waits.csv'), waits);
    const figure = await renderFigure(lockWaitFigure(waits, name(a), name(b)), dir, 'lock-waits');
    process.stdout.write(
      `\nLock waits per operation (both runs traced for locks):\n\n${lockWaitTable(waits)}\n\ncsv:    ${path.relative(process.cwd(), path.join(dir, 'lock-waits.csv'))}\nfigure: ${path.relative(process.cwd(), figure.svgPath)}\n`,
    );
  }
  const worse = c.rows.filter((r) => r.verdict === 'worse');
  if (pct !== undefined && worse.length > 0) {
    process.stderr.write(
      `compare: regression: ${worse.length} metrics worse by more than ${pct}% with 95% confidence (${worse
        .slice(0, 3)
        .map((r) => `${r.point} ${r.metric} ${r.ratio.toFixed(3)}`)
        .join(', ')})\n`,
    );
    return 1;
  }
  return 0;
}
