// The cgroups study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { cRange, range, rate } from '../../harness/paperRepro/format.js';
import { MissingData, columnOf, concurrencies, valueAt, type RunData } from '../../harness/paperRepro/runData.js';
import { sameDirection, withinFactor } from '../../harness/paperRepro/tolerances.js';

function versionsOf(run: RunData): number[] {
  return [...new Set(run.summary.map((r) => Number(r.cgroup_version)))].sort();
}

/** Reuse over create, at each concurrency measured on one cgroup version. */
function gainsOn(run: RunData, v: number): number[] {
  return concurrencies(run, { config: 'reuse', cgroup_version: v }).map(
    (c) =>
      valueAt(run, { config: 'reuse', cgroup_version: v, concurrency: c }, 'ops_per_sec_median') /
      valueAt(run, { config: 'create', cgroup_version: v, concurrency: c }, 'ops_per_sec_median'),
  );
}

/** The gains the row puts first, in bold: on the first version measured (v1 where the controllers are there). */
function headlineGains(run: RunData): number[] {
  const v = versionsOf(run)[0];
  if (v === undefined) throw new MissingData(`no cgroup version in ${run.rel}`);
  return gainsOn(run, v);
}

function cgroups(run: RunData): string {
  const versions = versionsOf(run);
  const parts = versions.map((v) => {
    const cs = concurrencies(run, { config: 'reuse', cgroup_version: v });
    const gains = gainsOn(run, v);
    const reuse = columnOf(run, { config: 'reuse', cgroup_version: v }, 'ops_per_sec_median');
    const create = columnOf(run, { config: 'create', cgroup_version: v }, 'ops_per_sec_median');
    const gain = `${range(gains, (g) => g.toFixed(1))}x on cgroup v${v}`;
    return `${v === versions[0] ? `**${gain}**` : gain} (reuse ${range(reuse, rate)}/s, create ${range(create, rate)}/s, ${cRange(cs)})`;
  });
  return parts.join('; ');
}

export const paper: PaperFacts = {
  figure: {
    title: 'Cgroups: create against reuse',
    paper: 'Reusing a cgroup from a pool is about 2x faster than creating one.',
  },
  claims: [
    {
      row: 8,
      ours: cgroups,
      checks: [
        sameDirection({
          paper: '2x',
          ratio: 'reuse rate over create rate at every concurrency, on the first cgroup version measured',
          ratios: headlineGains,
        }),
        withinFactor({ paper: '2x', value: 2, unit: 'x', what: 'those ratios', measure: headlineGains }),
      ],
      caveat: 'see below',
    },
  ],
};
