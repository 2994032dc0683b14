// The peers study's figure: for each peer, the median start latency (left) and the starts per
// second (right) against concurrency, both on log scales so a warm SOCK hit and a Docker run fit
// one chart; medians of the repetitions.
import type { Row } from '../../harness/types.js';

export function peersFigure(rows: Row[]): object {
  const points = new Map<string, { peer: string; concurrency: number; ms: number[]; rate: number[] }>();
  for (const r of rows) {
    const key = `${r.config}/${r.concurrency}`;
    const p = points.get(key) ?? { peer: String(r.config), concurrency: Number(r.concurrency), ms: [], rate: [] };
    p.ms.push(Number(r.p50_us) / 1000);
    p.rate.push(Number(r.ops_per_sec));
    points.set(key, p);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const values = [...points.values()].map((p) => ({
    peer: p.peer,
    concurrency: p.concurrency,
    ms: median(p.ms),
    rate: median(p.rate),
  }));
  const peers = [...new Set(values.map((v) => v.peer))];
  const panel = (field: string, title: string) => ({
    width: 320,
    height: 300,
    encoding: {
      x: { field: 'concurrency', type: 'quantitative', scale: { type: 'log' }, title: 'concurrency (callers)' },
      y: { field, type: 'quantitative', scale: { type: 'log' }, title },
      color: { field: 'peer', type: 'nominal', title: 'peer', sort: peers },
    },
    layer: [{ mark: 'line' }, { mark: { type: 'point', filled: true } }],
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'Starting a no-op Python process: SOCK against today’s sandboxes',
      subtitle: 'same Debian base for every peer; bare is chroot alone; median of repetitions',
    },
    data: { values },
    hconcat: [panel('ms', 'median start latency (ms)'), panel('rate', 'starts / second')],
  };
}
