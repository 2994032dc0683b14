// The zygote study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { ratio, sig } from '../../harness/paperRepro/format.js';
import { MissingData, valueAt, type RunData } from '../../harness/paperRepro/runData.js';
import { sameDirection, withinFactor } from '../../harness/paperRepro/tolerances.js';

/** zygote rows are summarised by package-set index; data.csv names the set. */
function packageSets(run: RunData): [number, string][] {
  const names = new Map<number, string>();
  for (const r of run.data()) names.set(Number(r.set), String(r.packages));
  return [...names.entries()].sort((a, b) => a[0] - b[0]);
}

/** The no-op handler's set: the row's headline compares its lean start with its fork of the root zygote. */
function noopSet(run: RunData, sets = packageSets(run)): number {
  const none = sets.find(([, p]) => p === 'none');
  if (!none) throw new MissingData(`no handler without packages in ${run.rel}`);
  return none[0];
}

/** A lean start over a fork of the root zygote, for a no-op handler (medians, end to end). */
function forkGain(run: RunData): number {
  const set = noopSet(run);
  return (
    valueAt(run, { config: 'lean', set }, 'p50_us_median') /
    valueAt(run, { config: 'root-zygote', set }, 'p50_us_median')
  );
}

function zygote(run: RunData): string {
  const sets = packageSets(run);
  const none = noopSet(run, sets);
  const at = (config: string, set: number, col: string) => valueAt(run, { config, set }, col);
  const lean = at('lean', none, 'p50_us_median') / 1000;
  const root = at('root-zygote', none, 'p50_us_median') / 1000;
  let text = `no-op handler, end to end over the worker: lean **${sig(lean)} ms**, forked from the root zygote **${sig(root)} ms** (**${ratio(lean / root)}**; the worker's own sandbox time ${sig(at('lean', none, 'sandbox_ms_median'))} → ${sig(at('root-zygote', none, 'sandbox_ms_median'))} ms)`;
  const gains = sets
    .filter(([s, p]) => p !== 'none' && Number.isFinite(at('zygote', s, 'p50_us_median')))
    .map(([s, p]) => ({
      p,
      lean: at('lean', s, 'p50_us_median') / 1000,
      zyg: at('zygote', s, 'p50_us_median') / 1000,
    }));
  if (gains.length > 0) {
    const best = gains.reduce((a, b) => (b.lean / b.zyg > a.lean / a.zyg ? b : a));
    const others = gains.filter((g) => g !== best).map((g) => `${g.p} ${ratio(g.lean / g.zyg)}`);
    text += `; with a zygote that imported the handler's package: ${[...others, `${best.p} **${ratio(best.lean / best.zyg)}** (${sig(best.lean)} → ${sig(best.zyg)} ms)`].join(', ')}`;
  }
  return text;
}

export const paper: PaperFacts = {
  figure: {
    title: 'Generalized zygotes',
    paper:
      'Forking handlers from zygotes that already imported their packages gives about 3x on top of lean containers; with the whole three-tier cache, 45x.',
  },
  claims: [
    {
      row: 13,
      ours: zygote,
      checks: [
        sameDirection({
          paper: '~3x',
          ratio: "a no-op handler's lean start over its fork of the root zygote",
          ratios: (run) => [forkGain(run)],
        }),
        withinFactor({ paper: '~3x', value: 3, unit: 'x', what: 'that ratio', measure: (run) => [forkGain(run)] }),
      ],
      caveat: 'with every protection on (see below)',
    },
  ],
};
