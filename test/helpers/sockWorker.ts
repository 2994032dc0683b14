// A real `sock worker up` process for the engine's tests, on a port of its own, with a state
// directory of its own beside the shared base root file system.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findHierarchies } from '../../engine/cgroups/cgroupHierarchy.js';
import { mountsUnder } from '../../engine/state/mountinfo.js';
import { DEFAULT_STATE_DIR, removeTree, StateDir } from '../../engine/state/stateDir.js';
import { scratchDir } from './helpers.js';

export const SOCK_CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../app/sock.js');
/** Built by scripts/setup.sh (sock base build); the tests never build one of their own. */
export const BASE = process.env.SOCK_BASE ?? path.join(DEFAULT_STATE_DIR, 'base');

const made: string[] = [];

/** A scratch directory removed by removeScratch(). */
export function engineScratch(): string {
  const dir = scratchDir();
  made.push(dir);
  return dir;
}

/** Removes the scratch directories made so far; refuses (throws) if anything is still mounted in one. */
export function removeScratch(): void {
  for (const dir of made.splice(0)) removeTree(dir);
}

/** Writes <registry>/<name>/f.py. */
export function lambda(registry: string, name: string, source: string): void {
  fs.mkdirSync(path.join(registry, name), { recursive: true });
  fs.writeFileSync(path.join(registry, name, 'f.py'), source);
}

export interface RunningWorker {
  url: string;
  proc: ChildProcess;
  stateDir: string;
  registry: string;
  log: () => string;
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The worker without its caches: every request a fresh lean container, as the contract tests expect. */
const NO_CACHES = ['--installer', 'off', '--zygotes', 'off', '--handler-cache', 'off'];

/** The command line of `sock worker up` with the tests' base, registry and state directory. */
export function workerArgv(registry: string, stateDir: string, args: string[] = []): string[] {
  return [
    process.execPath,
    SOCK_CLI,
    'worker',
    'up',
    '--port',
    '0',
    '--registry',
    registry,
    '--state-dir',
    stateDir,
    '--base',
    BASE,
    ...args,
  ];
}

/** argv, started in the cgroup v2 directory `cgroup` (a shell writes itself there and execs it), as a service manager starts a process in its unit's cgroup. */
export function inCgroup(cgroup: string, argv: string[]): string[] {
  return ['/bin/sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...argv];
}

export async function startWorker(
  options: { registry?: string; stateDir?: string; args?: string[]; caches?: boolean; cgroup?: string } = {},
): Promise<RunningWorker> {
  const registry = options.registry ?? engineScratch();
  const stateDir = options.stateDir ?? engineScratch();
  const caches = options.caches ? [] : NO_CACHES;
  const argv = workerArgv(registry, stateDir, [...caches, ...(options.args ?? [])]);
  const [command, ...rest] = options.cgroup ? inCgroup(options.cgroup, argv) : argv;
  const proc = spawn(command!, rest, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (chunk: string) => {
      log += chunk;
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(log);
      if (m) resolve(m[1]!);
    });
    exited.then((code) => reject(new Error(`worker exited (${code}) before listening: ${log}`)));
  });
  return {
    url,
    proc,
    stateDir,
    registry,
    log: () => log,
    stop: (signal = 'SIGTERM') => {
      proc.kill(signal);
      return exited;
    },
  };
}

export async function post(url: string, name: string, body: string): Promise<{ status: number; body: any }> {
  const { status, body: answer } = await postStarted(url, name, body);
  return { status, body: answer };
}

/** post(), and how the worker says the request's sandbox came to be (its x-sock-start header). */
export async function postStarted(
  url: string,
  name: string,
  body: string,
): Promise<{ status: number; body: any; start: string }> {
  const res = await fetch(`${url}/run/${name}`, { method: 'POST', body });
  return { status: res.status, body: await res.json(), start: res.headers.get('x-sock-start') ?? '' };
}

/** The engine's cgroups of that state directory, in every hierarchy. */
export function poolCgroups(stateDir: string): string[] {
  const name = new StateDir(stateDir).cgroupName;
  return findHierarchies()
    .flatMap((h) => Object.values(h.roots))
    .map((root) => path.join(root, name))
    .filter((d) => fs.existsSync(d));
}

/** Every process in those cgroups and below. */
export function tasksIn(dirs: string[]): string[] {
  const tasks: string[] = [];
  const walk = (d: string) => {
    tasks.push(...fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean));
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
  };
  dirs.forEach(walk);
  return tasks;
}

/** Mounts under the state directory other than the engine's own private bind of sandboxes/. */
export function sandboxMounts(stateDir: string): string[] {
  const sandboxes = new StateDir(stateDir).sandboxes;
  return mountsUnder(fs.realpathSync(stateDir)).filter((m) => m !== sandboxes);
}
