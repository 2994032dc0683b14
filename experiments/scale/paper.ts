// The scale study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { range, ratio, sig } from '../../harness/paperRepro/format.js';
import { MissingData, valueAt, type RunData } from '../../harness/paperRepro/runData.js';
import { sameDirection } from '../../harness/paperRepro/tolerances.js';

/** The numbers of lambdas and the budgets above 0 measured, ascending; throws without a budget-0 baseline. */
function sweep(run: RunData): { lambdas: number[]; budgets: number[] } {
  const lambdas = [...new Set(run.summary.map((r) => Number(r.lambdas)))].sort((a, b) => a - b);
  const budgets = [...new Set(run.summary.map((r) => Number(r.budget_mb)))].filter((b) => b > 0).sort((a, b) => a - b);
  if (budgets.length === 0 || !run.summary.some((r) => Number(r.budget_mb) === 0))
    throw new MissingData(`no budget 0 and budget > 0 pair in ${run.rel}`);
  return { lambdas, budgets };
}

const at = (run: RunData, budget: number, n: number, col: string) =>
  valueAt(run, { budget_mb: budget, lambdas: n }, col);

/** The median start without the import cache over with it, at every budget and number of lambdas. */
function medianGains(run: RunData): number[] {
  const { lambdas, budgets } = sweep(run);
  return lambdas.flatMap((n) => budgets.map((b) => at(run, 0, n, 'p50_us_median') / at(run, b, n, 'p50_us_median')));
}

function scale(run: RunData): string {
  const { lambdas, budgets } = sweep(run);
  const medians = medianGains(run);
  const meanGains = lambdas.flatMap((n) =>
    budgets.map((b) => ({ b, g: at(run, 0, n, 'mean_us_median') / at(run, b, n, 'mean_us_median') })),
  );
  const bestMean = meanGains.reduce((a, b) => (b.g > a.g ? b : a));
  const n0 = lambdas[0]!;
  const b0 = budgets[0]!;
  return `the import cache alone over hundreds of lambdas (handler cache off): median start **${range(medians, (g) => g.toFixed(1))}x** lower with a budget (${sig(at(run, 0, n0, 'p50_us_median') / 1000)} → ${sig(at(run, b0, n0, 'p50_us_median') / 1000)} ms at ${n0} lambdas, ${b0} MiB), mean up to ${ratio(bestMean.g)} (at ${bestMean.b} MiB)`;
}

export const paper: PaperFacts = {
  figure: {
    title: 'Scaling with lambdas and the import-cache budget',
    paper:
      'The import cache keeps its gains as the number of distinct lambdas and packages grows, under a memory budget.',
  },
  claims: [
    {
      row: 14,
      ours: scale,
      // The paper's 45x is all three tiers together; this run has the import cache alone, so only its direction is judged.
      checks: [
        sameDirection({
          paper: '45x',
          ratio: 'the median start without the import cache over with it, at every budget and number of lambdas',
          ratios: medianGains,
        }),
      ],
    },
  ],
};
