// Start latency by package set, one bar per way of starting the sandbox (median of the
// repetitions' medians), on a log scale: zygotes matter most where imports are heavy.
import { median } from 'simple-statistics';
import type { Row } from '../../harness/types.js';

export function zygoteFigure(rows: Row[]): object {
  const groups = new Map<string, { packages: string; config: string; p50: number[] }>();
  for (const r of rows) {
    const key = `${r.packages}/${r.config}`;
    const g = groups.get(key) ?? { packages: String(r.packages), config: String(r.config), p50: [] };
    g.p50.push(Number(r.p50_us) / 1000);
    groups.set(key, g);
  }
  const values = [...groups.values()].map((g) => ({ packages: g.packages, config: g.config, ms: median(g.p50) }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'Starting a handler that imports packages',
      subtitle: 'end-to-end latency over the worker, a new sandbox per request; median',
    },
    data: { values },
    width: { step: 22 },
    height: 300,
    mark: 'bar',
    encoding: {
      x: { field: 'packages', type: 'nominal', title: 'packages the handler imports', sort: null },
      xOffset: { field: 'config', sort: ['lean', 'root-zygote', 'zygote'] },
      // Side by side, not stacked: a stack on a log scale draws nothing.
      y: {
        field: 'ms',
        type: 'quantitative',
        scale: { type: 'log' },
        stack: null,
        title: 'start latency, median (ms)',
      },
      color: { field: 'config', type: 'nominal', title: 'sandbox', sort: ['lean', 'root-zygote', 'zygote'] },
      tooltip: [{ field: 'packages' }, { field: 'config' }, { field: 'ms', format: '.1f' }],
    },
  };
}
