// What several test files need: the CLI run as a real process, and a scratch output directory.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../harness/cli.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function cli(args: string[], options: { uid?: number; gid?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { ...options, env: { ...process.env, CI: 'true' } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

export const scratchDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'sb-test-'));

/** The only run directory an experiment wrote under out. */
export function onlyRun(out: string, experiment: string): string {
  const runs = fs.readdirSync(path.join(out, 'results', experiment));
  if (runs.length !== 1) throw new Error(`expected one run of ${experiment}, found ${runs.length}`);
  return path.join(out, 'results', experiment, runs[0]!);
}
