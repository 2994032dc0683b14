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
  // What names a point beyond config and concurrency (host_mounts, cgroup_version, phase).
  const named = Object.keys(first).filter(
    (k) =>
      !/_(median|mean|ci95_low|ci95_high)$/.test(k) &&
      !['experiment', 'config', 'concurrency', 'repeats', 'outliers'].includes(k),
  );
  const header = [
    'config',
    'concurrency',
    ...named,
    'ops/s (median)',
    'ops/s mean ± 95% CI',
    'p50 µs',
    'p99 µs',
    ...extra,
    'reps',
  ];
  const lines = summary.map((s) => {
    const ci = Number(s.ops_per_sec_ci95_high) - Number(s.ops_per_sec_mean);
    return [
      String(s.config),
      String(s.concurrency),
      ...named.map((k) => String(s[k])),
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

interface LockWait {
  config: string;
  operation: string;
  call_path: string;
  kind: string;
  contentions: number;
  wait_total_us: number;
}

/** The heaviest lock waits of a traced run, per config, summed over its points and repetitions. */
export function formatTopLocks(rows: LockWait[], perConfig = 3): string {
  const sums = new Map<string, LockWait>();
  for (const r of rows) {
    const key = `${r.config}\0${r.operation}\0${r.call_path}\0${r.kind}`;
    const s = sums.get(key) ?? { ...r, contentions: 0, wait_total_us: 0 };
    s.contentions += Number(r.contentions);
    s.wait_total_us += Number(r.wait_total_us);
    sums.set(key, s);
  }
  const configs = [...new Set(rows.map((r) => r.config))];
  const lines = configs.flatMap((config) =>
    [...sums.values()]
      .filter((s) => s.config === config)
      .sort((a, b) => b.wait_total_us - a.wait_total_us)
      .slice(0, perConfig)
      .map((s) => [
        config,
        s.operation,
        s.call_path,
        s.kind,
        Math.round(s.contentions).toLocaleString('en-US'),
        fmt(s.wait_total_us / 1000),
      ]),
  );
  return markdownTable(['config', 'operation', 'call path', 'lock kind', 'contentions', 'wait (ms)'], lines);
}
