// `sockbench figures`: redraw each experiment's figure from its latest complete run, so a
// figure can be restyled without measuring again.
import fs from 'node:fs';
import path from 'node:path';
import { readCsv } from './csv.js';
import { renderFigure } from './figures.js';
import type { Experiment, Row } from './types.js';

/** The newest run directory of an experiment whose meta.json says complete, if any. */
export function latestCompleteRun(out: string, experiment: string): string | undefined {
  const dir = path.join(out, 'results', experiment);
  if (!fs.existsSync(dir)) return undefined;
  const runs = fs.readdirSync(dir).sort().reverse();
  return runs
    .map((r) => path.join(dir, r))
    .find((r) => {
      try {
        const meta = JSON.parse(fs.readFileSync(path.join(r, 'meta.json'), 'utf8')) as { status?: string };
        return meta.status === 'complete' && fs.existsSync(path.join(r, 'data.csv'));
      } catch {
        return false;
      }
    });
}

export async function redrawFigures(experiments: Experiment[], out: string) {
  const drawn: { experiment: string; runDir: string; svgPath: string }[] = [];
  for (const exp of experiments) {
    const runDir = latestCompleteRun(out, exp.name);
    if (!runDir) continue;
    const rows = readCsv(path.join(runDir, 'data.csv')) as Row[];
    const { svgPath } = await renderFigure(exp.figure(rows), out, exp.name);
    drawn.push({ experiment: exp.name, runDir, svgPath });
  }
  return drawn;
}
