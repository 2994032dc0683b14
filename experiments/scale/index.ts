// How SOCK scales with the number of lambdas and packages (the paper's section 6.1 workload):
// hundreds of distinct lambdas, each importing 0 to 3 packages drawn from a pool by a skewed
// (Zipf) popularity, called in a skewed order, one request at a time, a new sandbox each
// (handler cache off, so the import cache is what is measured). Swept over the number of
// lambdas and the import cache's memory budget (0: no zygotes, every sandbox lean). Each row
// has the latency distribution and, at its end, how many zygotes there were, their memory
// (sum of PSS), how many sandboxes were forked or lean, and how many zygotes were evicted.
import path from 'node:path';
import type { Argv } from 'yargs';
import type { InstallCache } from '../../engine/caches/installCache.js';
import { normalizePypiName, zygoteImportsOf } from '../../engine/installers/packageNames.js';
import { UsageError } from '../../harness/errors.js';
import { removeOwnedDir } from '../../harness/ownedDirs.js';
import { seededRandom as random } from '../../harness/stats.js';
import type { Experiment, Measurement, Point, RunContext, Row } from '../../harness/types.js';
import {
  installFirst,
  openStudyDir,
  preflightCacheStudy,
  repeatForPoint,
  StudyWorkers,
  writeLambda,
} from '../studyWorker.js';
import { scaleFigure } from './figure.js';
import { paper } from './paper.js';

const KIND = 'scale';
/** The pool, most popular first (the rank sets a package's Zipf weight). All are Debian python3-* packages. */
const POOL = [
  'six',
  'requests',
  'python-dateutil',
  'pyyaml',
  'simplejson',
  'jinja2',
  'numpy',
  'pytz',
  'markupsafe',
  'urllib3',
  'django',
  'Pillow',
  'click',
  'sqlparse',
  'werkzeug',
  'sqlalchemy',
];
const QUICK_POOL = ['six', 'pyyaml', 'simplejson', 'jinja2', 'numpy'];

let dir: string | undefined;
let installCache: InstallCache | undefined;
let workers: StudyWorkers | undefined;
/** Per lambda count: each lambda's package set. */
const workloads = new Map<number, string[][]>();

/** An index in [0, n) with Zipf(s = 1) weights: rank r is picked in proportion to 1 / (r + 1). */
function zipf(n: number, next: () => number): number {
  const total = Array.from({ length: n }, (_, r) => 1 / (r + 1)).reduce((a, b) => a + b, 0);
  let x = next() * total;
  for (let r = 0; r < n; r++) {
    x -= 1 / (r + 1);
    if (x <= 0) return r;
  }
  return n - 1;
}

/** n lambdas' package sets: 0 to 3 distinct packages each, drawn by popularity. */
function makeWorkload(n: number, pool: string[], seed: number): string[][] {
  const next = random(seed);
  return Array.from({ length: n }, () => {
    const count = [0, 1, 1, 2, 2, 3][Math.floor(next() * 6)]!;
    const set = new Set<string>();
    while (set.size < Math.min(count, pool.length)) set.add(normalizePypiName(pool[zipf(pool.length, next)]!));
    return [...set].sort();
  });
}

function listOf(flag: string, value: unknown, min: number): number[] {
  const xs = String(value)
    .split(',')
    .map((s) => Number(s.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isInteger(x) || x < min))
    throw new UsageError(`--${flag}: '${value}' is not a comma-separated list of whole numbers >= ${min}`);
  return [...new Set(xs)];
}

const poolOf = (options: Record<string, unknown>) =>
  options.pool === undefined
    ? options.quick
      ? QUICK_POOL
      : POOL
    : String(options.pool)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
const lambdaCounts = (options: Record<string, unknown>) =>
  listOf('lambdas', options.lambdas ?? (options.quick ? '40' : '100,200,400'), 1);
const budgets = (options: Record<string, unknown>) =>
  listOf('budgets', options.budgets ?? (options.quick ? '0,256' : '0,64,256,1024'), 0);
const lambdaName = (count: number, i: number) => `scale-${count}-${i}`;

export const scale: Experiment = {
  name: KIND,
  summary:
    'hundreds of lambdas with Zipf-popular packages: latency and memory against the number of lambdas and the import cache budget',
  paper,
  defaults: { concurrency: [1], duration: 30, repeat: 1, warmup: 0 },
  quick: { concurrency: [1], duration: 10, repeat: 1, warmup: 0 },

  options(argv: Argv): Argv {
    return argv
      .option('lambdas', {
        type: 'string',
        describe: 'comma-separated numbers of distinct lambdas [default: 100,200,400; with --quick 40]',
      })
      .option('budgets', {
        type: 'string',
        describe:
          'comma-separated import cache budgets in MiB, 0 meaning no zygotes [default: 0,64,256,1024; with --quick 0,256]',
      })
      .option('pool', {
        type: 'string',
        describe: `comma-separated PyPI names the lambdas draw from, most popular first [default: ${POOL.length} packages; with --quick ${QUICK_POOL.join(',')}]`,
      })
      .option('zygote-threshold', {
        type: 'number',
        default: 2,
        describe: 'a package set gets a zygote after this many requests',
      })
      .option('seed', {
        type: 'number',
        default: 2018,
        describe: 'seed of the workload (package sets and request order)',
      })
      .option('base', {
        type: 'string',
        describe: 'base root file system [default: $SOCK_BASE or /var/lib/sockbench/base]',
      });
  },

  configs(options) {
    lambdaCounts(options);
    budgets(options);
    if (poolOf(options).length === 0) throw new UsageError('--pool: give at least one package');
    const t = Number(options['zygote-threshold']);
    if (!Number.isInteger(t) || t < 1)
      throw new UsageError(`--zygote-threshold: '${options['zygote-threshold']}' is not a whole number >= 1`);
    return ['sock'];
  },

  points(configs, concurrency, options) {
    return budgets(options).flatMap((budget_mb) =>
      lambdaCounts(options).map((lambdas) => ({
        config: configs[0]!,
        concurrency: concurrency[0]!,
        params: { budget_mb, lambdas },
      })),
    );
  },

  async preflight(options) {
    preflightCacheStudy(KIND, options);
  },

  async setup(ctx: RunContext) {
    ({ dir, installCache } = await openStudyDir(KIND, ctx, ['state']));
    workers = new StudyWorkers(dir, installCache, ctx.options);
    const pool = poolOf(ctx.options);
    await installFirst(KIND, ctx, installCache, pool);
    for (const count of lambdaCounts(ctx.options)) {
      const sets = makeWorkload(count, pool, Number(ctx.options.seed) + count);
      workloads.set(count, sets);
      sets.forEach((set, i) => {
        const imports = set
          .flatMap(zygoteImportsOf)
          .map((m) => `import ${m}\n`)
          .join('');
        writeLambda(
          path.join(dir!, 'registry'),
          lambdaName(count, i),
          `${imports}\ndef f(event):\n    return ${i}\n`,
          set,
        );
      });
    }
    ctx.notes.workloads = Object.fromEntries(
      [...workloads].map(([n, sets]) => [
        n,
        {
          lambdas: n,
          withPackages: sets.filter((s) => s.length > 0).length,
          distinctSets: new Set(sets.map((s) => s.join('+'))).size,
        },
      ]),
    );
  },

  async teardown() {
    try {
      await workers?.stop();
    } finally {
      if (dir) removeOwnedDir(dir);
      dir = undefined;
      installCache = undefined;
      workers = undefined;
      workloads.clear();
    }
  },

  async measure(point: Point, ctx: RunContext): Promise<Measurement> {
    const count = Number(point.params!.lambdas);
    const budgetMb = Number(point.params!.budget_mb);
    // A fresh worker per point: zygotes made for one point's workload are not another's head start.
    const zygotes =
      budgetMb === 0
        ? undefined
        : { threshold: Number(ctx.options['zygote-threshold']), budgetBytes: budgetMb * 2 ** 20, maxZygotes: 32 };
    const worker = await workers!.get(String(budgetMb), { zygotes }, { fresh: true });
    const next = random(Number(ctx.options.seed) * 31 + count);
    const latenciesUs: number[] = [];
    const starts = { forked: 0, lean: 0 };
    const seconds = await repeatForPoint(point, ctx.signal, async () => {
      const answer = await worker.run(lambdaName(count, zipf(count, next)));
      latenciesUs.push(answer.ms * 1000);
      if (answer.start.startsWith('zygote:')) starts.forked++;
      else starts.lean++;
      await worker.settle();
    });
    const cache = (worker.status().importCache ?? {}) as {
      zygotes?: unknown[];
      pssBytes?: number;
      ussBytes?: number;
      evicted?: number;
      zygotesMade?: number;
    };
    return {
      ops: latenciesUs.length,
      seconds,
      latenciesUs: Float64Array.from(latenciesUs),
      extra: {
        zygotes: cache.zygotes?.length ?? 0,
        zygote_pss_mb: (cache.pssBytes ?? 0) / 2 ** 20,
        zygote_uss_mb: (cache.ussBytes ?? 0) / 2 ** 20,
        zygotes_made: cache.zygotesMade ?? 0,
        zygotes_evicted: cache.evicted ?? 0,
        forked: starts.forked,
        lean: starts.lean,
      },
    };
  },

  figure(rows: Row[]) {
    return scaleFigure(rows);
  },
};
