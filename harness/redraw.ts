// `sockbench figures`: redraw each experiment's figure from its latest complete run, so a
// figure can be restyled without measuring again.
import fs from 'node:fs';
import path from 'node:path';
import { readCsv } from './csv.js';
import { renderFigure } from './figures.js';
import { lockFigure } from './lockFigure.js';
import type { Experiment, Row } from './types.js';

/**
 * The newest run directory of an experiment whose meta.json says complete, preferring full
 * sweeps to --quick ones (a smoke run should not replace the figure of a real one).
 */
export function latestCompleteRun(out: string, experiment: string): string | undefined {
  const dir = path.join(out, 'results', experiment);
  if (!fs.existsSync(dir)) return undefined;
  const complete = fs
    .readdirSync(dir)
    .sort()
    .reverse()
    .map((r) => ({ dir: path.join(dir, r), meta: readMeta(path.join(dir, r)) }))
    .filter((r) => r.meta?.status === 'complete' && fs.existsSync(path.join(r.dir, 'data.csv')));
  return (complete.find((r) => !r.meta?.options?.quick) ?? complete[0])?.dir;
}

function readMeta(runDir: string): { status?: string; options?: { quick?: boolean } } | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(runDir, 'meta.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** The newest complete run that traced locks, whatever its sweep. */
export function latestTracedRun(out: string, experiment: string): string | undefined {
  const dir = path.join(out, 'results', experiment);
  if (!fs.existsSync(dir)) return undefined;
  return fs
    .readdirSync(dir)
    .sort()
    .reverse()
    .map((r) => path.join(dir, r))
    .find((r) => readMeta(r)?.status === 'complete' && fs.existsSync(path.join(r, 'locks.csv')));
}

export async function redrawFigures(experiments: Experiment[], out: string) {
  const drawn: { experiment: string; runDir: string; svgPath: string }[] = [];
  for (const exp of experiments) {
    const runDir = latestCompleteRun(out, exp.name);
    if (!runDir) continue;
    const rows = readCsv(path.join(runDir, 'data.csv')) as Row[];
    const { svgPath } = await renderFigure(exp.figure(rows), out, exp.name);
    drawn.push({ experiment: exp.name, runDir, svgPath });
    const locks = latestTracedRun(out, exp.name);
    if (locks) {
      const lockRows = readCsv(path.join(locks, 'locks.csv')) as unknown as Parameters<typeof lockFigure>[1];
      const drawnLocks = await renderFigure(lockFigure(exp.name, lockRows), out, `${exp.name}-locks`);
      drawn.push({ experiment: `${exp.name} (locks)`, runDir: locks, svgPath: drawnLocks.svgPath });
    }
  }
  return drawn;
}
