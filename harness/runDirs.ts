// The one owner of run directories. Every study, bench and kernel matrix writes its run to
// <out>/results/<name>/<run id>/ with a meta.json saying what ran, how and whether it finished;
// every reader (figures, paper-repro, compare, repro's summary) finds runs through here, so
// "which run is the newest complete one" has a single answer.
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from './atomic-write.js';
import type { Environment } from './environment.js';

/** The folder under an output directory that holds every run. */
export const RESULTS_DIR = 'results';

export type RunStatus = 'running' | 'complete' | 'failed' | 'interrupted';

/** The guest a run was measured in, when the kernel matrix booted one (kernels/results.ts adds it). */
export interface RunVm {
  /** The release as the guest saw it (uname -r). */
  kernel: string;
  /** Where the kernel came from: the --kernel argument, and the Debian package and version. */
  source: string;
  package: string | null;
  version: string | null;
  /** Boot parameters added to the guest kernel's command line (--kernel K:PARAMS), or null. */
  params?: string | null;
  accel: 'kvm' | 'tcg';
  emulated: boolean;
}

/** meta.json: the fields every run has, then what its study or bench adds of its own. */
export interface RunMeta {
  /** The study or bench that made the run: results/<experiment>/. */
  experiment: string;
  /** 'running' until the writer says otherwise: a run killed without a word is never 'complete'. */
  status: RunStatus;
  started: string;
  finished?: string;
  /** The process writing the run while it is 'running'. */
  pid?: number;
  error?: string;
  /** The flags it ran with; `quick` marks a --quick sweep, which never stands for a full one. */
  options: { quick?: boolean } & Record<string, unknown>;
  /** A study's sweep; `trace` names the probe families that ran beside it (they cost throughput). */
  sweep?: { trace?: string[] } & Record<string, unknown>;
  environment: Environment;
  vm?: RunVm;
  [extra: string]: unknown;
}

/** A run directory's name: the start time in UTC, 20261123-074012. */
function runId(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

/** <out>/results/<name>: every run of one study or bench. */
export function resultsDir(out: string, name: string): string {
  return path.join(out, RESULTS_DIR, name);
}

/** Makes <out>/results/<name>/<run id>/ (with -2, -3, ... when two runs start in one second). */
export function createRunDir(out: string, name: string, started: Date): string {
  const base = path.join(resultsDir(out, name), runId(started));
  let dir = base;
  for (let i = 2; fs.existsSync(dir); i++) dir = `${base}-${i}`;
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Writes meta.json whole or not at all: a reader never sees half of one. */
export function writeMeta(runDir: string, meta: RunMeta | Record<string, unknown>): void {
  writeFileAtomic(path.join(runDir, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
}

/** The run's meta.json, or undefined when it has none or it does not parse. */
export function readMeta(runDir: string): Partial<RunMeta> | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(runDir, 'meta.json'), 'utf8')) as Partial<RunMeta>;
  } catch {
    return undefined;
  }
}

/** Run directories of one study or bench that have a meta.json, newest first. */
export function listRuns(out: string, name: string): string[] {
  const dir = resultsDir(out, name);
  try {
    return fs
      .readdirSync(dir)
      .filter((n) => fs.existsSync(path.join(dir, n, 'meta.json')))
      .sort()
      .reverse()
      .map((n) => path.join(dir, n));
  } catch {
    return [];
  }
}

/**
 * The newest run whose meta.json says complete and which has data.csv, preferring full sweeps
 * to --quick ones (a smoke run should not replace the figure of a real one).
 */
export function latestComplete(out: string, name: string): string | undefined {
  const complete = listRuns(out, name)
    .map((dir) => ({ dir, meta: readMeta(dir) }))
    .filter((r) => r.meta?.status === 'complete' && fs.existsSync(path.join(r.dir, 'data.csv')));
  return (complete.find((r) => !r.meta?.options?.quick) ?? complete[0])?.dir;
}

/** The newest complete run that traced locks (has locks.csv), whatever its sweep. */
export function latestTraced(out: string, name: string): string | undefined {
  return listRuns(out, name).find(
    (dir) => readMeta(dir)?.status === 'complete' && fs.existsSync(path.join(dir, 'locks.csv')),
  );
}

/** Run directories of each study, to tell afterwards which ones a command made. */
export function snapshotRuns(out: string, studies: string[]): Map<string, Set<string>> {
  return new Map(studies.map((s) => [s, new Set(listRuns(out, s))]));
}

/** Per study, the run directory made since the snapshot (the newest, if several). */
export function newRuns(out: string, before: Map<string, Set<string>>): Map<string, string> {
  const made = new Map<string, string>();
  for (const [study, had] of before) {
    const fresh = listRuns(out, study).find((dir) => !had.has(dir));
    if (fresh) made.set(study, fresh);
  }
  return made;
}
