// `sockbench figures`: redraw each experiment's figure from its latest complete run, so a
// figure can be restyled without measuring again.
import path from 'node:path';
import { readCsv } from './csv.js';
import { renderFigure } from './figures.js';
import { lockFigure } from './lockFigure.js';
import { latestComplete, latestTraced } from './runDirs.js';
import type { Experiment, Row } from './types.js';

export async function redrawFigures(experiments: Experiment[], out: string) {
  const drawn: { experiment: string; runDir: string; svgPath: string }[] = [];
  for (const exp of experiments) {
    const runDir = latestComplete(out, exp.name);
    if (!runDir) continue;
    const rows = readCsv(path.join(runDir, 'data.csv')) as Row[];
    const { svgPath } = await renderFigure(exp.figure(rows), out, exp.name);
    drawn.push({ experiment: exp.name, runDir, svgPath });
    const locks = latestTraced(out, exp.name);
    if (locks) {
      const lockRows = readCsv(path.join(locks, 'locks.csv')) as unknown as Parameters<typeof lockFigure>[1];
      const drawnLocks = await renderFigure(lockFigure(exp.name, lockRows), out, `${exp.name}-locks`);
      drawn.push({ experiment: `${exp.name} (locks)`, runDir: locks, svgPath: drawnLocks.svgPath });
    }
  }
  return drawn;
}
