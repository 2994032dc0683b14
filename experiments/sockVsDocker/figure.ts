// The paper's Figure 6: latency against throughput, one line per backend, each point a
// concurrency (labelled), medians of the repetitions.
import type { Row } from '../../harness/types.js';

export function sockVsDockerFigure(rows: Row[]): object {
  const points = new Map<string, { backend: string; concurrency: number; rps: number[]; ms: number[] }>();
  for (const r of rows) {
    const key = `${r.config}/${r.concurrency}`;
    const p = points.get(key) ?? { backend: String(r.config), concurrency: Number(r.concurrency), rps: [], ms: [] };
    p.rps.push(Number(r.ops_per_sec));
    p.ms.push(Number(r.mean_us) / 1000);
    points.set(key, p);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const values = [...points.values()].map((p) => ({
    backend: p.backend,
    concurrency: p.concurrency,
    rps: median(p.rps),
    ms: median(p.ms),
  }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'No-op lambdas, a new sandbox per request: SOCK against Docker',
      subtitle: 'mean latency against throughput; labels are concurrency; median of repetitions',
    },
    width: 520,
    height: 340,
    data: { values },
    encoding: {
      x: { field: 'rps', type: 'quantitative', scale: { type: 'log' }, title: 'throughput (requests / second)' },
      y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'mean latency (ms)' },
      color: { field: 'backend', type: 'nominal', title: 'backend' },
      order: { field: 'concurrency', type: 'quantitative' },
    },
    layer: [
      { mark: 'line' },
      { mark: { type: 'point', filled: true } },
      {
        mark: { type: 'text', dx: 8, dy: -8, fontSize: 10 },
        encoding: { text: { field: 'concurrency', type: 'quantitative' } },
      },
    ],
  };
}
