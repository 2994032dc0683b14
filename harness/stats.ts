import { mean, median, medianAbsoluteDeviation, quantileSorted, sampleStandardDeviation } from 'simple-statistics';
import type { Row } from './types.js';

/** p50, p99 and mean of per-operation latencies. Quantiles are numpy's linear (type 7). */
export function latencySummary(us: Float64Array): { p50: number; p99: number; mean: number } {
  if (us.length === 0) return { p50: NaN, p99: NaN, mean: NaN };
  // A typed-array sort is numeric and much faster than Array#sort on millions of samples;
  // the copy keeps the caller's array in measurement order.
  const sorted = Array.from(us.slice().sort());
  return { p50: quantileSorted(sorted, 0.5), p99: quantileSorted(sorted, 0.99), mean: mean(sorted) };
}

// Two-sided 95% critical values of Student's t, t(0.975, df), for df = 1..30.
// simple-statistics has no t quantile function, and repeats are few, so small df matter most.
const T_975 = [
  12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.306, 2.2622, 2.2281, 2.201, 2.1788, 2.1604, 2.1448, 2.1314,
  2.1199, 2.1098, 2.1009, 2.093, 2.086, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
];

function tCritical95(df: number): number {
  // Beyond df 30 the normal value understates t by at most ~4% (df 31), which is below the
  // run-to-run noise these benchmarks see.
  return df <= T_975.length ? T_975[df - 1] : 1.96;
}

export interface ConfidenceInterval {
  n: number;
  mean: number;
  halfWidth: number;
  low: number;
  high: number;
}

/** 95% confidence interval of the mean; with fewer than two values there is no spread to use. */
export function confidenceInterval95(values: number[]): ConfidenceInterval {
  const n = values.length;
  const m = n === 0 ? NaN : mean(values);
  const halfWidth = n < 2 ? NaN : (tCritical95(n - 1) * sampleStandardDeviation(values)) / Math.sqrt(n);
  return { n, mean: m, halfWidth, low: m - halfWidth, high: m + halfWidth };
}

/**
 * Iglewicz–Hoaglin modified Z-scores, |x − median| / MAD × 0.6745, to flag repetitions disturbed
 * by something outside the benchmark. Median and MAD, unlike mean and standard deviation, are
 * not dragged along by the outlier being looked for. (hyperfine scores by median and MAD too,
 * but warns only past |x − median| / MAD > 14.826, a much looser rule than the cut-off below.)
 */
export function modifiedZScores(values: number[]): number[] {
  if (values.length === 0) return [];
  const med = median(values);
  const mad = medianAbsoluteDeviation(values);
  // MAD 0 means at least half the values are identical: no robust spread to measure against.
  if (mad === 0) return values.map(() => 0);
  return values.map((x) => (Math.abs(x - med) / mad) * 0.6745);
}

/** 3.5 is the cut-off Iglewicz and Hoaglin recommend. */
export function outlierFlags(values: number[], threshold = 3.5): boolean[] {
  return modifiedZScores(values).map((z) => z > threshold);
}

export interface SummaryRow {
  experiment: string;
  config: string;
  concurrency: number;
  repeats: number;
  /** Repetitions whose ops_per_sec is a modified-Z outlier within its point. */
  outliers: number;
  [k: string]: string | number;
}

/**
 * One row per point (experiment, config, concurrency), in the order points were first run,
 * with median, mean and 95% CI of each listed column over the point's repetitions.
 */
export function summarize(
  rows: Row[],
  columns: string[],
  keys: string[] = ['experiment', 'config', 'concurrency'],
): SummaryRow[] {
  const groups = new Map<string, Row[]>();
  for (const row of rows) {
    const key = JSON.stringify(keys.map((k) => row[k]));
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }

  return [...groups.values()].map((group) => {
    const first = group[0];
    const summary: SummaryRow = {
      experiment: first.experiment,
      config: first.config,
      concurrency: first.concurrency,
      ...Object.fromEntries(keys.map((k) => [k, first[k]!])),
      repeats: group.length,
      outliers: outlierFlags(numericValues(group, 'ops_per_sec')).filter(Boolean).length,
    };
    for (const column of columns) {
      const values = numericValues(group, column);
      const ci = confidenceInterval95(values);
      summary[`${column}_median`] = values.length === 0 ? NaN : median(values);
      summary[`${column}_mean`] = ci.mean;
      summary[`${column}_ci95_low`] = ci.low;
      summary[`${column}_ci95_high`] = ci.high;
    }
    return summary;
  });
}

// A repetition without a value (an empty CSV cell read back as NaN, a column only some
// repetitions report) is left out rather than turning the whole point's statistics into NaN.
function numericValues(rows: Row[], column: string): number[] {
  return rows.map((row) => row[column]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
}

/** A small seeded PRNG (mulberry32): a bootstrap gives the same interval on the same data, a generated workload is the same every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RatioInterval {
  ratio: number;
  low: number;
  high: number;
}

/**
 * median(a) / median(b) with a 95% percentile-bootstrap interval, resampling a and b
 * independently. With a handful of noisy runs per side the interval is wide, and that width is
 * the honest answer to "is this ratio really below 1?".
 */
export function bootstrapMedianRatio(a: number[], b: number[], iterations = 4000, seed = 1): RatioInterval {
  if (a.length === 0 || b.length === 0) return { ratio: NaN, low: NaN, high: NaN };
  const random = seededRandom(seed);
  const resample = (xs: number[]) => median(xs.map(() => xs[Math.floor(random() * xs.length)]!));
  const ratios = Array.from({ length: iterations }, () => resample(a) / resample(b)).sort((x, y) => x - y);
  return { ratio: median(a) / median(b), low: quantileSorted(ratios, 0.025), high: quantileSorted(ratios, 0.975) };
}
