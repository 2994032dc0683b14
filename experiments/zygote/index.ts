// The import cache study (the paper's section 4.3 and Figure 12's first bars): how long a handler
// that imports packages takes to start, end to end over the worker, when its sandbox is
//   lean         a lean container from scratch: Python starts, then imports the packages
//   root-zygote  forked from the root zygote (Python already started, nothing imported)
//   zygote       forked from a zygote that has already imported exactly those packages
// with the handler cache off, so every request is a new sandbox. Beside the end-to-end latency,
// sandbox_ms is the worker's own time to get the sandbox ready (its Server-Timing). Packages come from the
// install cache (Debian's python3-* here: no PyPI), installed before anything is timed.
import path from 'node:path';
import { median } from 'simple-statistics';
import type { Argv } from 'yargs';
import type { InstallCache } from '../../engine/caches/installCache.js';
import { normalizePypiName, zygoteImportsOf } from '../../engine/installers/packageNames.js';
import { UsageError } from '../../harness/errors.js';
import { removeOwnedDir } from '../../harness/ownedDirs.js';
import type { Experiment, Measurement, Point, RunContext, Row } from '../../harness/types.js';
import { parseConfigList } from '../configList.js';
import {
  installFirst,
  openStudyDir,
  preflightCacheStudy,
  repeatForPoint,
  type StudyWorker,
  StudyWorkers,
  writeLambda,
} from '../studyWorker.js';
import { zygoteFigure } from './figure.js';
import { paper } from './paper.js';

const KIND = 'zygote';
export const CONFIGS = ['lean', 'root-zygote', 'zygote'];
/** None; a light package; the heavy ones the paper names (numpy, Django, Pillow). */
const PACKAGE_SETS = ['none', 'simplejson', 'numpy', 'django', 'pillow'];
const QUICK_PACKAGE_SETS = ['none', 'simplejson', 'numpy'];

let dir: string | undefined;
let installCache: InstallCache | undefined;
let workers: StudyWorkers | undefined;

/** "numpy+Pillow" -> ["numpy", "pillow"]; "none" -> []. */
function packagesOf(set: string): string[] {
  return set === 'none' ? [] : set.split('+').map(normalizePypiName).sort();
}

function setsOf(options: Record<string, unknown>): string[] {
  const given =
    options.packages === undefined
      ? options.quick
        ? QUICK_PACKAGE_SETS
        : PACKAGE_SETS
      : String(options.packages)
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
  if (given.length === 0) throw new UsageError('--packages: give at least one package set');
  for (const set of given) {
    if (set !== 'none' && !set.split('+').every((n) => /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(n)))
      throw new UsageError(`--packages: '${set}' is not a package set (names joined by +, or none)`);
  }
  return [...new Set(given)];
}

const lambdaOf = (index: number) => `imports-${index}`;

/** How the worker must have started each request's sandbox in this configuration. */
function expectedStart(config: string, packages: string[]): string {
  if (config === 'lean') return 'lean';
  return config === 'zygote' && packages.length > 0 ? `zygote:${packages.join('+')}` : 'zygote:root';
}

/** The worker for a configuration (kept across points of the same one, so a set's zygote is made once). */
function workerFor(config: string): Promise<StudyWorker> {
  const zygotes =
    config === 'lean'
      ? undefined
      : { threshold: config === 'zygote' ? 1 : Infinity, budgetBytes: 2 ** 31, maxZygotes: 16 };
  return workers!.get(config, { zygotes }, { stateDir: config });
}

export const zygote: Experiment = {
  name: KIND,
  summary:
    'start latency of handlers importing packages: lean container, forked from the root zygote, forked from a zygote that imported them',
  paper,
  defaults: { concurrency: [1], duration: 5, repeat: 3, warmup: 1 },
  quick: { concurrency: [1], duration: 2, repeat: 1, warmup: 0 },

  options(argv: Argv): Argv {
    return argv
      .option('configs', {
        type: 'string',
        default: CONFIGS.join(','),
        describe: `comma-separated among ${CONFIGS.join(', ')}`,
      })
      .option('packages', {
        type: 'string',
        describe: `comma-separated package sets, each PyPI names joined by + or none [default: ${PACKAGE_SETS.join(',')}; with --quick ${QUICK_PACKAGE_SETS.join(',')}]`,
      })
      .option('base', {
        type: 'string',
        describe: 'base root file system [default: $SOCK_BASE or /var/lib/sockbench/base]',
      });
  },

  configs(options) {
    setsOf(options);
    return parseConfigList(options.configs, CONFIGS);
  },

  points(configs, concurrency, options) {
    return setsOf(options).flatMap((_, set) =>
      configs.flatMap((config) => concurrency.map((c) => ({ config, concurrency: c, params: { set } }))),
    );
  },

  async preflight(options) {
    preflightCacheStudy(KIND, options);
  },

  async setup(ctx: RunContext) {
    ({ dir, installCache } = await openStudyDir(KIND, ctx, CONFIGS));
    workers = new StudyWorkers(dir, installCache, ctx.options);
    const sets = setsOf(ctx.options);
    for (const [i, set] of sets.entries()) {
      const packages = packagesOf(set);
      const imports = packages
        .flatMap(zygoteImportsOf)
        .map((m) => `import ${m}\n`)
        .join('');
      writeLambda(path.join(dir, 'registry'), lambdaOf(i), `${imports}\ndef f(event):\n    return None\n`, packages);
      await installFirst(KIND, ctx, installCache, packages);
    }
    ctx.notes.packageSets = sets;
  },

  async teardown() {
    try {
      await workers?.stop();
    } finally {
      if (dir) removeOwnedDir(dir);
      dir = undefined;
      installCache = undefined;
      workers = undefined;
    }
  },

  async measure(point: Point, ctx: RunContext): Promise<Measurement> {
    const index = Number(point.params?.set);
    const set = setsOf(ctx.options)[index]!;
    const packages = packagesOf(set);
    const expected = expectedStart(point.config, packages);
    const worker = await workerFor(point.config);
    // The set's zygote is made by its first request (threshold 1): that one is not timed.
    if (point.config === 'zygote' && packages.length > 0) {
      const zygotes = ((worker.status().importCache as { zygotes?: { packages: string }[] })?.zygotes ?? []).map(
        (z) => z.packages,
      );
      if (!zygotes.includes(packages.join('+'))) {
        await worker.run(lambdaOf(index));
        await worker.settle();
      }
    }
    const latenciesUs: number[] = [];
    const sandboxMs: number[] = [];
    const seconds = await repeatForPoint(point, ctx.signal, async () => {
      const answer = await worker.run(lambdaOf(index));
      if (answer.start !== expected)
        throw new Error(`${point.config} ${set}: a sandbox started as ${answer.start}, not ${expected}`);
      latenciesUs.push(answer.ms * 1000);
      sandboxMs.push(answer.timing.sandbox ?? NaN);
      // Its sandbox is destroyed after the answer: not inside the next request's time.
      await worker.settle();
    });
    return {
      ops: latenciesUs.length,
      seconds,
      latenciesUs: Float64Array.from(latenciesUs),
      extra: { packages: set, start: expected, sandbox_ms: median(sandboxMs) },
    };
  },

  figure(rows: Row[]) {
    return zygoteFigure(rows);
  },
};
