// The figure every traced run gets: total lock wait per measurement against concurrency, one
// line per call path (the heaviest few; the rest summed as "other"), one panel per config and
// value of the sweep's other parameters (host_mounts=1000, cgroup_version=2).
import { lockParams, type LockRow } from './tracer.js';

const SHOWN_PATHS = 8;

export function lockFigure(
  experiment: string,
  rows: (LockRow & { config: string; concurrency: number; repeat: number; [param: string]: string | number })[],
): object {
  const label = (r: LockRow) => `${r.operation}: ${r.call_path}`;
  const params = lockParams(rows[0]);
  const panel = (r: (typeof rows)[number]) => [r.config, ...params.map((p) => `${p}=${r[p]}`)].join(' ');
  const byPath = new Map<string, number>();
  for (const r of rows) byPath.set(label(r), (byPath.get(label(r)) ?? 0) + r.wait_total_us);
  const top = new Set(
    [...byPath.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, SHOWN_PATHS)
      .map(([p]) => p),
  );
  // Sum within a measurement first, so the median across repetitions is of per-measurement totals.
  const sums = new Map<
    string,
    { config: string; concurrency: number; repeat: number; path: string; wait_ms: number }
  >();
  for (const r of rows) {
    const p = top.has(label(r)) ? label(r) : 'other';
    const key = `${panel(r)}\0${r.concurrency}\0${r.repeat}\0${p}`;
    const s = sums.get(key) ?? { config: panel(r), concurrency: r.concurrency, repeat: r.repeat, path: p, wait_ms: 0 };
    s.wait_ms += r.wait_total_us / 1000;
    sums.set(key, s);
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: `${experiment}: kernel lock wait by call path`,
      subtitle: 'total wait per measurement, median of repetitions',
    },
    data: { values: [...sums.values()] },
    facet: { column: { field: 'config', type: 'nominal', title: null } },
    spec: {
      width: 260,
      height: 240,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'concurrency', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'concurrency' },
        y: { aggregate: 'median', field: 'wait_ms', type: 'quantitative', title: 'lock wait (ms)' },
        color: {
          field: 'path',
          type: 'nominal',
          title: 'operation: call path',
          legend: { orient: 'bottom', columns: 1, labelLimit: 700 },
        },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}
