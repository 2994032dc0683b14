// The figures page's captions: for each study's figure, what the paper found (its words,
// fixed) and what we found (the claims' sentences, computed from the same runs as
// paper-repro.md's table), and for each traced study its heaviest kernel lock wait.
import path from 'node:path';
import { readCsv } from '../csv.js';
import type { FigureCaption } from '../figuresPage.js';
import type { PaperSource } from './claims.js';
import { lockParams } from '../tracer.js';
import { sig } from './format.js';
import type { DrawnFigure } from './drawFigures.js';
import { MissingData, type RunData } from './runData.js';
import type { StudyOutcome } from './regenerate.js';

/** The claims' sentences for a study, without their sources (the caption lists those apart). */
function oursFor(source: PaperSource, run: RunData): string {
  return source.paper.claims
    .map((c) => {
      try {
        return c.ours(run);
      } catch (e) {
        if (e instanceof MissingData) return `not measured: ${e.message}`;
        throw e;
      }
    })
    .join('. ');
}

function sourceOf(run: RunData): FigureCaption['sources'][number] {
  return {
    run: run.rel,
    machine: run.machine,
    kernel: `Linux ${run.kernel}${run.quick ? ' (--quick sweep)' : ''}${run.emulated ? ' (software-emulated guest)' : ''}`,
  };
}

/** The call path that waited longest per measurement, at the highest concurrency traced. */
function heaviestWait(out: string, run: RunData): string {
  const rows = readCsv(path.join(out, run.rel, 'locks.csv'));
  if (rows.length === 0) return 'no contended lock was recorded';
  const top = Math.max(...rows.map((r) => Number(r.concurrency)));
  const params = lockParams(rows[0]);
  const totals = new Map<string, { point: string; path: string; us: number; repeats: Set<number> }>();
  for (const r of rows.filter((x) => Number(x.concurrency) === top)) {
    const point = [`config ${r.config}`, ...params.map((p) => `${p}=${r[p]}`)].join(', ');
    const key = `${point}\0${r.operation}: ${r.call_path}`;
    const t = totals.get(key) ?? { point, path: `${r.operation}: ${r.call_path}`, us: 0, repeats: new Set() };
    t.us += Number(r.wait_total_us);
    t.repeats.add(Number(r.repeat));
    totals.set(key, t);
  }
  const heaviest = [...totals.values()].reduce((a, b) => (b.us > a.us ? b : a));
  return `the heaviest lock wait at c=${top} is **${sig(heaviest.us / heaviest.repeats.size / 1000)} ms** per measurement, summed over the threads that waited (${heaviest.point}), on \`${heaviest.path}\``;
}

/** Captions for every study figure and every lock figure drawn, in the order of the sources. */
export function figureCaptions(
  sources: readonly PaperSource[],
  figuresDir: string,
  outcomes: Map<string, StudyOutcome>,
  drawn: Map<string, DrawnFigure>,
): FigureCaption[] {
  const file = (f: DrawnFigure) => path.relative(figuresDir, f.svgPath).split(path.sep).join('/');
  const withFigure = sources.flatMap((s) => (s.paper.figure ? [{ source: s, text: s.paper.figure }] : []));
  const captions: FigureCaption[] = [];
  for (const { source, text } of withFigure) {
    const outcome = outcomes.get(source.name) ?? { skipped: 'no complete run' };
    const figure = drawn.get(source.name);
    if ('skipped' in outcome || !figure) {
      const why = 'skipped' in outcome ? outcome.skipped : 'no figure drawn';
      captions.push({
        file: `${source.name}.svg`,
        title: text.title,
        paper: text.paper,
        ours: `Not run: ${why}.`,
        sources: [],
        missing: `${source.name} not run: ${why}`,
      });
      continue;
    }
    captions.push({
      file: file(figure),
      title: text.title,
      paper: text.paper,
      ours: `${oursFor(source, outcome.run)}.`,
      sources: [sourceOf(outcome.run)],
    });
  }
  for (const { source, text } of withFigure) {
    const figure = drawn.get(`${source.name}-locks`);
    if (!figure) continue;
    captions.push({
      file: file(figure),
      title: `${text.title}: kernel lock waits`,
      paper: text.locks ?? 'The paper did not trace kernel locks for this study; the figure is ours.',
      ours: `Lock waits by call path against concurrency, from bpftrace beside a \`--trace locks\` run: ${heaviestWait(path.dirname(figuresDir), figure.run)}.`,
      sources: [sourceOf(figure.run)],
    });
  }
  return captions;
}
