// The imports study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { fixed, range, rate } from '../../harness/paperRepro/format.js';
import { MissingData, type RunData } from '../../harness/paperRepro/runData.js';

function imports(run: RunData): string {
  const rows = run.summary;
  if (rows.length === 0) throw new MissingData(`no packages in ${run.rel}`);
  const mean = (col: string) => rows.reduce((s, r) => s + Number(r[col]), 0) / rows.length;
  const full = rows.map(
    (r) => (Number(r.download_ms_median) + Number(r.install_ms_median) + Number(r.import_ms_median)) / 1000,
  );
  return `averages over ${rows.length} packages from Debian: download **${rate(mean('download_ms_median'))} ms**, install (unpack + byte-compile) **${rate(mean('install_ms_median'))} ms**, import **${rate(mean('import_ms_median'))} ms**; full init ${range(full, (n) => fixed(n, 1))} s`;
}

export const paper: PaperFacts = {
  figure: {
    title: 'Python packages: download, install, import (Figure 3)',
    paper:
      'Full initialisation of a popular package takes 1–13 s: about 1.6 s to download, 2.3 s to install and 107 ms to import, on average.',
  },
  claims: [{ row: 11, ours: imports }],
};
