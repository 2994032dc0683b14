// Median and p99 start latency against the number of lambdas, one line per import cache
// budget (0 MiB: no zygotes), with the zygotes' memory at the end of each point as labels.
import type { Row } from '../../harness/types.js';

export function scaleFigure(rows: Row[]): object {
  const values = rows.flatMap((r) => [
    {
      lambdas: Number(r.lambdas),
      budget: Number(r.budget_mb),
      statistic: 'median',
      ms: Number(r.p50_us) / 1000,
      pss: Math.round(Number(r.zygote_pss_mb)),
    },
    {
      lambdas: Number(r.lambdas),
      budget: Number(r.budget_mb),
      statistic: 'p99',
      ms: Number(r.p99_us) / 1000,
      pss: Math.round(Number(r.zygote_pss_mb)),
    },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'Many lambdas, skewed package popularity',
      subtitle:
        "start latency against the number of distinct lambdas, per import cache budget; labels: zygotes' PSS (MiB)",
    },
    data: { values },
    facet: { column: { field: 'statistic', type: 'nominal', title: null } },
    spec: {
      width: 260,
      height: 260,
      encoding: {
        x: { field: 'lambdas', type: 'quantitative', scale: { type: 'log' }, title: 'distinct lambdas' },
        y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'latency (ms)' },
        color: { field: 'budget', type: 'ordinal', scale: { scheme: 'category10' }, title: 'budget (MiB)' },
      },
      layer: [
        { mark: { type: 'line', point: true } },
        {
          mark: { type: 'text', dx: 6, dy: -6, fontSize: 9 },
          encoding: { text: { field: 'pss', type: 'quantitative' } },
        },
      ],
    },
  };
}
