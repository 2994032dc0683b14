// The ipcuts study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { cRange, range, rate } from '../../harness/paperRepro/format.js';
import { MissingData, concurrencies, valueAt, type RunData } from '../../harness/paperRepro/runData.js';
import { flat } from '../../harness/paperRepro/tolerances.js';

const NAMES: [string, string][] = [
  ['none', 'plain clone'],
  ['uts', 'UTS'],
  ['pid', 'PID'],
  ['ipc', 'IPC'],
  ['ipc+pid+uts', 'all three'],
];

/** The concurrencies the row reads. */
function flatnessPoints(run: RunData): number[] {
  const all = concurrencies(run, { config: 'none' });
  // At c=1 the native loop has no parallelism to show flatness with; the paper's claim is about growth.
  return all.length > 1 ? all.filter((c) => c > 1) : all;
}

/** Each set's rates over the row's concurrencies. */
function rates(run: RunData): number[][] {
  const cs = flatnessPoints(run);
  return NAMES.map(([config]) => {
    const values = cs.map((c) => valueAt(run, { config, concurrency: c }, 'ops_per_sec_median'));
    if (values.every((v) => !Number.isFinite(v))) throw new MissingData(`no ${config} config in ${run.rel}`);
    return values;
  });
}

function ipcuts(run: RunData): string {
  const parts = rates(run).map((values, i) => `${NAMES[i]![1]} ${range(values, rate)}/s`);
  return `${parts.join(', ')} (${cRange(flatnessPoints(run))})`;
}

export const paper: PaperFacts = {
  figure: {
    title: 'IPC, UTS and PID namespaces',
    paper: 'IPC and UTS namespaces are cheap and do not degrade with concurrency.',
  },
  claims: [
    {
      row: 9,
      ours: ipcuts,
      checks: [flat({ paper: 'flat', what: "each set's rate above c=1", series: rates })],
    },
  ],
};
