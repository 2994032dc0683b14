// npm run bench:trace-overhead: what tracing costs the measurement it explains. The same
// netns sweep runs with and without `--trace`, alternating passes in one invocation so both
// see the same machine, and the traced/untraced ratio of every point is reported with a bootstrap
// interval, beside the CPU time the kernel itself spent in the probes (BPF run-time stats).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { median } from 'simple-statistics';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DEFAULT_SETS, netns } from '../../experiments/netns/index.js';
import { enableBpfStats } from '../../native/index.js';
import { parseConcurrency, parseTrace, REPO_ROOT, runIfMain } from '../flags.js';
import { readCsv, writeCsv } from '../../harness/csv.js';
import { captureEnvironment } from '../../harness/environment.js';
import { createRunDir, writeMeta } from '../../harness/runDirs.js';
import { UsageError } from '../../harness/errors.js';
import { markdownTable } from '../../harness/markdown.js';
import { runExperiment } from '../../harness/runner.js';
import { bootstrapMedianRatio } from '../../harness/stats.js';
import type { ProbeCostRow } from '../../harness/traceSession.js';
import { SPIN_SAMPLE_EVERY } from '../../harness/tracer.js';
import type { Row } from '../../harness/types.js';

/** bpftrace processes not started by this benchmark: "pid (bpftrace)". */
function otherTracers(): string[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .flatMap((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'bpftrace' ? [`${pid} (bpftrace)`] : [];
      } catch {
        return []; // exited while we looked
      }
    });
}

/** The issue's bar: tracing that costs more than ~15% of the rate it explains distorts it. */
const DISTORTION_RATIO = 0.85;

async function main(): Promise<number> {
  const started = new Date();
  const args = yargs(hideBin(process.argv))
    .scriptName('bench:trace-overhead')
    .parserConfiguration({ 'boolean-negation': false, 'camel-case-expansion': false })
    .option('namespaces', { type: 'string', default: DEFAULT_SETS.join(','), describe: 'netns namespace sets' })
    .option('concurrency', { type: 'string', default: '1,4,16', describe: 'comma-separated concurrencies' })
    .option('duration', { type: 'number', default: 2, describe: 'seconds per measurement' })
    .option('repeat', { type: 'number', default: 5, describe: 'passes of each kind (untraced, traced)' })
    .option('trace', { type: 'string', default: 'locks', describe: 'probe families of the traced passes' })
    .option('spin-sample-every', {
      type: 'number',
      default: SPIN_SAMPLE_EVERY,
      describe: 'locks: time one spinlock or rwlock contention in N (1 times them all)',
    })
    .option('out', { type: 'string', describe: 'directory that receives results/ [default: the repository root]' })
    .strict()
    .fail((msg, err) => {
      throw new UsageError(msg ?? err?.message);
    })
    .parseSync();
  if (!(args.duration > 0) || !Number.isInteger(args.repeat) || args.repeat < 1)
    throw new UsageError('--duration must be > 0 and --repeat a whole number >= 1');
  const spinSampleEvery = args['spin-sample-every'];
  if (!Number.isInteger(spinSampleEvery) || spinSampleEvery < 1)
    throw new UsageError('--spin-sample-every must be a whole number >= 1');
  const families = parseTrace(args.trace);
  // Another tracer on the same tracepoints would slow the untraced passes too and hide the cost.
  const others = otherTracers();
  if (others.length > 0)
    throw new Error(
      `other tracers are running (${others.join(', ')}); stop them first: they would run in the untraced passes too`,
    );
  const options = { namespaces: args.namespaces, method: 'unshare' };
  const configs = netns.configs(options);
  await netns.preflight(options);
  const concurrency = parseConcurrency(args.concurrency);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sockbench-overhead-'));
  const rows: (Row & { traced: number })[] = [];
  const costs: (ProbeCostRow & { seconds: number })[] = [];
  try {
    for (let pass = 1; pass <= args.repeat; pass++) {
      // Alternate which kind goes first, so neither always follows the other's teardown.
      for (const traced of pass % 2 ? [false, true] : [true, false]) {
        process.stderr.write(
          `pass ${pass}/${args.repeat}, ${traced ? `traced (${families.join(',')})` : 'untraced'}\n`,
        );
        // The kernel times our programs only in traced passes: the timing itself is a cost.
        const statsFd = traced ? enableBpfStats() : undefined;
        let outcome;
        try {
          outcome = await runExperiment(
            netns,
            configs,
            {
              concurrency,
              duration: args.duration,
              repeat: 1,
              warmup: 0.2,
              out: scratch,
              trace: traced ? families : [],
              spinSampleEvery,
            },
            options,
            process.argv.slice(1),
          );
        } finally {
          if (statsFd !== undefined) fs.closeSync(statsFd);
        }
        if (outcome.status !== 'complete') throw outcome.error;
        if (traced && (outcome.trace?.active.length ?? 0) === 0)
          throw new Error(`tracing was not possible: ${JSON.stringify(outcome.trace?.unavailable)}`);
        for (const r of outcome.rows) rows.push({ ...r, repeat: pass, traced: traced ? 1 : 0 });
        if (traced) {
          const costFile = path.join(outcome.runDir!, 'probe-cost.csv');
          if (!fs.existsSync(costFile)) throw new Error('the kernel reported no BPF run time for the probes');
          for (const c of readCsv(costFile)) {
            const row = outcome.rows.find((r) => r.config === c.config && r.concurrency === Number(c.concurrency))!;
            // A point's trace interval ends after the namespaces' teardown, so count that time too.
            const seconds =
              Number(row.seconds) + (Number.isFinite(Number(row.teardown_s)) ? Number(row.teardown_s) : 0);
            costs.push({
              config: String(c.config),
              concurrency: Number(c.concurrency),
              repeat: pass,
              probe_runs: Number(c.probe_runs),
              probe_cpu_ms: Number(c.probe_cpu_ms),
              seconds,
            });
          }
        }
      }
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }

  const cpus = os.availableParallelism();
  const points = configs.flatMap((config) => concurrency.map((c) => ({ config, concurrency: c })));
  const summary = points.map(({ config, concurrency: c }) => {
    const at = <T extends { config: string | number; concurrency: string | number }>(xs: T[]) =>
      xs.filter((r) => r.config === config && Number(r.concurrency) === c);
    const values = (traced: number, col: string) =>
      at(rows)
        .filter((r) => r.traced === traced)
        .map((r) => Number(r[col]));
    const rate = bootstrapMedianRatio(values(1, 'ops_per_sec'), values(0, 'ops_per_sec'));
    const withTeardown = values(0, 'ops_per_sec_with_teardown').every(Number.isFinite)
      ? bootstrapMedianRatio(values(1, 'ops_per_sec_with_teardown'), values(0, 'ops_per_sec_with_teardown')).ratio
      : NaN;
    const cost = at(costs);
    return {
      config,
      concurrency: c,
      untraced_ops_per_sec: median(values(0, 'ops_per_sec')),
      traced_ops_per_sec: median(values(1, 'ops_per_sec')),
      ratio: rate.ratio,
      ratio_ci_low: rate.low,
      ratio_ci_high: rate.high,
      ratio_with_teardown: withTeardown,
      probe_runs_per_sec: median(cost.map((x) => x.probe_runs / x.seconds)),
      probe_ns_per_run: median(cost.map((x) => (x.probe_cpu_ms * 1e6) / x.probe_runs)),
      // Share of the machine's CPU time the kernel spent inside the probes during the point.
      probe_cpu_share: median(cost.map((x) => x.probe_cpu_ms / (x.seconds * 1000 * cpus))),
    };
  });
  const dir = createRunDir(path.resolve(args.out ?? REPO_ROOT), 'trace-overhead', started);
  writeCsv(path.join(dir, 'data.csv'), rows);
  writeCsv(path.join(dir, 'probe-cost.csv'), costs);
  writeCsv(path.join(dir, 'summary.csv'), summary);
  const environment = await captureEnvironment(process.argv.slice(1));
  const worst = summary.reduce((a, b) => (b.ratio < a.ratio ? b : a));
  // "Distorts" only where the whole interval lies below 0.85: a point whose interval reaches
  // past it cannot be told apart from run-to-run noise with this many passes.
  const distorted = summary.filter((s) => s.ratio_ci_high < DISTORTION_RATIO);
  const maxShare = Math.max(...summary.map((s) => s.probe_cpu_share));
  writeMeta(dir, {
    experiment: 'trace-overhead',
    status: 'complete',
    started: started.toISOString(),
    finished: new Date().toISOString(),
    options: { ...args, _: undefined, $0: undefined },
    environment,
    trace: families,
    overhead: summary,
    worst_ratio: worst.ratio,
    distortion_threshold: DISTORTION_RATIO,
    distorted_points: distorted.map((s) => `${s.config} c=${s.concurrency}`),
    max_probe_cpu_share: maxShare,
  });
  const fmt = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
  const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '–');
  process.stdout.write(
    markdownTable(
      [
        'config',
        'concurrency',
        'untraced ops/s',
        `traced (${families.join(',')}) ops/s`,
        'traced / untraced [95% CI]',
        'with teardown',
        'probe runs/s',
        'ns per run',
        'probe CPU share',
      ],
      summary.map((s) => [
        s.config,
        String(s.concurrency),
        fmt(s.untraced_ops_per_sec),
        fmt(s.traced_ops_per_sec),
        `${s.ratio.toFixed(3)} [${s.ratio_ci_low.toFixed(3)}, ${s.ratio_ci_high.toFixed(3)}]`,
        Number.isFinite(s.ratio_with_teardown) ? s.ratio_with_teardown.toFixed(3) : '–',
        fmt(s.probe_runs_per_sec),
        fmt(s.probe_ns_per_run),
        pct(s.probe_cpu_share),
      ]),
    ) +
      `\n\nworst ratio ${worst.ratio.toFixed(3)} (${worst.config} c=${worst.concurrency}); ` +
      `points whose whole 95% interval is below ${DISTORTION_RATIO}: ${distorted.length === 0 ? 'none' : distorted.map((s) => `${s.config} c=${s.concurrency}`).join(', ')}; ` +
      `probes (spinlock and rwlock contentions timed 1 in ${spinSampleEvery}) used at most ${pct(maxShare)} of the CPU (${cpus} CPUs)\ndata: ${path.relative(process.cwd(), dir)}\n`,
  );
  return 0;
}

runIfMain(import.meta.url, 'bench:trace-overhead', main);
