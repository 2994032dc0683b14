// The ipcuts study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { cRange, range, rate } from '../../harness/paperRepro/format.js';
import { MissingData, concurrencies, valueAt, type RunData } from '../../harness/paperRepro/runData.js';

function ipcuts(run: RunData): string {
  const names: [string, string][] = [
    ['none', 'plain clone'],
    ['uts', 'UTS'],
    ['pid', 'PID'],
    ['ipc', 'IPC'],
    ['ipc+pid+uts', 'all three'],
  ];
  const all = concurrencies(run, { config: 'none' });
  // At c=1 the native loop has no parallelism to show flatness with; the paper's claim is about growth.
  const cs = all.length > 1 ? all.filter((c) => c > 1) : all;
  const parts = names.map(([config, label]) => {
    const values = cs.map((c) => valueAt(run, { config, concurrency: c }, 'ops_per_sec_median'));
    if (values.every((v) => !Number.isFinite(v))) throw new MissingData(`no ${config} config in ${run.rel}`);
    return `${label} ${range(values, rate)}/s`;
  });
  return `${parts.join(', ')} (${cRange(cs)})`;
}

export const paper: PaperFacts = {
  figure: {
    title: 'IPC, UTS and PID namespaces',
    paper: 'IPC and UTS namespaces are cheap and do not degrade with concurrency.',
  },
  claims: [{ row: 9, ours: ipcuts }],
};
