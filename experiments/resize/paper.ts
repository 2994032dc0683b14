// The resize study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { fixed, ratio, sig } from '../../harness/paperRepro/format.js';
import { MissingData, valueAt, type RunData } from '../../harness/paperRepro/runData.js';

const resizeAt = (run: RunData, config: string, col: string) => {
  const v = valueAt(run, { config }, col);
  if (!Number.isFinite(v)) throw new MissingData(`no ${config} config in ${run.rel}`);
  return v;
};

function resizeTiers(run: RunData): string {
  const cold = resizeAt(run, 'cold', 'platform_ms_median');
  const warm = resizeAt(run, 'warm', 'platform_ms_median');
  const e2e = resizeAt(run, 'cold', 'p50_us_median') / resizeAt(run, 'warm', 'p50_us_median');
  return `all three tiers, image resizing: platform latency **${ratio(cold / warm)}** lower warm than cold (${sig(cold)} → ${sig(warm)} ms; ${ratio(e2e)} end to end)`;
}

function resizeStates(run: RunData): string {
  const p = (config: string) => resizeAt(run, config, 'platform_ms_median');
  const compute = ['cold', 'cold+', 'warm'].map((c) => sig(resizeAt(run, c, 'compute_ms_median'))).join(' / ');
  return `platform latency (end to end minus the handler's compute): cold **${sig(p('cold'))} ms**, cold+ **${sig(p('cold+'))} ms** (**${ratio(p('cold') / p('cold+'))}**), warm **${sig(p('warm'))} ms**, of which thawing the frozen instance **${fixed(resizeAt(run, 'warm', 'sandbox_ms_median'), 2)} ms**; compute ${compute} ms`;
}

export const paper: PaperFacts = {
  figure: {
    title: 'Image resizing (Figure 7)',
    paper: "SOCK's platform latency is 365 ms cold and 120 ms cold+ (another handler recently imported Pillow): 3x.",
  },
  claims: [
    { row: 14, ours: resizeTiers },
    { row: 15, ours: resizeStates },
  ],
};
