// Container roots per second against concurrency: a colour per way of provisioning, setup
// solid and teardown dashed.
import type { Row } from '../../harness/types.js';

export function storageFigure(rows: Row[]): object {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'Provisioning a container root', subtitle: 'operations per second of each phase; median of repetitions' },
    width: 520,
    height: 340,
    data: { values: rows.map((r) => ({ config: r.config, phase: r.phase, concurrency: Number(r.concurrency), rate: Number(r.ops_per_sec) })) },
    encoding: {
      x: { field: 'concurrency', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'concurrency (threads)' },
      y: { aggregate: 'median', field: 'rate', type: 'quantitative', scale: { type: 'log' }, title: 'roots / second' },
      color: { field: 'config', type: 'nominal', title: 'provisioning' },
      strokeDash: { field: 'phase', type: 'nominal', title: 'phase', scale: { domain: ['setup', 'teardown'], range: [[1, 0], [5, 3]] } },
      detail: { field: 'phase' },
    },
    layer: [{ mark: 'line' }, { mark: { type: 'point', filled: true } }],
  };
}
