// `--kernel host`: the studies on this machine, through the same CLI, with the same status file
// and console log as a guest, so the rest of `kernels` treats it like any other kernel.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import type { KernelsPlan } from './plan.js';
import type { KernelOutcome } from './results.js';

/** `host`: the same studies on this machine, through the same CLI, output prefixed like a guest's. */
export async function runOnHost(
  plan: KernelsPlan,
  o: KernelOutcome,
  stampDir: string,
  signal: AbortSignal,
  repoRoot: string,
): Promise<void> {
  o.accel = 'host';
  o.release = os.release();
  const log = fs.openSync(o.console, 'a');
  const statusFile = path.join(stampDir, o.label, 'status');
  const runs =
    plan.exec === undefined
      ? plan.studies.map(
          (s) =>
            [
              s,
              process.execPath,
              [path.join(repoRoot, 'dist/app/cli.js'), 'run', s, ...plan.studyArgs, '--out', plan.out],
            ] as const,
        )
      : [['exec', '/bin/sh', ['-c', plan.exec]] as const];
  try {
    for (const [name, file, argv] of runs) {
      if (signal.aborted) throw signal.reason;
      const rc = await new Promise<number>((resolve) => {
        const child = spawn(file, argv, {
          cwd: repoRoot,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, CI: 'true', SOCKBENCH_OUT: plan.out, SOCKBENCH_RUN_DIR: path.join(stampDir, o.label) },
        });
        const onAbort = () => child.kill('SIGINT');
        signal.addEventListener('abort', onAbort);
        for (const stream of [child.stdout!, child.stderr!]) {
          readline.createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
            fs.writeSync(log, `${line}\n`);
            process.stderr.write(`[host ${o.release}] ${line}\n`);
          });
        }
        child.on('close', (code, sig) => {
          signal.removeEventListener('abort', onAbort);
          resolve(
            code ?? (sig ? 128 + (({ SIGINT: 2, SIGTERM: 15, SIGKILL: 9 } as Record<string, number>)[sig] ?? 1) : 1),
          );
        });
      });
      fs.appendFileSync(statusFile, `${name} ${rc}\n`);
    }
  } finally {
    fs.closeSync(log);
  }
  if (signal.aborted) {
    o.status = 'interrupted';
    throw signal.reason;
  }
}

/** Each kernel against the first, study by study, through compare; true when a comparison regressed. */
