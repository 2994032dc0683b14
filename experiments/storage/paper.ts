// The storage study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { cRange, fixed, range, ratio, sig } from '../../harness/paperRepro/format.js';
import { MissingData, columnOf, concurrencies, valueAt, type RunData } from '../../harness/paperRepro/runData.js';
import { flat, sameDirection, underBound, withinFactor } from '../../harness/paperRepro/tolerances.js';

const CHROOT = { config: 'chroot', phase: 'setup' };

function chroot(run: RunData): string {
  return `**${range(columnOf(run, CHROOT, 'p50_us_median'), (n) => fixed(n, 2))} µs** p50 for \`chroot\` + \`chdir\` (${cRange(concurrencies(run, CHROOT))})`;
}

/** Setup p50 of a bind mount and of an overlayfs mount at the lowest concurrency: the row's headline. */
function setupAtLowest(run: RunData): { c: number; bind: number; overlay: number } {
  const c = concurrencies(run, { config: 'bind', phase: 'setup' })[0]!;
  const bind = valueAt(run, { config: 'bind', phase: 'setup', concurrency: c }, 'p50_us_median');
  const overlay = valueAt(run, { config: 'overlay', phase: 'setup', concurrency: c }, 'p50_us_median');
  if (!Number.isFinite(overlay)) throw new MissingData(`no overlay config in ${run.rel}`);
  return { c, bind, overlay };
}

function bindGain(run: RunData): number {
  const { bind, overlay } = setupAtLowest(run);
  return overlay / bind;
}

function storage(run: RunData): string {
  const cs = concurrencies(run, { config: 'bind', phase: 'setup' });
  const { c: c1, bind, overlay } = setupAtLowest(run);
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
    {
      row: 6,
      ours: chroot,
      checks: [
        underBound({
          paper: '< 1 µs',
          bound: 1,
          unit: ' µs',
          what: '`chroot` + `chdir` p50 at every concurrency',
          measure: (run) => columnOf(run, CHROOT, 'p50_us_median'),
        }),
      ],
      caveat: 'see below',
    },
    {
      row: 7,
      ours: storage,
      checks: [
        sameDirection({
          paper: '2x',
          ratio: 'overlayfs setup p50 over bind setup p50, at the lowest concurrency',
          ratios: (run) => [bindGain(run)],
        }),
        withinFactor({ paper: '2x', value: 2, unit: 'x', what: 'that ratio', measure: (run) => [bindGain(run)] }),
        flat({
          paper: 'neither degrades with concurrency',
          what: "each of bind's and overlayfs' setup p50",
          series: (run) =>
            ['bind', 'overlay'].map((config) => columnOf(run, { config, phase: 'setup' }, 'p50_us_median')),
        }),
      ],
      caveat: 'against overlayfs: AUFS is not in mainline; teardown does slow with concurrency (see below)',
    },
  ],
};
