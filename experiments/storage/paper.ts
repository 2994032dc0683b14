// The storage study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { cRange, fixed, range, ratio, sig } from '../../harness/paperRepro/format.js';
import { MissingData, columnOf, concurrencies, valueAt, type RunData } from '../../harness/paperRepro/runData.js';

function chroot(run: RunData): string {
  const where = { config: 'chroot', phase: 'setup' };
  return `**${range(columnOf(run, where, 'p50_us_median'), (n) => fixed(n, 2))} µs** p50 for \`chroot\` + \`chdir\` (${cRange(concurrencies(run, where))})`;
}

function storage(run: RunData): string {
  const cs = concurrencies(run, { config: 'bind', phase: 'setup' });
  const c1 = cs[0]!;
  const bind = valueAt(run, { config: 'bind', phase: 'setup', concurrency: c1 }, 'p50_us_median');
  const overlay = valueAt(run, { config: 'overlay', phase: 'setup', concurrency: c1 }, 'p50_us_median');
  if (!Number.isFinite(overlay)) throw new MissingData(`no overlay config in ${run.rel}`);
  const cycles = cs.map(
    (c) =>
      valueAt(run, { config: 'bind', phase: 'setup', concurrency: c }, 'ops_per_sec_median') /
      valueAt(run, { config: 'overlay', phase: 'setup', concurrency: c }, 'ops_per_sec_median'),
  );
  const bindSetup = columnOf(run, { config: 'bind', phase: 'setup' }, 'p50_us_median');
  return `bind setup **${ratio(overlay / bind)}** faster than overlayfs (${sig(bind)} against ${sig(overlay)} µs p50 at c=${c1}), whole cycles ${range(cycles, (g) => g.toFixed(1))}x; bind setup p50 ${range(bindSetup, sig)} µs over ${cRange(cs)}`;
}

export const paper: PaperFacts = {
  figure: {
    title: 'Provisioning a container root',
    paper: 'Bind mounts are about 2x faster than AUFS, and neither degrades with concurrency.',
  },
  claims: [
    { row: 6, ours: chroot },
    { row: 7, ours: storage },
  ],
};
