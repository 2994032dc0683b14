// Figure 1 as we draw it: containers per second against concurrency, one colour per namespace
// set; solid lines count the kernel's teardown, dashed ones creation only; the paper's
// reported peaks as labelled rules.
import type { Row } from '../../harness/types.js';

/** The paper's Figure 1 peaks (create+destroy, 2018 kernel, 8-core Xeon D-1548). */
const PAPER_PEAKS = [
  { label: 'paper: all five namespaces ~200/s', value: 200 },
  { label: 'paper: five, patched kernel ~400/s', value: 400 },
  { label: 'paper: four, no netns ~900/s', value: 900 },
];

const WITH_TEARDOWN = 'create + teardown';
const CREATION_ONLY = 'creation only';

export function netnsFigure(rows: Row[]): object {
  const values = rows
    .flatMap((r) => [
      { config: r.config, concurrency: r.concurrency, measure: WITH_TEARDOWN, rate: r.ops_per_sec_with_teardown },
      { config: r.config, concurrency: r.concurrency, measure: CREATION_ONLY, rate: r.ops_per_sec },
    ])
    .filter((v) => typeof v.rate === 'number' && Number.isFinite(v.rate));
  const maxConcurrency = Math.max(1, ...rows.map((r) => Number(r.concurrency)));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'Namespace churn: containers per second', subtitle: 'median of repetitions; paper peaks as rules' },
    width: 520,
    height: 340,
    layer: [
      {
        data: { values },
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
            title: 'containers / second',
          },
          color: { field: 'config', type: 'nominal', title: 'namespaces' },
        },
        // Points in a layer of their own: on the line mark they would blank the dash legend.
        layer: [
          {
            mark: 'line',
            encoding: {
              strokeDash: {
                field: 'measure',
                type: 'nominal',
                title: 'rate',
                scale: {
                  domain: [WITH_TEARDOWN, CREATION_ONLY],
                  range: [
                    [1, 0],
                    [5, 3],
                  ],
                },
                legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolStrokeColor: 'black' },
              },
              detail: { field: 'measure' },
            },
          },
          { mark: { type: 'point', filled: true } },
        ],
      },
      {
        data: { values: PAPER_PEAKS },
        mark: { type: 'rule', color: 'gray', strokeDash: [2, 2] },
        encoding: { y: { field: 'value', type: 'quantitative' } },
      },
      {
        data: { values: PAPER_PEAKS },
        // Right-aligned under each rule, where the measured lines (all above ~700/s here) are not.
        mark: { type: 'text', align: 'right', dx: -4, dy: 8, color: 'gray', fontSize: 10 },
        encoding: {
          y: { field: 'value', type: 'quantitative' },
          x: { datum: maxConcurrency, type: 'quantitative' },
          text: { field: 'label' },
        },
      },
    ],
  };
}
