#!/usr/bin/env node
// sockbench: run the paper's studies, list them, redraw their figures.
import fs from 'node:fs';
import path from 'node:path';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EXPERIMENTS } from '../experiments/index.js';
import { isUserError, UsageError } from '../harness/errors.js';
import { compareCommand } from '../harness/compare.js';
import { kernelsCommand, kernelsOptions, kernelStudies } from '../harness/kernels/matrix.js';
import { redrawFigures } from '../harness/redraw.js';
import { PAPER_SOURCES, parseStudies, regenerate, repro, REPRO_STUDIES } from './repro.js';
import { referenceRuns } from '../harness/paperRepro/claims.js';
import { readCsv } from '../harness/csv.js';
import { RESULTS_DIR, resultsDir } from '../harness/runDirs.js';
import { formatSummary, formatTopLocks } from '../harness/report.js';
import { runExperiment } from '../harness/runner.js';
import { TRACE_FAMILIES } from '../harness/tracer.js';
import { REPO_ROOT, runIfMain, sweepFrom } from './flags.js';
import type { Experiment } from '../harness/types.js';

function commonOptions(argv: Argv, exp: Experiment): Argv {
  const d = exp.defaults;
  const q = exp.quick;
  return argv
    .option('concurrency', {
      type: 'string',
      describe: `comma-separated concurrencies [default: ${d.concurrency.join(',')}; --quick: ${q.concurrency.join(',')}]`,
    })
    .option('duration', {
      type: 'string',
      describe: `seconds per measurement [default: ${d.duration}; --quick: ${q.duration}]`,
    })
    .option('ops', { type: 'string', describe: 'operations per measurement, instead of --duration' })
    .option('repeat', {
      type: 'string',
      describe: `repetitions of every point [default: ${d.repeat}; --quick: ${q.repeat}]`,
    })
    .option('warmup', {
      type: 'string',
      describe: `seconds of discarded warm-up before each measurement [default: ${d.warmup}]`,
    })
    .option('quick', { type: 'boolean', describe: 'a small sweep that finishes in well under a minute' })
    .option('out', {
      type: 'string',
      describe: 'directory that receives results/ and figures/ [default: the repository root]',
    })
    .option('trace', {
      type: 'string',
      describe: `bpftrace probe families to run beside the sweep: ${TRACE_FAMILIES.join(',')}; writes locks.csv / syscalls.csv and a lock figure`,
    });
}

async function runCommand(exp: Experiment, args: Record<string, unknown>): Promise<number> {
  const sweep = sweepFrom(exp, args);
  const configs = exp.configs(args);
  await exp.preflight(args);
  const commandLine = [
    ...process.argv.slice(1),
    ...(process.env.npm_lifecycle_event ? [`(npm run ${process.env.npm_lifecycle_event})`] : []),
  ];
  // yargs' own bookkeeping (_ and $0) is not an option of the run.
  const options = Object.fromEntries(Object.entries(args).filter(([k]) => k !== '_' && k !== '$0'));
  const outcome = await runExperiment(exp, configs, sweep, options, commandLine);
  if (outcome.rows.length > 0) process.stdout.write(formatSummary(outcome.summary) + '\n');
  const rel = (p: string) => path.relative(process.cwd(), p) || '.';
  if (outcome.status === 'complete') {
    process.stdout.write(`\ndata:   ${rel(path.join(outcome.runDir!, 'data.csv'))}\n`);
    process.stdout.write(`meta:   ${rel(path.join(outcome.runDir!, 'meta.json'))}\n`);
    process.stdout.write(`figure: ${rel(outcome.figure!.svgPath)}\n`);
    reportTrace(outcome.runDir!, path.dirname(outcome.figure!.svgPath), exp.name, rel);
    return 0;
  }
  const kept = outcome.runDir ? ` (measured points kept in ${rel(path.join(outcome.runDir, 'data.partial.csv'))})` : '';
  process.stderr.write(`sockbench: run ${outcome.status}${kept}\n`);
  throw outcome.error;
}

/** Where a traced run put its numbers, and its heaviest lock waits. */
function reportTrace(runDir: string, figures: string, name: string, rel: (p: string) => string) {
  const locks = path.join(runDir, 'locks.csv');
  const syscalls = path.join(runDir, 'syscalls.csv');
  if (fs.existsSync(syscalls)) process.stdout.write(`syscalls: ${rel(syscalls)}\n`);
  if (!fs.existsSync(locks)) return;
  process.stdout.write(`locks:  ${rel(locks)}\nlock figure: ${rel(path.join(figures, `${name}-locks.svg`))}\n\n`);
  process.stdout.write(formatTopLocks(readCsv(locks) as never) + '\n');
}

function report(e: unknown): number {
  if (isUserError(e)) {
    process.stderr.write(`sockbench: ${e.message}\n`);
    return e.exitCode;
  }
  process.stderr.write(`sockbench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 1;
}

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const action = (fn: () => Promise<number>) => async () => {
    try {
      exitCode = await fn();
    } catch (e) {
      exitCode = report(e);
    }
  };
  const parser = yargs(argv)
    .scriptName('sockbench')
    // Unknown flags are named as typed, not as their camelCase or --no- variants.
    .parserConfiguration({ 'boolean-negation': false, 'camel-case-expansion': false })
    .usage(
      '$0 <command>\n\nReproduces the studies of "SOCK: Rapid Task Provisioning with Serverless-Optimized Containers" (USENIX ATC 2018).',
    )
    .command('run', 'run an experiment: run <experiment> [options]', (y) => {
      for (const exp of EXPERIMENTS) {
        y.command(
          exp.name,
          exp.summary,
          (e) => exp.options(commonOptions(e, exp)).strict(),
          (args) => action(() => runCommand(exp, args))(),
        );
      }
      return y.demandCommand(1, `name an experiment: ${EXPERIMENTS.map((e) => e.name).join(', ')}`);
    })
    .command('list', 'list the experiments', {}, () => {
      for (const e of EXPERIMENTS) process.stdout.write(`${e.name.padEnd(16)} ${e.summary}\n`);
    })
    .command(
      'figures',
      "redraw every experiment's figure from its latest complete run",
      (y) =>
        y.option('out', {
          type: 'string',
          describe: 'directory holding results/ and figures/ [default: the repository root]',
        }),
      (args) =>
        action(async () => {
          const drawn = await redrawFigures(EXPERIMENTS, path.resolve(String(args.out ?? REPO_ROOT)));
          for (const d of drawn) process.stdout.write(`${d.experiment}: ${d.svgPath} (from ${d.runDir})\n`);
          if (drawn.length === 0) process.stdout.write('no complete runs found\n');
          return 0;
        })(),
    )
    .command(
      'compare <a> <b>',
      'compare two runs of one experiment point by point: B against A (run directories, or results/<experiment> for the newest complete run)',
      (y) =>
        y
          .positional('a', { type: 'string', describe: 'the baseline run' })
          .positional('b', { type: 'string', describe: 'the run compared with it' })
          .option('fail-on-regression', {
            type: 'number',
            describe: 'exit 1 if a metric is worse by more than PCT % (its whole 95% interval beyond it)',
          })
          .option('out', {
            type: 'string',
            describe: 'directory that receives compare/<a>-vs-<b>/ [default: <repository>/results]',
          }),
      (args) =>
        action(() =>
          compareCommand(String(args.a), String(args.b), {
            failOnRegressionPct: args['fail-on-regression'] as number | undefined,
            outDir: path.join(path.resolve(String(args.out ?? path.join(REPO_ROOT, RESULTS_DIR))), 'compare'),
          }),
        )(),
    )
    .command(
      'repro',
      'run every study (and the engine bench), then regenerate paper-repro.md\'s "ours" and "status" columns and figures/index.html from those runs, and print each row\'s verdict',
      (y) =>
        y
          .option('quick', {
            type: 'boolean',
            default: false,
            describe: "every study's --quick sweep (minutes, not hours)",
          })
          .option('studies', {
            type: 'string',
            describe: `only these, comma-separated: ${REPRO_STUDIES.join(', ')} [default: all]`,
          })
          .option('setup', {
            type: 'boolean',
            default: true,
            describe:
              'run scripts/setup.sh first (installs packages, builds the base, starts dockerd); --no-setup skips it',
          })
          .option('trace', {
            type: 'boolean',
            default: true,
            describe: 'also run the --quick --trace locks sweeps that draw the lock figures; --no-trace skips them',
          })
          .option('out', {
            type: 'string',
            describe: 'directory holding results/, figures/ and paper-repro.md [default: the repository root]',
          })
          // --no-setup and --no-trace are the negations this command documents.
          .parserConfiguration({ 'boolean-negation': true }),
      (args) =>
        action(() =>
          repro({
            quick: Boolean(args.quick),
            studies: args.studies === undefined ? undefined : parseStudies(String(args.studies)),
            setup: args.setup !== false,
            trace: args.trace !== false,
            out: path.resolve(String(args.out ?? REPO_ROOT)),
            repoRoot: REPO_ROOT,
          }),
        )(),
    )
    .command(
      'paper-repro',
      'regenerate paper-repro.md\'s "ours" and "status" columns and figures/index.html from each study\'s newest complete full run (its newest --quick one where it has no full one)',
      (y) =>
        y.option('out', {
          type: 'string',
          describe: 'directory holding results/, figures/ and paper-repro.md [default: the repository root]',
        }),
      (args) =>
        action(async () => {
          const out = path.resolve(String(args.out ?? REPO_ROOT));
          if (!fs.existsSync(path.join(out, RESULTS_DIR)))
            throw new UsageError(`--out: ${out} has no results/ directory to read runs from`);
          const outcomes = new Map(
            [...referenceRuns(PAPER_SOURCES, out)].map(([s, run]) => {
              return [s, run ? { run } : { skipped: `no complete run in ${resultsDir(out, s)}` }] as const;
            }),
          );
          await regenerate({ out, repoRoot: REPO_ROOT }, outcomes);
          return 0;
        })(),
    )
    .command(
      'kernels',
      'run the kernel studies on other kernel versions, each booted in qemu (or on this machine: host), and compare them with the first',
      (y) => kernelsOptions(y, REPO_ROOT, kernelStudies(EXPERIMENTS)),
      (args) => action(() => kernelsCommand(args, REPO_ROOT, kernelStudies(EXPERIMENTS)))(),
    )
    .demandCommand(1, 'name a command: run, list, figures, compare, repro or paper-repro')
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      throw err && isUserError(err) ? err : new UsageError(msg ?? err?.message ?? 'bad usage');
    });
  try {
    await parser.parseAsync();
  } catch (e) {
    return report(e);
  }
  return exitCode;
}

runIfMain(import.meta.url, 'sockbench', () => main(hideBin(process.argv)));
