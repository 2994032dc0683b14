// The cgroups study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { cRange, range, rate } from '../../harness/paperRepro/format.js';
import { columnOf, concurrencies, valueAt, type RunData } from '../../harness/paperRepro/runData.js';

function cgroups(run: RunData): string {
  const versions = [...new Set(run.summary.map((r) => Number(r.cgroup_version)))].sort();
  const parts = versions.map((v) => {
    const cs = concurrencies(run, { config: 'reuse', cgroup_version: v });
    const gains = cs.map(
      (c) =>
        valueAt(run, { config: 'reuse', cgroup_version: v, concurrency: c }, 'ops_per_sec_median') /
        valueAt(run, { config: 'create', cgroup_version: v, concurrency: c }, 'ops_per_sec_median'),
    );
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
  claims: [{ row: 8, ours: cgroups }],
};
