// The imports study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { fixed, range, rate } from '../../harness/paperRepro/format.js';
import { MissingData, type RunData } from '../../harness/paperRepro/runData.js';
import { withinFactor } from '../../harness/paperRepro/tolerances.js';

/** A column's average over the packages measured. */
function average(run: RunData, column: string): number {
  const rows = run.summary;
  if (rows.length === 0) throw new MissingData(`no packages in ${run.rel}`);
  return rows.reduce((s, r) => s + Number(r[column]), 0) / rows.length;
}

/** The paper's averages, each judged on its own: the row reproduces some and not others. */
const AVERAGES: { step: string; paper: string; ms: number }[] = [
  { step: 'download', paper: '~1.6 s', ms: 1600 },
  { step: 'install', paper: '~2.3 s', ms: 2300 },
  { step: 'import', paper: '~107 ms', ms: 107 },
];

function imports(run: RunData): string {
  const rows = run.summary;
  const full = rows.map(
    (r) => (Number(r.download_ms_median) + Number(r.install_ms_median) + Number(r.import_ms_median)) / 1000,
  );
  return `averages over ${rows.length} packages from Debian: download **${rate(average(run, 'download_ms_median'))} ms**, install (unpack + byte-compile) **${rate(average(run, 'install_ms_median'))} ms**, import **${rate(average(run, 'import_ms_median'))} ms**; full init ${range(full, (n) => fixed(n, 1))} s`;
}

export const paper: PaperFacts = {
  figure: {
    title: 'Python packages: download, install, import (Figure 3)',
    paper:
      'Full initialisation of a popular package takes 1–13 s: about 1.6 s to download, 2.3 s to install and 107 ms to import, on average.',
  },
  claims: [
    {
      row: 11,
      ours: imports,
      checks: AVERAGES.map((a) =>
        withinFactor({
          judges: a.step,
          paper: `${a.paper} on average`,
          value: a.ms,
          unit: ' ms',
          what: `the average ${a.step}`,
          measure: (run) => [average(run, `${a.step}_ms_median`)],
        }),
      ),
      caveat: 'see below',
    },
  ],
};
