// The mntns study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { cRange, range, rate } from '../../harness/paperRepro/format.js';
import { MissingData, columnOf, concurrencies, need, valueAt, type RunData } from '../../harness/paperRepro/runData.js';
import { shape, withinFactor } from '../../harness/paperRepro/tolerances.js';

/** The counts of extra host mounts measured, ascending. */
function hostMounts(run: RunData): number[] {
  return [...new Set(need(run, { config: 'mntns' }).map((r) => Number(r.host_mounts)))].sort((a, b) => a - b);
}

/** At every concurrency, whether each step up in host mounts lowered the rate; the rates at the fewest and the most. */
function fallsWithMounts(run: RunData): { ours: string; holds: boolean } {
  const mounts = hostMounts(run);
  if (mounts.length < 2) throw new MissingData(`one count of host mounts in ${run.rel}: no trend to judge`);
  const cs = concurrencies(run, { config: 'mntns' });
  const at = (m: number, c: number) => {
    const v = valueAt(run, { config: 'mntns', host_mounts: m, concurrency: c }, 'ops_per_sec_median');
    if (!Number.isFinite(v)) throw new MissingData(`no mntns point with ${m} host mounts at c=${c} in ${run.rel}`);
    return v;
  };
  const falls = cs.every((c) => mounts.every((m, i) => i === 0 || at(m, c) < at(mounts[i - 1]!, c)));
  const fewest = columnOf(run, { config: 'mntns', host_mounts: mounts[0]! }, 'ops_per_sec_median');
  const most = columnOf(run, { config: 'mntns', host_mounts: mounts[mounts.length - 1]! }, 'ops_per_sec_median');
  return {
    ours: `${range(fewest, rate)}/s with ${rate(mounts[0]!)} extra, ${range(most, rate)}/s with ${rate(mounts[mounts.length - 1]!)}`,
    holds: falls,
  };
}

function mntns(run: RunData): string {
  const mounts = hostMounts(run);
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
  claims: [
    {
      row: 5,
      ours: mntns,
      checks: [
        withinFactor({
          paper: '~1,500/s',
          value: 1500,
          unit: '/s',
          what: 'the peak rate with the fewest host mounts measured',
          measure: (run) => [
            Math.max(...columnOf(run, { config: 'mntns', host_mounts: hostMounts(run)[0]! }, 'ops_per_sec_median')),
          ],
        }),
        shape({
          paper: 'approaching zero as host mounts grow',
          property: 'falls with every step up in host mounts, at every concurrency',
          judge: fallsWithMounts,
        }),
      ],
    },
  ],
};
