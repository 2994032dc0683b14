// What several test files need: the CLI run as a real process, and a scratch output directory.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, type Test } from 'uvu';
import * as assert from 'uvu/assert';
import { RUN_ROOT } from '../../harness/ownedDirs.js';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../app/cli.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function cli(args: string[], options: { uid?: number; gid?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { ...options, env: { ...process.env, CI: 'true' } },
      (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

export const scratchDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'sb-test-'));

/** The scratch directories of that kind (ownedDir's <kind>-<pid>-<start>) still in /run/sockbench. */
export const scratchLeft = (kind: string): string[] =>
  fs.existsSync(RUN_ROOT) ? fs.readdirSync(RUN_ROOT).filter((n) => n.startsWith(`${kind}-`)) : [];

/** The only run directory an experiment wrote under out. */
export function onlyRun(out: string, experiment: string): string {
  const runs = fs.readdirSync(path.join(out, 'results', experiment));
  if (runs.length !== 1) throw new Error(`expected one run of ${experiment}, found ${runs.length}`);
  return path.join(out, 'results', experiment, runs[0]!);
}

/** Registers one test per case: the run is refused with that exit status and one line naming what was wrong. */
export function refusesBadInput(experiment: string, cases: [flags: string[], mention: string, code?: number][]): void {
  for (const [flags, mention, code = 2] of cases) {
    test(`${experiment}: bad input ${flags.join(' ')}: exit ${code}, one line naming ${mention}`, async () => {
      const r = await cli(['run', experiment, ...flags, '--out', '/nonexistent-sockbench']);
      assert.is(r.code, code, r.stderr);
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, mention);
    });
  }
}

/** What promise p rejected with; throws if it resolved. */
export async function rejection<E extends Error = Error>(p: Promise<unknown>): Promise<E> {
  try {
    await p;
  } catch (e) {
    return e as E;
  }
  throw new Error('expected a rejection');
}

/**
 * `t` (uvu's test, or a suite), or, where `why` says this host cannot run the test, a skip:
 * uvu counts it (its "Skipped: N", which .ci/run reports) and stderr says which test and why.
 * A test that cannot run here never returns early and counts as passed.
 */
export function skipWith(
  why: string | undefined,
  t: Test = test,
): (name: string, fn: () => void | Promise<void>) => void {
  if (why === undefined) return t;
  return (name) => {
    console.error(`skipped: ${name}: ${why}`);
    t.skip(name);
  };
}
