// Draws each study's figure from exactly the run its caption cites, so the picture and the
// numbers beside it can never come from two different runs.
import path from 'node:path';
import { readCsv } from '../csv.js';
import { renderFigure } from '../figures.js';
import { lockFigure } from '../lockFigure.js';
import { latestTraced, listRuns } from '../runDirs.js';
import type { Experiment, Row } from '../types.js';
import type { StudyOutcome } from './regenerate.js';
import { loadRunData, type RunData } from './runData.js';

export interface DrawnFigure {
  svgPath: string;
  run: RunData;
}

function hasFullRun(out: string, study: string): boolean {
  return listRuns(out, study).some((dir) => {
    const run = loadRunData(out, dir);
    return run !== undefined && !run.quick;
  });
}

/**
 * Figures by name ('netns', 'netns-locks'). A --quick run's figure goes in its own run
 * directory when a full run exists, as the runner does, so it never replaces a full run's.
 */
export async function drawFigures(
  experiments: readonly Experiment[],
  out: string,
  outcomes: Map<string, StudyOutcome>,
): Promise<Map<string, DrawnFigure>> {
  const drawn = new Map<string, DrawnFigure>();
  for (const exp of experiments) {
    const outcome = outcomes.get(exp.name);
    if (outcome && 'run' in outcome) {
      const run = outcome.run;
      const root = run.quick && hasFullRun(out, exp.name) ? path.join(out, run.rel) : out;
      const { svgPath } = await renderFigure(exp.figure(run.data() as Row[]), root, exp.name);
      drawn.set(exp.name, { svgPath, run });
    }
    const tracedDir = latestTraced(out, exp.name);
    const traced = tracedDir ? loadRunData(out, tracedDir) : undefined;
    if (traced) {
      const rows = readCsv(path.join(out, traced.rel, 'locks.csv')) as unknown as Parameters<typeof lockFigure>[1];
      const { svgPath } = await renderFigure(lockFigure(exp.name, rows), out, `${exp.name}-locks`);
      drawn.set(`${exp.name}-locks`, { svgPath, run: traced });
    }
  }
  return drawn;
}
