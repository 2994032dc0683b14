// Operations per second against concurrency, a dash pattern per configuration and a colour per
// cgroup version.
import type { Row } from '../../harness/types.js';

export function cgroupsFigure(rows: Row[]): object {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'cgroups: create a fresh one vs reuse a pooled one, and moving a process',
      subtitle: 'ready cgroups (created ones also removed), or moves, per second; median of repetitions',
    },
    width: 520,
    height: 340,
    data: {
      values: rows.map((r) => ({
        config: r.config,
        version: `cgroup v${r.cgroup_version}`,
        concurrency: Number(r.concurrency),
        rate: Number(r.ops_per_sec),
      })),
    },
    encoding: {
      x: {
        field: 'concurrency',
        type: 'quantitative',
        scale: { type: 'log', base: 2 },
        title: 'concurrency (threads)',
      },
      y: {
        aggregate: 'median',
        field: 'rate',
        type: 'quantitative',
        scale: { type: 'log' },
        title: 'operations / second',
      },
      color: { field: 'version', type: 'nominal', title: 'hierarchy' },
      strokeDash: {
        field: 'config',
        type: 'nominal',
        title: 'how',
        scale: {
          domain: ['create', 'reuse', 'move', 'clone-move', 'clone-into'],
          range: [
            [1, 0],
            [5, 3],
            [1, 2],
            [8, 2, 1, 2],
            [2, 4],
          ],
        },
        legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolStrokeColor: 'black' },
      },
      detail: { field: 'config' },
    },
    layer: [{ mark: 'line' }, { mark: { type: 'point', filled: true } }],
  };
}
