// What the interleaved benchmarks (bench:engine, bench:isolation) share: the same flags for
// rounds, warm-up, idle gap, base and output, read the same way, and the same way of ending
// (a user's mistake is one line with its exit status, never a stack trace). Each benchmark
// times its own modes; rounds run every mode once, in a shuffled order, so that all of them
// see the same machine.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Argv } from 'yargs';
import { DEFAULT_STATE_DIR } from '../engine/state/stateDir.js';
import { UsageError } from './errors.js';

export interface RoundFlags {
  rounds: number;
  warmup: number;
  gap: number;
  quick: boolean;
  base: string;
  out?: string;
}

/** The shared flags, with this benchmark's defaults and what its --gap is for. */
export function roundOptions<T>(
  y: Argv<T>,
  defaults: { rounds: number; warmup: number; gap: number; quickRounds: number; gapWhy: string },
) {
  return y
    .option('rounds', {
      type: 'number',
      default: defaults.rounds,
      describe: 'measured rounds; each round times every mode once, in a shuffled order',
    })
    .option('warmup', { type: 'number', default: defaults.warmup, describe: 'unmeasured rounds first' })
    .option('gap', {
      type: 'number',
      default: defaults.gap,
      describe: `ms of idleness before each measurement (${defaults.gapWhy})`,
    })
    .option('quick', { type: 'boolean', default: false, describe: `${defaults.quickRounds} rounds, 1 warm-up` })
    .option('base', {
      type: 'string',
      default: process.env.SOCK_BASE ?? path.join(DEFAULT_STATE_DIR, 'base'),
      describe: 'base root file system',
    })
    .option('out', { type: 'string', describe: 'directory that receives results/ [default: the repository root]' })
    .strict()
    .fail((msg, err) => {
      // yargs words some refusals over several lines (a bad choice lists the good ones): one line here.
      throw new UsageError(String(msg ?? err?.message).replace(/\s*\n\s*/g, ' '));
    });
}

/** Rounds and warm-up as --quick makes them, checked. */
export function roundsOf(args: RoundFlags, quickRounds: number): { rounds: number; warmup: number } {
  const rounds = args.quick ? quickRounds : args.rounds;
  const warmup = args.quick ? 1 : args.warmup;
  if (!Number.isInteger(rounds) || rounds < 2 || !Number.isInteger(warmup) || warmup < 0)
    throw new UsageError('--rounds must be a whole number >= 2 and --warmup >= 0');
  if (!(args.gap >= 0)) throw new UsageError('--gap must be a number of ms >= 0');
  return { rounds, warmup };
}

export function shuffled<T>(xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** A scratch directory under the system's temporary one, holding registry/noop/f.py (a no-op handler). */
export function noopRegistry(prefix: string): { scratch: string; registryDir: string } {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const registryDir = path.join(scratch, 'registry');
  fs.mkdirSync(path.join(registryDir, 'noop'), { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(registryDir, 'noop', 'f.py'), 'def f(event):\n    return None\n');
  return { scratch, registryDir };
}

/** Ctrl-C and SIGTERM end the run between two measurements, not in the middle of one. */
export function interruptions(): { readonly interrupted: boolean; stop(): void } {
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    get interrupted() {
      return interrupted;
    },
    stop() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
