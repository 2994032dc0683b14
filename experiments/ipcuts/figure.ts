// IPC, UTS and PID namespaces: create+destroy per second against concurrency, one line per set.
import type { Row } from '../../harness/types.js';

export function ipcutsFigure(rows: Row[]): object {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'The cheap namespaces: create + destroy per second',
      subtitle: 'median of repetitions; none = plain clone and exit',
    },
    width: 520,
    height: 340,
    data: {
      values: rows.map((r) => ({ config: r.config, concurrency: Number(r.concurrency), rate: Number(r.ops_per_sec) })),
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
        title: 'namespaces / second',
      },
      color: { field: 'config', type: 'nominal', title: 'namespaces' },
    },
    layer: [{ mark: 'line' }, { mark: { type: 'point', filled: true } }],
  };
}
