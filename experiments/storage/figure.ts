// Provisioning a container root. Left: roots per second through a whole setup + teardown cycle,
// a colour per way of provisioning. Right: each phase's median latency (setup solid, teardown
// dashed): where the cycle's time goes.
import type { Row } from '../../harness/types.js';

export function storageFigure(rows: Row[]): object {
  const values = rows.map((r) => ({
    config: r.config,
    phase: r.phase,
    concurrency: Number(r.concurrency),
    rate: Number(r.ops_per_sec),
    p50: Number(r.p50_us),
  }));
  const x = {
    field: 'concurrency',
    type: 'quantitative',
    scale: { type: 'log', base: 2 },
    title: 'concurrency (threads)',
  };
  const color = { field: 'config', type: 'nominal', title: 'provisioning' };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'Provisioning a container root', subtitle: 'median of repetitions' },
    data: { values },
    hconcat: [
      {
        title: 'setup + teardown cycles per second',
        width: 320,
        height: 300,
        transform: [{ filter: "datum.phase === 'setup'" }],
        encoding: {
          x,
          y: {
            aggregate: 'median',
            field: 'rate',
            type: 'quantitative',
            scale: { type: 'log' },
            title: 'roots / second',
          },
          color,
        },
        layer: [{ mark: 'line' }, { mark: { type: 'point', filled: true } }],
      },
      {
        title: 'latency of each phase (p50)',
        width: 320,
        height: 300,
        encoding: {
          x,
          y: { aggregate: 'median', field: 'p50', type: 'quantitative', scale: { type: 'log' }, title: 'µs' },
          color,
          strokeDash: {
            field: 'phase',
            type: 'nominal',
            title: 'phase',
            scale: {
              domain: ['setup', 'teardown'],
              range: [
                [1, 0],
                [5, 3],
              ],
            },
            legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolStrokeColor: 'black' },
          },
          detail: { field: 'phase' },
        },
        layer: [{ mark: 'line' }, { mark: { type: 'point', filled: true } }],
      },
    ],
  };
}
