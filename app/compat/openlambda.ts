// npm run compat:openlambda: does a user's OpenLambda lambda run here unchanged? Every check of
// openlambda/checks.ts, against the lambdas beside it (ours, written to OpenLambda's documented
// conventions; nothing is fetched), through a real worker started three ways so that each start
// kind serves them: lean (no caches: every request a new lean container), zygote (every request
// forked from a zygote, nothing kept) and warm (the worker's defaults: the second request of a
// check finds the instance the first one left). Packages (Flask, FastAPI, PyYAML) come from
// Debian's python3-* packages through the install cache, once for the whole run.
//
// It prints one line per check and start kind, then "compat:openlambda: N passed, N failed,
// N skipped" (a check needing packages is skipped, with its reason, under --installer off),
// and exits 1 when any failed.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { create as createTar } from 'tar';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { baseProblem } from '../../engine/sandbox/baseRootfs.js';
import { DEFAULT_STATE_DIR, StateDir } from '../../engine/state/stateDir.js';
import { openInstallCache } from '../../engine/worker/installSetup.js';
import { startWorkerStack, type WorkerStack } from '../../engine/worker/stack.js';
import { PrivilegeError, UsageError } from '../../harness/errors.js';
import { interruptions } from '../../harness/interleavedBench.js';
import { ownedDir, reclaimLeftovers, removeOwnedDir } from '../../harness/ownedDirs.js';
import { runIfMain } from '../flags.js';
import { type Answer, type CallOptions, CHECKS, type CheckContext } from './openlambda/checks.js';

export type StartKind = 'lean' | 'zygote' | 'warm';
export const START_KINDS: readonly StartKind[] = ['lean', 'zygote', 'warm'];

const here = path.dirname(fileURLToPath(import.meta.url));
/** The lambdas are Python source beside the TypeScript, not compiled. */
export const LAMBDAS_DIR = path.resolve(
  here,
  here.includes(`${path.sep}dist${path.sep}`) ? '../../../app/compat/openlambda/lambdas' : 'openlambda/lambdas',
);
/** Packed into <registry>/packed.tar.gz, as OpenLambda's registry keeps a lambda. */
const PACKED = 'packed';
const OWNER_KIND = 'compat-openlambda';

export interface CheckOutcome {
  check: string;
  start: StartKind;
  outcome: 'passed' | 'failed' | 'skipped';
  /** What was seen instead, or why it was skipped. */
  detail?: string;
}

export interface CompatOptions {
  starts: readonly StartKind[];
  /** Off: the checks needing packages are skipped. */
  installer: 'debian' | 'off';
  base?: string;
  onOutcome?: (o: CheckOutcome) => void;
  log?: (line: string) => void;
  /** Checked between checks: true stops the run there (the worker is closed, its directory removed). */
  stopped?: () => boolean;
}

/** The worker's flags per start kind. */
function cachesFor(start: StartKind) {
  const zygotes = { threshold: 1, budgetBytes: 512 * 2 ** 20, maxZygotes: 8 };
  const handlerCache = { maxIdle: 16, budgetBytes: 512 * 2 ** 20 };
  if (start === 'lean') return {};
  if (start === 'zygote') return { zygotes };
  return { zygotes, handlerCache };
}

/** The start a request of this kind of worker must have had, or why not ('' for a request no sandbox served). */
function wrongStart(start: StartKind, seen: string): string | undefined {
  if (seen === '') return undefined;
  if (start === 'lean' && seen !== 'lean') return `started ${seen} in the lean worker`;
  if (start === 'zygote' && !seen.startsWith('zygote')) return `started ${seen} in the zygote worker`;
  if (start === 'warm' && seen === 'lean') return 'started lean in the warm worker';
  return undefined;
}

async function request(url: string, o: CallOptions = {}): Promise<Answer> {
  const body = typeof o.body === 'string' ? o.body : o.body && new Uint8Array(o.body);
  // As curl does: POST with a body, GET without.
  const res = await fetch(url, { method: o.method ?? (body === undefined ? 'GET' : 'POST'), body, headers: o.headers });
  const bytes = Buffer.from(await res.arrayBuffer());
  return {
    status: res.status,
    reason: res.statusText,
    headers: res.headers,
    body: bytes,
    text: bytes.toString('utf8'),
    start: res.headers.get('x-sock-start') ?? '',
  };
}

/** The registry: the lambdas copied, `packed` as a .tar.gz. */
function makeRegistry(dir: string): string {
  const registry = path.join(dir, 'registry');
  fs.cpSync(LAMBDAS_DIR, registry, { recursive: true });
  createTar(
    { gzip: true, file: path.join(registry, `${PACKED}.tar.gz`), cwd: path.join(registry, PACKED), sync: true },
    ['.'],
  );
  fs.rmSync(path.join(registry, PACKED), { recursive: true });
  for (const entry of fs.readdirSync(registry, { recursive: true, withFileTypes: true }))
    fs.chmodSync(path.join(entry.parentPath, entry.name), entry.isDirectory() ? 0o755 : 0o644);
  return registry;
}

/** Runs every check under every start kind asked for; the outcomes in that order. */
export async function runCompat(o: CompatOptions): Promise<CheckOutcome[]> {
  if (process.getuid?.() !== 0)
    throw new PrivilegeError('not root: the checks run through a SOCK worker, which needs root');
  const base = o.base ?? new StateDir(DEFAULT_STATE_DIR).defaultBase;
  const problem = baseProblem(base);
  if (problem) throw new PrivilegeError(`no usable base root file system: ${problem}; run scripts/setup.sh`);
  reclaimLeftovers(OWNER_KIND);
  const dir = ownedDir(OWNER_KIND);
  const outcomes: CheckOutcome[] = [];
  const say = (outcome: CheckOutcome) => {
    outcomes.push(outcome);
    o.onOutcome?.(outcome);
  };
  try {
    const registry = makeRegistry(dir);
    // One state directory for the three workers in turn: its install cache installs each package once.
    const stateDir = path.join(dir, 'state');
    for (const start of o.starts) {
      let stack: WorkerStack | undefined;
      try {
        stack = await startWorkerStack({
          backend: 'sock',
          stateDir,
          base,
          registry,
          capacity: 4,
          ...cachesFor(start),
          installCache:
            o.installer === 'off'
              ? undefined
              : () => openInstallCache({ installer: 'debian', stateDir, base, log: o.log }),
          timeoutMs: 60_000,
          queueLimit: 64,
          log: o.log,
        });
        const { port } = await stack.worker.listen(0, '127.0.0.1');
        const url = `http://127.0.0.1:${port}`;
        const ctx: CheckContext = {
          start,
          fetch: (p, options) => request(`${url}${p}`, options),
          async call(lambda, options = {}) {
            const answer = await request(`${url}/run/${lambda}${options.path ?? ''}`, options);
            const wrong = wrongStart(start, answer.start);
            if (wrong) throw new Error(`${lambda}: ${wrong}`);
            return answer;
          },
        };
        for (const check of CHECKS) {
          if (o.stopped?.()) return outcomes;
          if (check.packages && o.installer === 'off') {
            say({ check: check.name, start, outcome: 'skipped', detail: 'needs packages, and --installer is off' });
            continue;
          }
          try {
            await check.run(ctx);
            say({ check: check.name, start, outcome: 'passed' });
          } catch (e) {
            say({ check: check.name, start, outcome: 'failed', detail: (e as Error).message });
          }
        }
      } finally {
        await stack?.worker.close();
      }
    }
  } finally {
    removeOwnedDir(dir);
  }
  return outcomes;
}

/** "N passed, N failed, N skipped". */
export function tally(outcomes: CheckOutcome[]): string {
  const n = (k: CheckOutcome['outcome']) => outcomes.filter((o) => o.outcome === k).length;
  return `${n('passed')} passed, ${n('failed')} failed, ${n('skipped')} skipped`;
}

async function main(): Promise<number> {
  const args = await yargs(hideBin(process.argv))
    .scriptName('compat:openlambda')
    .usage(
      "$0 [options]\n\nRuns OpenLambda-style lambdas (ours, in app/compat/openlambda/lambdas) through a real SOCK worker started lean, zygote and warm, and says which of OpenLambda's behaviours hold.",
    )
    .option('starts', {
      type: 'string',
      default: START_KINDS.join(','),
      describe: 'start kinds to run the checks under, comma-separated (lean, zygote, warm)',
    })
    .option('installer', {
      choices: ['debian', 'off'] as const,
      default: 'debian' as const,
      describe:
        "how Flask, FastAPI and PyYAML are installed: Debian's python3-* packages, or off (those checks skipped)",
    })
    .option('base', { type: 'string', describe: `base root file system [default: ${DEFAULT_STATE_DIR}/base]` })
    .strict()
    .fail((message, error) => {
      // yargs says a bad choice in several lines; a usage error is one.
      throw error ?? new UsageError(message.replace(/\s*\n\s*/g, ' '));
    })
    .parse();
  const starts = String(args.starts)
    .split(',')
    .map((s) => s.trim());
  for (const s of starts)
    if (!(START_KINDS as readonly string[]).includes(s))
      throw new UsageError(`--starts: unknown start kind '${s}' (known: ${START_KINDS.join(', ')})`);
  const signals = interruptions();
  const outcomes = await runCompat({
    stopped: () => signals.interrupted,
    starts: starts as StartKind[],
    installer: args.installer,
    base: args.base,
    log: (line) => process.stderr.write(`worker: ${line}\n`),
    onOutcome: (o) =>
      process.stdout.write(
        `${o.outcome === 'passed' ? 'ok  ' : o.outcome === 'failed' ? 'FAIL' : 'skip'} ${o.start.padEnd(6)} ${o.check}${o.detail ? `\n            ${o.detail}` : ''}\n`,
      ),
  });
  signals.stop();
  if (signals.interrupted) {
    process.stderr.write('compat:openlambda: interrupted; the worker was stopped and its directory removed\n');
    return 130;
  }
  process.stdout.write(`compat:openlambda: ${tally(outcomes)}\n`);
  return outcomes.some((o) => o.outcome === 'failed') ? 1 : 0;
}

runIfMain(import.meta.url, 'compat:openlambda', main);
