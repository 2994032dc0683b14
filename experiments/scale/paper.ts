// The scale study against the paper: its figure's caption on the figures page and the rows of
// paper-repro.md's claims table it fills, each sentence's numbers read from a run's summary.
import type { PaperFacts } from '../../harness/types.js';
import { range, ratio, sig } from '../../harness/paperRepro/format.js';
import { MissingData, valueAt, type RunData } from '../../harness/paperRepro/runData.js';

function scale(run: RunData): string {
  const lambdas = [...new Set(run.summary.map((r) => Number(r.lambdas)))].sort((a, b) => a - b);
  const budgets = [...new Set(run.summary.map((r) => Number(r.budget_mb)))].filter((b) => b > 0).sort((a, b) => a - b);
  if (budgets.length === 0 || !run.summary.some((r) => Number(r.budget_mb) === 0))
    throw new MissingData(`no budget 0 and budget > 0 pair in ${run.rel}`);
  const at = (budget: number, n: number, col: string) => valueAt(run, { budget_mb: budget, lambdas: n }, col);
  const medianGains = lambdas.flatMap((n) => budgets.map((b) => at(0, n, 'p50_us_median') / at(b, n, 'p50_us_median')));
  const meanGains = lambdas.flatMap((n) =>
    budgets.map((b) => ({ b, g: at(0, n, 'mean_us_median') / at(b, n, 'mean_us_median') })),
  );
  const bestMean = meanGains.reduce((a, b) => (b.g > a.g ? b : a));
  const n0 = lambdas[0]!;
  const b0 = budgets[0]!;
  return `the import cache alone over hundreds of lambdas (handler cache off): median start **${range(medianGains, (g) => g.toFixed(1))}x** lower with a budget (${sig(at(0, n0, 'p50_us_median') / 1000)} → ${sig(at(b0, n0, 'p50_us_median') / 1000)} ms at ${n0} lambdas, ${b0} MiB), mean up to ${ratio(bestMean.g)} (at ${bestMean.b} MiB)`;
}

export const paper: PaperFacts = {
  figure: {
    title: 'Scaling with lambdas and the import-cache budget',
    paper:
      'The import cache keeps its gains as the number of distinct lambdas and packages grows, under a memory budget.',
  },
  claims: [{ row: 14, ours: scale }],
};
