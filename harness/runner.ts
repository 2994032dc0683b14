// Runs one experiment's sweep: warm-up and repetitions of every (config, concurrency) point,
// rows to CSV, summary, environment to meta.json, and the figure.
//
// A run is written only when it completes. An interrupted or failed run keeps what it
// measured as data.partial.csv beside a meta.json whose status says so, and writes no
// data.csv and no figure, so nothing partial can pass for a finished result.
import fs from 'node:fs';
import path from 'node:path';
import { writeCsv } from './csv.js';
import { captureEnvironment } from './environment.js';
import { InterruptedError } from './errors.js';
import { renderFigure } from './figures.js';
import { Progress } from './progress.js';
import { createRunDir, latestComplete, readMeta, type RunMeta, writeMeta } from './runDirs.js';
import { latencySummary, summarize, type SummaryRow } from './stats.js';
import type { TraceFamily } from './tracer.js';
import { TraceSession } from './traceSession.js';
import type { Experiment, Measurement, Point, Row, RunContext, SweepDefaults } from './types.js';

export interface SweepOptions extends SweepDefaults {
  /** Probe families to run beside the sweep (`--trace`); empty for none. */
  trace: TraceFamily[];
  /** locks: time one spinlock or rwlock contention in this many (default SPIN_SAMPLE_EVERY). */
  spinSampleEvery?: number;
  /** Bound each measurement by an operation count instead of a duration. */
  ops?: number;
  /** Where results/ and figures/ go. */
  out: string;
}

export interface RunOutcome {
  status: 'complete' | 'interrupted' | 'failed';
  /** Why the run did not complete. */
  error?: unknown;
  /** Undefined when nothing was measured before the run stopped: then nothing is kept. */
  runDir?: string;
  /** What was traced and what could not be, when --trace was given. */
  trace?: TraceSession['info'];
  rows: Row[];
  summary: SummaryRow[];
  figure?: { vlPath: string; svgPath: string };
}

/** Columns every experiment's data.csv starts with, in this order. */
const COMMON_COLUMNS = [
  'experiment',
  'config',
  'concurrency',
  'repeat',
  'ops',
  'seconds',
  'ops_per_sec',
  'p50_us',
  'p99_us',
  'mean_us',
];

function toRow(experiment: string, point: Point, repeat: number, m: Measurement): Row {
  const lat = latencySummary(m.latenciesUs);
  return {
    experiment,
    config: point.config,
    concurrency: point.concurrency,
    ...point.params,
    ...(m.phase === undefined ? {} : { phase: m.phase }),
    repeat,
    ops: m.ops,
    seconds: m.seconds,
    ops_per_sec: m.seconds > 0 ? m.ops / m.seconds : NaN,
    p50_us: lat.p50,
    p99_us: lat.p99,
    mean_us: lat.mean,
    ...m.extra,
  };
}

/** The columns that name a point: repetitions of one point share them all. */
function keyColumns(rows: Row[], points: Point[]): string[] {
  const params = [...new Set(points.flatMap((p) => Object.keys(p.params ?? {})))];
  return ['experiment', 'config', 'concurrency', ...params, ...(rows.some((r) => 'phase' in r) ? ['phase'] : [])];
}

/** The numeric columns worth summarising across repetitions. */
function summaryColumns(rows: Row[], keys: string[]): string[] {
  const skip = new Set([...keys, 'repeat']);
  const first = rows[0];
  return first ? Object.keys(first).filter((k) => !skip.has(k) && typeof first[k] === 'number') : [];
}

export async function runExperiment(
  experiment: Experiment,
  configs: string[],
  sweep: SweepOptions,
  options: Record<string, unknown>,
  commandLine: string[],
): Promise<RunOutcome> {
  const environment = await captureEnvironment(commandLine);
  const started = new Date();
  const runDir = createRunDir(sweep.out, experiment.name, started);

  const notes: Record<string, unknown> = {};
  const meta: RunMeta = {
    experiment: experiment.name,
    status: 'running',
    pid: process.pid,
    error: undefined,
    started: started.toISOString(),
    finished: undefined,
    sweep: { configs, ...sweep },
    options,
    notes,
    trace: undefined,
    environment,
  };
  // A run that dies without a word (kill -9, power) is left saying 'running', never 'complete'.
  writeMeta(runDir, meta);

  const progress = new Progress();
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      process.stderr.write(`\nsockbench: second ${signal}, exiting without cleanup\n`);
      process.exit(130);
    }
    progress.note(`${signal}: stopping after the current measurement's cleanup (press again to force)`);
    controller.abort(new InterruptedError(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ctx: RunContext = { signal: controller.signal, progress, options, notes };
  const bounds = { duration: sweep.ops ? undefined : sweep.duration, ops: sweep.ops };
  const points: Point[] = (
    experiment.points?.(configs, sweep.concurrency, options) ??
    configs.flatMap((config) => sweep.concurrency.map((concurrency) => ({ config, concurrency })))
  ).map((p) => ({ ...p, ...bounds }));
  const rows: Row[] = [];
  let status: RunOutcome['status'] = 'complete';
  let failure: unknown;

  progress.begin(points.length * sweep.repeat);
  let trace: TraceSession | undefined;
  try {
    await experiment.setup?.(ctx);
    trace = await TraceSession.open(sweep.trace, progress, sweep.spinSampleEvery);
    meta.trace = trace.info;
    // Repetitions go round the whole sweep, so slow drift of the machine spreads over every
    // point instead of landing on one.
    for (let repeat = 1; repeat <= sweep.repeat; repeat++) {
      for (const point of points) {
        if (controller.signal.aborted) throw controller.signal.reason;
        const params = Object.entries(point.params ?? {})
          .map(([k, v]) => ` ${k}=${v}`)
          .join('');
        progress.step(
          `${experiment.name} ${point.config}${params} c=${point.concurrency} rep ${repeat}/${sweep.repeat}`,
        );
        if (sweep.warmup > 0) await experiment.measure({ ...point, duration: sweep.warmup, ops: undefined }, ctx);
        await trace.begin();
        const m = await experiment.measure(point, ctx);
        await trace.end({ config: point.config, concurrency: point.concurrency, repeat, ...point.params });
        for (const phase of Array.isArray(m) ? m : [m]) rows.push(toRow(experiment.name, point, repeat, phase));
        progress.advance();
      }
    }
  } catch (e) {
    status = controller.signal.aborted || e instanceof InterruptedError ? 'interrupted' : 'failed';
    failure = e;
  } finally {
    try {
      await trace?.close();
      await experiment.teardown?.(ctx);
    } finally {
      progress.end();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }

  const keys = keyColumns(rows, points);
  // Point-naming columns (host_mounts, phase) right after concurrency, then the rest.
  const named = [...COMMON_COLUMNS.slice(0, 3), ...keys.slice(3), ...COMMON_COLUMNS.slice(3)];
  const columns = [...named, ...Object.keys(rows[0] ?? {}).filter((k) => !named.includes(k))];
  const summary = summarize(rows, summaryColumns(rows, keys), keys);
  meta.status = status;
  meta.error = failure instanceof Error ? failure.message : failure === undefined ? undefined : String(failure);
  meta.finished = new Date().toISOString();
  let figure: RunOutcome['figure'];
  if (status === 'complete') {
    writeCsv(path.join(runDir, 'data.csv'), rows, columns);
    writeCsv(path.join(runDir, 'summary.csv'), summary);
    // A --quick run does not replace the shared figure of a full run: its own goes in its run directory.
    const latest = latestComplete(sweep.out, experiment.name);
    const fullRunExists = latest !== undefined && readMeta(latest)?.options?.quick !== true;
    const figureRoot = options.quick && fullRunExists ? runDir : sweep.out;
    figure = await renderFigure(experiment.figure(rows), figureRoot, experiment.name);
    await trace?.write(
      runDir,
      true,
      figureRoot,
      experiment.name,
      keys.slice(3).filter((k) => k !== 'phase'),
    );
  } else if (rows.length > 0) {
    writeCsv(path.join(runDir, 'data.partial.csv'), rows, columns);
    await trace?.write(
      runDir,
      false,
      sweep.out,
      experiment.name,
      keys.slice(3).filter((k) => k !== 'phase'),
    );
  } else {
    fs.rmSync(runDir, { recursive: true, force: true });
    return { status, error: failure, rows, summary, trace: trace?.info };
  }
  writeMeta(runDir, meta);
  return { status, error: failure, runDir, rows, summary, figure, trace: trace?.info };
}
