// Figure 2 as we draw it: operations per second against the number of extra host mounts, a
// solid line per concurrency for new mount namespaces and a dashed one for chroot.
import type { Row } from '../../harness/types.js';

export function mntnsFigure(rows: Row[]): object {
  const values = rows.map((r) => ({
    config: r.config,
    concurrency: String(r.concurrency),
    host_mounts: Number(r.host_mounts),
    rate: Number(r.ops_per_sec),
  }));
  const concurrencies = [...new Set(rows.map((r) => Number(r.concurrency)))].sort((a, b) => a - b).map(String);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: 'Mount namespaces against host mounts',
      subtitle: 'new namespace (or chroot) per second, created and torn down; median of repetitions',
    },
    width: 520,
    height: 340,
    data: { values },
    encoding: {
      // symlog: the sweep starts at 0 extra mounts and reaches 10,000.
      x: {
        field: 'host_mounts',
        type: 'quantitative',
        scale: { type: 'symlog', constant: 10 },
        axis: { values: [...new Set(values.map((v) => v.host_mounts))] },
        title: 'extra mounts in the host namespace',
      },
      y: {
        aggregate: 'median',
        field: 'rate',
        type: 'quantitative',
        scale: { type: 'log' },
        title: 'operations / second',
      },
      color: { field: 'concurrency', type: 'ordinal', sort: concurrencies, title: 'concurrency' },
      strokeDash: {
        field: 'config',
        type: 'nominal',
        title: 'operation',
        scale: {
          domain: ['mntns', 'chroot'],
          range: [
            [1, 0],
            [5, 3],
          ],
        },
        legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolStrokeColor: 'black' },
      },
      detail: { field: 'config' },
    },
    layer: [{ mark: 'line' }, { mark: { type: 'point', filled: true } }],
  };
}
