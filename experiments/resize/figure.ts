// The paper's Figure 14 in our terms: for each state of the caches, the median request split
// into platform time and the handler's own compute time, stacked.
import { median } from 'simple-statistics';
import type { Row } from '../../harness/types.js';

export function resizeFigure(rows: Row[]): object {
  const byConfig = new Map<string, { platform: number[]; compute: number[] }>();
  for (const r of rows) {
    const g = byConfig.get(String(r.config)) ?? { platform: [], compute: [] };
    g.platform.push(Number(r.platform_ms));
    g.compute.push(Number(r.compute_ms));
    byConfig.set(String(r.config), g);
  }
  const values = [...byConfig.entries()].flatMap(([config, g]) => [
    { config, part: 'platform', ms: median(g.platform) },
    { config, part: 'compute', ms: median(g.compute) },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'Resizing a photo with Pillow',
      subtitle: "median request: platform time (sandbox, Python, imports, worker) and the handler's compute",
    },
    data: { values },
    width: 360,
    height: 260,
    mark: 'bar',
    encoding: {
      x: { field: 'config', type: 'nominal', sort: ['cold', 'cold+', 'warm'], title: 'state of the caches' },
      y: { field: 'ms', type: 'quantitative', stack: 'zero', title: 'latency (ms)' },
      color: { field: 'part', type: 'nominal', sort: ['platform', 'compute'], title: 'part' },
      order: { field: 'part', sort: 'descending' },
      tooltip: [{ field: 'config' }, { field: 'part' }, { field: 'ms', format: '.1f' }],
    },
  };
}
