// The figures page's captions: for each study's figure, what the paper found (its words,
// fixed) and what we found (the claims' sentences, computed from the same runs as
// paper-repro.md's table), and for each traced study its heaviest kernel lock wait.
import path from 'node:path';
import { readCsv } from '../csv.js';
import type { FigureCaption } from '../figuresPage.js';
import { CLAIMS, MissingData } from './claims.js';
import { sig } from './format.js';
import type { DrawnFigure } from './drawFigures.js';
import type { RunData } from './runData.js';
import type { StudyOutcome } from './regenerate.js';

interface FigureText {
  study: string;
  title: string;
  paper: string;
}

const STUDY_FIGURES: FigureText[] = [
  {
    study: 'netns',
    title: "Network namespaces (the paper's Figure 1)",
    paper:
      'Creating and destroying containers with all five namespaces peaks at about 200/s; with kernel fixes about 400/s; without a network namespace about 900/s. The network namespace is the bottleneck.',
  },
  {
    study: 'mntns',
    title: 'Mount namespaces against host mounts (Figure 2)',
    paper:
      "About 1,500 new mount namespaces per second with few host mounts, approaching zero as the host's mounts grow; `chroot` costs under 1 µs.",
  },
  {
    study: 'storage',
    title: 'Provisioning a container root',
    paper: 'Bind mounts are about 2x faster than AUFS, and neither degrades with concurrency.',
  },
  {
    study: 'cgroups',
    title: 'Cgroups: create against reuse',
    paper: 'Reusing a cgroup from a pool is about 2x faster than creating one.',
  },
  {
    study: 'ipcuts',
    title: 'IPC, UTS and PID namespaces',
    paper: 'IPC and UTS namespaces are cheap and do not degrade with concurrency.',
  },
  {
    study: 'imports',
    title: 'Python packages: download, install, import (Figure 3)',
    paper:
      'Full initialisation of a popular package takes 1–13 s: about 1.6 s to download, 2.3 s to install and 107 ms to import, on average.',
  },
  {
    study: 'sock-vs-docker',
    title: 'SOCK against Docker, no-op lambdas (Figure 6)',
    paper:
      "Without caches, at concurrency 10, SOCK serves 76 requests/s at 130 ms: 18x Docker's throughput and 19x lower latency.",
  },
  {
    study: 'zygote',
    title: 'Generalized zygotes',
    paper:
      'Forking handlers from zygotes that already imported their packages gives about 3x on top of lean containers; with the whole three-tier cache, 45x.',
  },
  {
    study: 'resize',
    title: 'Image resizing (Figure 7)',
    paper: "SOCK's platform latency is 365 ms cold and 120 ms cold+ (another handler recently imported Pillow): 3x.",
  },
  {
    study: 'scale',
    title: 'Scaling with lambdas and the import-cache budget',
    paper:
      'The import cache keeps its gains as the number of distinct lambdas and packages grows, under a memory budget.',
  },
];

const LOCK_PAPER: Record<string, string> = {
  netns: 'The paper blamed a global lock held while the kernel notified every existing network namespace.',
  mntns: 'The paper blamed copying every host mount into the new namespace.',
};

/** The claims' sentences for a study, without their sources (the caption lists those apart). */
function oursFor(study: string, run: RunData): string {
  return CLAIMS.filter((c) => c.study === study)
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

/** Columns of locks.csv that are not a sweep parameter (host_mounts, cgroup_version are). */
const LOCK_COLUMNS = new Set([
  'config',
  'concurrency',
  'repeat',
  'lock',
  'kind',
  'call_path',
  'operation',
  'contentions',
  'wait_total_us',
  'wait_max_us',
]);

/** The call path that waited longest per measurement, at the highest concurrency traced. */
function heaviestWait(out: string, run: RunData): string {
  const rows = readCsv(path.join(out, run.rel, 'locks.csv'));
  if (rows.length === 0) return 'no contended lock was recorded';
  const top = Math.max(...rows.map((r) => Number(r.concurrency)));
  const params = Object.keys(rows[0]!).filter((k) => !LOCK_COLUMNS.has(k));
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

/** Captions for every study figure and every lock figure drawn. */
export function figureCaptions(
  figuresDir: string,
  outcomes: Map<string, StudyOutcome>,
  drawn: Map<string, DrawnFigure>,
): FigureCaption[] {
  const file = (f: DrawnFigure) => path.relative(figuresDir, f.svgPath).split(path.sep).join('/');
  const captions: FigureCaption[] = [];
  for (const f of STUDY_FIGURES) {
    const outcome = outcomes.get(f.study) ?? { skipped: 'no complete run' };
    const figure = drawn.get(f.study);
    if ('skipped' in outcome || !figure) {
      const why = 'skipped' in outcome ? outcome.skipped : 'no figure drawn';
      captions.push({
        file: `${f.study}.svg`,
        title: f.title,
        paper: f.paper,
        ours: `Not run: ${why}.`,
        sources: [],
        missing: `${f.study} not run: ${why}`,
      });
      continue;
    }
    captions.push({
      file: file(figure),
      title: f.title,
      paper: f.paper,
      ours: `${oursFor(f.study, outcome.run)}.`,
      sources: [sourceOf(outcome.run)],
    });
  }
  for (const f of STUDY_FIGURES) {
    const figure = drawn.get(`${f.study}-locks`);
    if (!figure) continue;
    captions.push({
      file: file(figure),
      title: `${f.title}: kernel lock waits`,
      paper: LOCK_PAPER[f.study] ?? 'The paper did not trace kernel locks for this study; the figure is ours.',
      ours: `Lock waits by call path against concurrency, from bpftrace beside a \`--trace locks\` run: ${heaviestWait(path.dirname(figuresDir), figure.run)}.`,
      sources: [sourceOf(figure.run)],
    });
  }
  return captions;
}
