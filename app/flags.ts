// What every entry point of the program shares: where the repository (and so results/) is, the
// parsers of the flags several commands take, and running a main() whose errors end in one line.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isUserError, UsageError } from '../harness/errors.js';
import type { SweepOptions } from '../harness/runner.js';
import { TRACE_FAMILIES, type TraceFamily } from '../harness/tracer.js';
import type { Experiment } from '../harness/types.js';

const MAX_CONCURRENCY = 4096;
/** The repository root (this file runs from dist/app/). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function parseConcurrency(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => p === ''))
    throw new UsageError(`--concurrency: '${text}' is not a comma-separated list`);
  return parts.map((p) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || n < 1 || n > MAX_CONCURRENCY) {
      throw new UsageError(`--concurrency: '${p}' is not a whole number from 1 to ${MAX_CONCURRENCY}`);
    }
    return n;
  });
}

function positive(flag: string, value: unknown, { integer = false, zeroOk = false } = {}): number {
  const n = Number(value);
  const ok = Number.isFinite(n) && (zeroOk ? n >= 0 : n > 0) && (!integer || Number.isInteger(n));
  if (typeof value === 'boolean' || value === '' || !ok) {
    const what = integer ? 'a whole number' : 'a number';
    throw new UsageError(`--${flag}: '${String(value)}' is not ${what} ${zeroOk ? '>= 0' : '> 0'}`);
  }
  return n;
}

/** The sweep the user asked for: explicit flags win, then --quick, then the experiment's defaults. */
export function sweepFrom(exp: Experiment, args: Record<string, unknown>): SweepOptions {
  const base = args.quick ? exp.quick : exp.defaults;
  if (args.duration !== undefined && args.ops !== undefined)
    throw new UsageError('--duration and --ops: give one, not both');
  return {
    concurrency: args.concurrency === undefined ? base.concurrency : parseConcurrency(String(args.concurrency)),
    duration: args.duration === undefined ? base.duration : positive('duration', args.duration),
    ops: args.ops === undefined ? undefined : positive('ops', args.ops, { integer: true }),
    repeat: args.repeat === undefined ? base.repeat : positive('repeat', args.repeat, { integer: true }),
    warmup: args.warmup === undefined ? base.warmup : positive('warmup', args.warmup, { zeroOk: true }),
    out: path.resolve(String(args.out ?? REPO_ROOT)),
    trace: args.trace === undefined ? [] : parseTrace(String(args.trace)),
  };
}

export function parseTrace(text: string): TraceFamily[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new UsageError(`--trace: name probe families (${TRACE_FAMILIES.join(', ')})`);
  for (const n of names) {
    if (!(TRACE_FAMILIES as readonly string[]).includes(n))
      throw new UsageError(`--trace: unknown probe family '${n}' (known: ${TRACE_FAMILIES.join(', ')})`);
  }
  return [...new Set(names)] as TraceFamily[];
}

/** A whole number of at least min, or a UsageError naming the flag. */
export function wholeAtLeast(flag: string, value: unknown, min: number): number {
  const n = Number(value);
  if (typeof value === 'boolean' || value === '' || !Number.isInteger(n) || n < min)
    throw new UsageError(`--${flag}: '${String(value)}' is not a whole number >= ${min}`);
  return n;
}

/** Runs main when moduleUrl is the program node was started with; errors end in one line. */
export function runIfMain(moduleUrl: string, name: string, main: () => Promise<number>): void {
  if (!process.argv[1] || fs.realpathSync(process.argv[1]) !== fileURLToPath(moduleUrl)) return;
  main().then(
    (code) => (process.exitCode = code),
    (e) => {
      process.stderr.write(`${name}: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = isUserError(e) ? e.exitCode : ((e as { exitCode?: number }).exitCode ?? 1);
    },
  );
}
