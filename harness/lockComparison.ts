// Two traced runs' lock waits side by side: which waits a change (a kernel, a boot parameter)
// made go away or appear. Waits are divided by the operations made in the same measurements,
// so a run that made more containers in its seconds is not charged for waiting more in total.
import fs from 'node:fs';
import path from 'node:path';
import { readCsv } from './csv.js';
import { markdownTable } from './markdown.js';

/** Per config, the call paths shown: the heaviest few in either run. */
const SHOWN_PATHS = 6;

export interface LockWaitRow {
  config: string;
  /** "operation: call path", as the per-run lock figure labels it. */
  path: string;
  /** Lock wait per operation made, in µs, over every measurement of the config. */
  a_us_per_op: number;
  b_us_per_op: number;
}

/** Per config and call path: wait over operations made, over every measurement of the run. */
function waitPerOp(runDir: string): Map<string, Map<string, number>> | undefined {
  const locksFile = path.join(runDir, 'locks.csv');
  const dataFile = path.join(runDir, 'data.csv');
  if (!fs.existsSync(locksFile) || !fs.existsSync(dataFile)) return undefined;
  const ops = new Map<string, number>();
  for (const r of readCsv(dataFile)) ops.set(String(r.config), (ops.get(String(r.config)) ?? 0) + Number(r.ops));
  const waits = new Map<string, Map<string, number>>();
  for (const r of readCsv(locksFile)) {
    const config = String(r.config);
    const byPath = waits.get(config) ?? new Map<string, number>();
    const label = `${r.operation}: ${r.call_path}`;
    byPath.set(label, (byPath.get(label) ?? 0) + Number(r.wait_total_us));
    waits.set(config, byPath);
  }
  for (const [config, byPath] of waits) {
    const n = ops.get(config) ?? 0;
    for (const [p, us] of byPath) byPath.set(p, n > 0 ? us / n : NaN);
  }
  return waits;
}

/** The heaviest call paths of each config in either run; undefined when either run was not traced for locks. */
export function compareLockWaits(aDir: string, bDir: string): LockWaitRow[] | undefined {
  const a = waitPerOp(aDir);
  const b = waitPerOp(bDir);
  if (!a || !b) return undefined;
  const rows: LockWaitRow[] = [];
  for (const config of [...new Set([...a.keys(), ...b.keys()])]) {
    const pa = a.get(config) ?? new Map<string, number>();
    const pb = b.get(config) ?? new Map<string, number>();
    const paths = [...new Set([...pa.keys(), ...pb.keys()])]
      .map((p) => ({ p, a: pa.get(p) ?? 0, b: pb.get(p) ?? 0 }))
      .sort((x, y) => Math.max(y.a, y.b) - Math.max(x.a, x.b))
      .slice(0, SHOWN_PATHS);
    for (const { p, a: av, b: bv } of paths) rows.push({ config, path: p, a_us_per_op: av, b_us_per_op: bv });
  }
  return rows;
}

export function lockWaitTable(rows: LockWaitRow[]): string {
  const fmt = (x: number) => (Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : x.toPrecision(3));
  return markdownTable(
    ['config', 'operation: call path', 'A µs/op', 'B µs/op', 'B − A'],
    rows.map((r) => [r.config, r.path, fmt(r.a_us_per_op), fmt(r.b_us_per_op), fmt(r.b_us_per_op - r.a_us_per_op)]),
  );
}

/** Grouped bars: per config, each call path's wait per operation in A and in B. */
export function lockWaitFigure(rows: LockWaitRow[], aName: string, bName: string): object {
  const values = rows.flatMap((r) => [
    { config: r.config, path: r.path, run: `A: ${aName}`, us: r.a_us_per_op },
    { config: r.config, path: r.path, run: `B: ${bName}`, us: r.b_us_per_op },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'kernel lock wait per operation, A against B',
      subtitle: 'total wait over every measurement of the config, divided by the operations it made',
    },
    data: { values },
    facet: { row: { field: 'config', type: 'nominal', title: null } },
    spec: {
      width: 420,
      height: { step: 14 },
      mark: 'bar',
      encoding: {
        y: { field: 'path', type: 'nominal', title: null, sort: '-x', axis: { labelLimit: 520 } },
        yOffset: { field: 'run' },
        x: { field: 'us', type: 'quantitative', title: 'lock wait per operation (µs)' },
        color: { field: 'run', type: 'nominal', title: null, legend: { orient: 'bottom', labelLimit: 500 } },
      },
    },
    resolve: { scale: { y: 'independent' } },
  };
}
