// The resize study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { fixed, ratio, sig } from '../../harness/paperRepro/format.js';
import { MissingData, valueAt, type RunData } from '../../harness/paperRepro/runData.js';
import { sameDirection, withinFactor } from '../../harness/paperRepro/tolerances.js';

const resizeAt = (run: RunData, config: string, col: string) => {
  const v = valueAt(run, { config }, col);
  if (!Number.isFinite(v)) throw new MissingData(`no ${config} config in ${run.rel}`);
  return v;
};

const platform = (run: RunData, config: string) => resizeAt(run, config, 'platform_ms_median');

/** Platform latency cold over warm: what all three tiers together take off a start. */
const tiersGain = (run: RunData) => platform(run, 'cold') / platform(run, 'warm');

/** Platform latency cold over cold+: what a zygote that imported the package takes off. */
const coldPlusGain = (run: RunData) => platform(run, 'cold') / platform(run, 'cold+');

function resizeTiers(run: RunData): string {
  const cold = platform(run, 'cold');
  const warm = platform(run, 'warm');
  const e2e = resizeAt(run, 'cold', 'p50_us_median') / resizeAt(run, 'warm', 'p50_us_median');
  return `all three tiers, image resizing: platform latency **${ratio(cold / warm)}** lower warm than cold (${sig(cold)} → ${sig(warm)} ms; ${ratio(e2e)} end to end)`;
}

function resizeStates(run: RunData): string {
  const p = (config: string) => platform(run, config);
  const compute = ['cold', 'cold+', 'warm'].map((c) => sig(resizeAt(run, c, 'compute_ms_median'))).join(' / ');
  return `platform latency (end to end minus the handler's compute): cold **${sig(p('cold'))} ms**, cold+ **${sig(p('cold+'))} ms** (**${ratio(p('cold') / p('cold+'))}**), warm **${sig(p('warm'))} ms**, of which thawing the frozen instance **${fixed(resizeAt(run, 'warm', 'sandbox_ms_median'), 2)} ms**; compute ${compute} ms`;
}

export const paper: PaperFacts = {
  figure: {
    title: 'Image resizing (Figure 7)',
    paper: "SOCK's platform latency is 365 ms cold and 120 ms cold+ (another handler recently imported Pillow): 3x.",
  },
  claims: [
    {
      row: 14,
      ours: resizeTiers,
      checks: [
        sameDirection({
          paper: '45x',
          ratio: 'platform latency cold over warm, all three tiers',
          ratios: (run) => [tiersGain(run)],
        }),
        withinFactor({ paper: '45x', value: 45, unit: 'x', what: 'that ratio', measure: (run) => [tiersGain(run)] }),
      ],
      caveat: 'the texts we have do not say on what workload the paper measured it (see below)',
    },
    {
      row: 15,
      ours: resizeStates,
      checks: [
        sameDirection({
          paper: '3x',
          ratio: 'platform latency cold over cold+',
          ratios: (run) => [coldPlusGain(run)],
        }),
        withinFactor({
          judges: 'gain',
          paper: '3x',
          value: 3,
          unit: 'x',
          what: 'that ratio',
          measure: (run) => [coldPlusGain(run)],
        }),
        withinFactor({
          judges: 'cold latency',
          paper: '365 ms',
          value: 365,
          unit: ' ms',
          what: 'the platform latency cold',
          measure: (run) => [platform(run, 'cold')],
        }),
        withinFactor({
          judges: 'cold+ latency',
          paper: '120 ms',
          value: 120,
          unit: ' ms',
          what: 'the platform latency cold+',
          measure: (run) => [platform(run, 'cold+')],
        }),
      ],
      caveat: 'AWS Lambda and OpenWhisk not measured (see below)',
    },
  ],
};
