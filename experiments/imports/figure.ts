// Figure 3 of the paper: per package, download + install + import as one stacked bar (sorted by
// total, largest first), the paper's averages marked; below it, the share of a handler's cold
// start that a zygote which had already imported the package would save.
import type { Row } from '../../harness/types.js';

const PAPER_AVERAGES = [
  { phase: 'download', ms: 1600, label: 'paper: download 1.6 s' },
  { phase: 'install', ms: 2300, label: 'paper: install 2.3 s' },
  { phase: 'import', ms: 107, label: 'paper: import 107 ms' },
];

export function importsFigure(rows: Row[]): object {
  const ok = rows.filter((r) => !r.error && Number.isFinite(Number(r.import_ms)));
  const byPackage = new Map<string, Row[]>();
  for (const r of ok) byPackage.set(String(r.package), [...(byPackage.get(String(r.package)) ?? []), r]);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const packages = [...byPackage.entries()]
    .map(([name, rs]) => {
      const m = (col: string) => median(rs.map((r) => Number(r[col])));
      return {
        name,
        download: m('download_ms'),
        install: m('install_ms'),
        import: Math.max(0, m('import_ms')),
        start: m('python_start_ms'),
      };
    })
    .sort((a, b) => b.download + b.install + b.import - (a.download + a.install + a.import));
  const order = packages.map((p) => p.name);
  const stacked = packages.flatMap((p) =>
    (['download', 'install', 'import'] as const).map((phase) => ({ package: p.name, phase, ms: p[phase] })),
  );
  const shares = packages.map((p) => ({ package: p.name, share: p.import / (p.start + p.import) }));
  const color = {
    field: 'phase',
    type: 'nominal',
    scale: { domain: ['download', 'install', 'import'] },
    title: 'phase',
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'Python packages: download, install and import (Debian packages)',
      subtitle: "medians of repetitions; dashed lines: the paper's averages over its 20 packages",
    },
    vconcat: [
      {
        width: 640,
        height: 300,
        layer: [
          {
            data: { values: stacked },
            mark: 'bar',
            encoding: {
              x: { field: 'package', type: 'nominal', sort: order, title: null },
              y: { aggregate: 'sum', field: 'ms', type: 'quantitative', title: 'milliseconds' },
              color,
              order: { field: 'phase', sort: 'ascending' },
            },
          },
          {
            data: { values: PAPER_AVERAGES },
            mark: { type: 'rule', strokeDash: [4, 4] },
            encoding: { y: { field: 'ms', type: 'quantitative' }, color },
          },
          {
            data: { values: PAPER_AVERAGES },
            mark: { type: 'text', align: 'right', dy: -5, fontSize: 10 },
            encoding: { y: { field: 'ms', type: 'quantitative' }, x: { value: 640 }, text: { field: 'label' }, color },
          },
        ],
      },
      {
        width: 640,
        height: 160,
        data: { values: shares },
        mark: 'bar',
        encoding: {
          x: { field: 'package', type: 'nominal', sort: order, title: null },
          y: { field: 'share', type: 'quantitative', axis: { format: '%' }, title: 'cold start a zygote saves' },
        },
        title: {
          text: 'import time / (interpreter start + import time): what a zygote that had imported the package saves',
          fontSize: 11,
        },
      },
    ],
  };
}
