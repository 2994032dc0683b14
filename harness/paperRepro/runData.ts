// One finished run, as the paper-repro claims read it: its summary rows (medians across
// repetitions), where and on what it ran, and whether it was a --quick sweep.
import fs from 'node:fs';
import path from 'node:path';
import { readCsv } from '../csv.js';
import type { Environment } from '../environment.js';
import { listRuns, readMeta } from '../runDirs.js';

export type Cells = Record<string, string | number>;

/** A claim's numbers are not in the run it was given (a sweep without the config it needs). */
export class MissingData extends Error {}

export interface RunData {
  /** results/<study>/<id>, relative to the directory holding results/. */
  rel: string;
  id: string;
  study: string;
  quick: boolean;
  /** Run beside bpftrace probes, which cost it some throughput. */
  traced: boolean;
  /** "hostname: CPU model ×N" */
  machine: string;
  kernel: string;
  /** The kernel matrix marks runs made in a software-emulated guest. */
  emulated: boolean;
  summary: Cells[];
  /** meta.json's notes: what the study recorded beside its rows (a probe's findings, a peer it skipped). */
  notes: Record<string, unknown>;
  /** data.csv, for the columns a summary leaves out (strings such as a package list). */
  data: () => Cells[];
}

/** A complete run with a summary.csv, or undefined. */
export function loadRunData(out: string, dir: string): RunData | undefined {
  const meta = readMeta(dir);
  const summaryPath = path.join(dir, 'summary.csv');
  if (meta?.status !== 'complete' || !fs.existsSync(summaryPath)) return undefined;
  // Runs made before a field was recorded lack it: every fact of the environment may be missing.
  const env: Partial<Environment> = meta.environment ?? {};
  const cpu = env.cpu?.model ? `${env.cpu.model} ×${env.cpu.count ?? '?'}` : 'unknown CPU';
  // A kernels run measured its guests, not the machine that booted them: the kernels are theirs.
  const guests = (meta as { kernels?: { release?: string | null; emulated?: boolean }[] }).kernels;
  return {
    rel: path.relative(out, dir),
    id: path.basename(dir),
    study: path.basename(path.dirname(dir)),
    quick: meta.options?.quick === true,
    traced:
      (meta.sweep?.trace ?? []).length > 0 ||
      ((meta as { study_args?: string[] }).study_args ?? []).some((a) => a.startsWith('--trace')),
    machine: `${env.hostname ?? 'unknown host'}: ${cpu}`,
    kernel: guests
      ? [...new Set(guests.map((k) => k.release ?? 'unknown kernel'))].join(', ')
      : (env.kernel?.release ?? 'unknown kernel'),
    emulated: guests ? guests.length > 0 && guests.every((k) => k.emulated === true) : meta.vm?.emulated === true,
    summary: readCsv(summaryPath),
    notes: (meta.notes ?? {}) as Record<string, unknown>,
    data: () => readCsv(path.join(dir, 'data.csv')),
  };
}

/**
 * The run a claim reads by default: the newest complete full sweep of the study, else its
 * newest complete --quick run (the rule `sockbench figures` also follows); an untraced run
 * before a traced one, whose probes cost it throughput; never one from an emulated guest.
 */
export function referenceRun(out: string, study: string): RunData | undefined {
  const runs = listRuns(out, study)
    .filter((dir) => /^\d{8}-\d{6}/.test(path.basename(dir)))
    .map((dir) => loadRunData(out, dir))
    .filter((r): r is RunData => r !== undefined);
  // A run in a software-emulated guest (npm run kernels) speaks for its kernel, not for this machine.
  const here = runs.filter((r) => !r.emulated);
  return here.find((r) => !r.quick && !r.traced) ?? here.find((r) => !r.traced) ?? here[0];
}

/** The summary rows matching every given column value. */
function rowsWhere(run: RunData, where: Cells): Cells[] {
  return run.summary.filter((r) => Object.entries(where).every(([k, v]) => r[k] === v));
}

/** One number from the single summary row matching where; NaN when there is none. */
export function valueAt(run: RunData, where: Cells, column: string): number {
  const row = rowsWhere(run, where)[0];
  const v = row?.[column];
  return typeof v === 'number' ? v : NaN;
}

/** The concurrencies measured for a config, ascending. */
export function concurrencies(run: RunData, where: Cells): number[] {
  return [...new Set(rowsWhere(run, where).map((r) => Number(r.concurrency)))].sort((a, b) => a - b);
}

export function need(run: RunData, where: Cells): Cells[] {
  const rows = rowsWhere(run, where);
  if (rows.length === 0)
    throw new MissingData(
      `no ${Object.entries(where)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')} in ${run.rel}`,
    );
  return rows;
}

/** The highest value of column over a config's concurrencies, and where it was. */
export function peak(run: RunData, where: Cells, column: string): { c: number; v: number } {
  const best = need(run, where).reduce((a, b) => (Number(b[column]) > Number(a[column]) ? b : a));
  return { c: Number(best.concurrency), v: Number(best[column]) };
}

/** The value of column at the highest concurrency measured. */
export function atTop(run: RunData, where: Cells, column: string): { c: number; v: number } {
  const c = Math.max(...concurrencies(run, where));
  return { c, v: valueAt(run, { ...where, concurrency: c }, column) };
}

export function columnOf(run: RunData, where: Cells, column: string): number[] {
  return need(run, where).map((r) => Number(r[column]));
}
