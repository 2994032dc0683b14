// The summary a person pastes: one Markdown table row per point, medians across repetitions.
import { markdownTable } from './markdown.js';
import type { SummaryRow } from './stats.js';

const FIXED = new Set(['experiment', 'config', 'concurrency', 'repeats', 'outliers']);
const SHOWN_AFTER_RATE = ['p50_us', 'p99_us'];

function fmt(x: unknown): string {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 100) return Math.round(x).toLocaleString('en-US');
  return x.toPrecision(3);
}

export function formatSummary(summary: SummaryRow[]): string {
  if (summary.length === 0) return '';
  const first = summary[0]!;
  // Other experiment columns (e.g. ops_per_sec_with_teardown) follow, by their medians.
  const extra = Object.keys(first)
    .filter((k) => k.endsWith('_median') && !FIXED.has(k))
    .map((k) => k.slice(0, -'_median'.length))
    .filter((c) => c !== 'ops_per_sec' && !SHOWN_AFTER_RATE.includes(c) && !['ops', 'seconds', 'mean_us'].includes(c));
  const header = ['config', 'concurrency', 'ops/s (median)', 'ops/s mean ± 95% CI', 'p50 µs', 'p99 µs', ...extra, 'reps'];
  const lines = summary.map((s) => {
    const ci = Number(s.ops_per_sec_ci95_high) - Number(s.ops_per_sec_mean);
    return [
      String(s.config),
      String(s.concurrency),
      fmt(s.ops_per_sec_median),
      `${fmt(s.ops_per_sec_mean)} ± ${fmt(ci)}`,
      fmt(s.p50_us_median),
      fmt(s.p99_us_median),
      ...extra.map((c) => fmt(s[`${c}_median`])),
      `${s.repeats}${Number(s.outliers) > 0 ? ` (${s.outliers} outlier)` : ''}`,
    ];
  });
  return markdownTable(header, lines);
}
