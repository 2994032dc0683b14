// A native run (ChurnRun, ScriptRun) as an experiment's measurement: stopped by Ctrl-C, kernel
// limits reported as such, and an interrupted run never returned as a result.
import { ChurnRun, type ChurnOptions, type ChurnResult } from '../native/index.js';
import { InterruptedError, fromKernelError } from '../harness/errors.js';
import type { Point, RunContext } from '../harness/types.js';

/** How long a native run lasts: the point's duration, or its operation count. */
export function bounds(point: Point): { durationSeconds: number } | { ops: number } {
  return point.ops ? { ops: point.ops } : { durationSeconds: point.duration! };
}

export async function runToCompletion<R extends { stopped: boolean }>(
  run: { start(): Promise<R>; stop(): void },
  ctx: RunContext,
  label: string,
): Promise<R> {
  const stop = () => run.stop();
  ctx.signal.addEventListener('abort', stop);
  let result;
  try {
    result = await run.start();
  } catch (e) {
    throw fromKernelError(e, label);
  } finally {
    ctx.signal.removeEventListener('abort', stop);
  }
  if (result.stopped) throw new InterruptedError('interrupted');
  return result;
}

export function churn(
  point: Point,
  ctx: RunContext,
  options: Omit<ChurnOptions, 'concurrency' | 'durationSeconds' | 'ops'>,
  label: string,
): Promise<ChurnResult> {
  return runToCompletion(new ChurnRun({ ...options, concurrency: point.concurrency, ...bounds(point) }), ctx, label);
}
