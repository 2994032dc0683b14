// The mntns study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { cRange, range, rate } from '../../harness/paperRepro/format.js';
import { columnOf, concurrencies, need, type RunData } from '../../harness/paperRepro/runData.js';

function mntns(run: RunData): string {
  const mounts = [...new Set(need(run, { config: 'mntns' }).map((r) => Number(r.host_mounts)))].sort((a, b) => a - b);
  const parts = mounts.map((m, i) => {
    const span = `${range(columnOf(run, { config: 'mntns', host_mounts: m }, 'ops_per_sec_median'), rate)}/s`;
    const bold = i === 0 || i === mounts.length - 1 ? `**${span}**` : span;
    return `${bold} with ${m === 0 ? 'no extra mounts' : rate(m)}`;
  });
  return `${parts.join(', ')} (${cRange(concurrencies(run, { config: 'mntns' }))})`;
}

export const paper: PaperFacts = {
  figure: {
    title: 'Mount namespaces against host mounts (Figure 2)',
    paper:
      "About 1,500 new mount namespaces per second with few host mounts, approaching zero as the host's mounts grow; `chroot` costs under 1 µs.",
    locks: 'The paper blamed copying every host mount into the new namespace.',
  },
  claims: [{ row: 5, ours: mntns }],
};
