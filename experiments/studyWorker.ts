// The SOCK worker as the cache studies drive it: in this process, on loopback, with the caches
// each configuration asks for, and a client that checks every answer and says how its
// sandbox came to be (the worker's x-sock-start header), so a study never counts a warm hit
// as a cold start or the other way round.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { HandlerCache } from '../engine/caches/handlerCache.js';
import { baseProblem } from '../engine/sandbox/baseRootfs.js';
import { reclaimStateDir } from '../engine/sandbox/gc.js';
import { InstallCache } from '../engine/caches/installCache.js';
import { DebianProvider } from '../engine/installers/debian.js';
import type { SandboxBackend } from '../engine/sandbox/sandbox.js';
import { DEFAULT_STATE_DIR } from '../engine/state/stateDir.js';
import { startWorkerStack } from '../engine/worker/stack.js';
import { Worker } from '../engine/worker/worker.js';
import { PrivilegeError } from '../harness/errors.js';
import { orphansIn, ownedDir, removeOwnedDir, RUN_ROOT } from '../harness/ownedDirs.js';
import type { Point, RunContext } from '../harness/types.js';

export interface StudyWorkerOptions {
  stateDir: string;
  base: string;
  registry: string;
  /** Sandboxes busy at once. */
  capacity: number;
  installCache: InstallCache;
  /** Fork from zygotes: a set gets its own after `threshold` requests (Infinity: only the root). */
  zygotes?: { threshold: number; budgetBytes: number; maxZygotes: number };
  handlerCache?: { maxIdle: number; budgetBytes: number };
}

export interface Answer {
  /** End to end, as the client saw it. */
  ms: number;
  /** warm, zygote:<packages>, lean */
  start: string;
  result: unknown;
  /** The worker's own account (Server-Timing): install, sandbox (make, fork or thaw), invoke, in ms. */
  timing: Record<string, number>;
}

export class StudyWorker {
  /** One kept-alive connection: the client's own cost (fetch's is about a millisecond here) is not the platform's. */
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  private constructor(
    readonly backend: SandboxBackend,
    private readonly handlerCache: HandlerCache | undefined,
    private readonly worker: Worker,
    private readonly url: string,
    private readonly stateDir: string,
  ) {}

  static async start(o: StudyWorkerOptions): Promise<StudyWorker> {
    const { backend, handlerCache, worker } = await startWorkerStack({
      backend: 'sock',
      stateDir: o.stateDir,
      base: o.base,
      registry: o.registry,
      capacity: o.capacity,
      zygotes: o.zygotes && {
        ...o.zygotes,
        threshold: Number.isFinite(o.zygotes.threshold) ? o.zygotes.threshold : Number.MAX_SAFE_INTEGER,
      },
      handlerCache: o.handlerCache,
      installCache: () => o.installCache,
      timeoutMs: 120_000,
      queueLimit: 4096,
    });
    const { port } = await worker.listen(0, '127.0.0.1');
    return new StudyWorker(backend, handlerCache, worker, `http://127.0.0.1:${port}`, o.stateDir);
  }

  /** One request; anything but 200 is an error naming the lambda and the worker's answer. */
  async run(lambda: string, event: unknown = null): Promise<Answer> {
    const body = JSON.stringify(event);
    const t0 = performance.now();
    const { status, headers, text } = await post(`${this.url}/run/${lambda}`, body, this.agent);
    const ms = performance.now() - t0;
    if (status !== 200) throw new Error(`${lambda}: the worker answered ${status}: ${text.slice(0, 300)}`);
    const timing = Object.fromEntries(
      String(headers['server-timing'] ?? '')
        .split(',')
        .flatMap((part) => {
          const m = /^\s*(\w+);dur=([\d.]+)\s*$/.exec(part);
          return m ? [[m[1]!, Number(m[2])]] : [];
        }),
    );
    return { ms, start: String(headers['x-sock-start'] ?? ''), result: JSON.parse(text), timing };
  }

  /** Waits until the sandboxes the worker destroys (or freezes) after answering are done with (so that is not in the next measurement). */
  async settle(): Promise<void> {
    const kept = () => Number(this.handlerCache?.status().idle ?? 0);
    const busy = () => Number((this.backend.status() as { alive: number }).alive) - kept();
    for (let i = 0; i < 500 && busy() > 0; i++) await new Promise((r) => setTimeout(r, 10));
  }

  status(): Record<string, unknown> {
    return this.backend.status();
  }

  async stop(): Promise<void> {
    this.agent.destroy();
    await this.worker.close();
    fs.rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/**
 * The worker a study keeps between points: one at a time, in <dir>/<stateDir>, with the study's
 * registry and install cache; replaced when a point asks for another configuration (or fresh).
 */
export class StudyWorkers {
  private current: { key: string; worker: StudyWorker } | undefined;

  constructor(
    private readonly dir: string,
    private readonly installCache: InstallCache,
    private readonly options: Record<string, unknown>,
  ) {}

  async get(
    key: string,
    caches: Pick<StudyWorkerOptions, 'zygotes' | 'handlerCache'>,
    { fresh = false, stateDir = 'state' } = {},
  ): Promise<StudyWorker> {
    if (!fresh && this.current?.key === key) return this.current.worker;
    await this.stop();
    const worker = await StudyWorker.start({
      stateDir: path.join(this.dir, stateDir),
      base: baseOf(this.options),
      registry: path.join(this.dir, 'registry'),
      capacity: 2,
      installCache: this.installCache,
      ...caches,
    });
    this.current = { key, worker };
    return worker;
  }

  async stop(): Promise<void> {
    const c = this.current;
    this.current = undefined;
    await c?.worker.stop();
  }
}

/** A POST with Node's http client, its answer read whole. */
export function post(
  url: string,
  body: string,
  agent: http.Agent,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Writes a lambda into the registry: f.py and, when it has packages, requirements.txt. */
export function writeLambda(registry: string, name: string, source: string, requirements: string[] = []): void {
  const dir = path.join(registry, name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(dir, 'f.py'), source, { mode: 0o644 });
  if (requirements.length > 0)
    fs.writeFileSync(path.join(dir, 'requirements.txt'), `${requirements.join('\n')}\n`, { mode: 0o644 });
}

/** The base root file system a study's sandboxes use: --base, $SOCK_BASE or the engine's default. */
export const baseOf = (options: Record<string, unknown>) =>
  path.resolve(String(options.base ?? process.env.SOCK_BASE ?? path.join(DEFAULT_STATE_DIR, 'base')));

/** What every cache study needs before it writes anything: root, and a complete base. */
export function preflightCacheStudy(kind: string, options: Record<string, unknown>): void {
  if (process.geteuid?.() !== 0)
    throw new PrivilegeError(`${kind} makes containers, mounts and cgroups and needs root: run it as root`);
  const problem = baseProblem(baseOf(options));
  if (problem) throw new PrivilegeError(`no base root file system (${problem}); scripts/setup.sh builds it`);
}

/**
 * The study's run directory (what a crashed run of it left is removed first: its workers'
 * state directories, named in stateDirs, with their mounts and cgroups) and its own install
 * cache in it (Debian's packages), so nothing of the user's is touched.
 */
export async function openStudyDir(
  kind: string,
  ctx: RunContext,
  stateDirs: string[],
): Promise<{ dir: string; installCache: InstallCache }> {
  for (const orphan of orphansIn(RUN_ROOT, kind)) {
    for (const state of stateDirs) await reclaimStateDir(path.join(orphan, state));
    removeOwnedDir(orphan);
    ctx.progress.note(`${kind}: removed ${orphan}, left by a run that is gone`);
  }
  const dir = ownedDir(kind);
  fs.chmodSync(dir, 0o755);
  const installCache = InstallCache.open(
    path.join(dir, 'packages'),
    new DebianProvider({ base: baseOf(ctx.options), workDir: path.join(dir, 'install-work') }),
  );
  return { dir, installCache };
}

/** Installs the requirements before anything is timed, one at a time (so each one's times are its own), saying what each cost. */
export async function installFirst(
  kind: string,
  ctx: RunContext,
  installCache: InstallCache,
  requirements: string[],
): Promise<void> {
  for (const requirement of requirements) {
    const [p] = await installCache.ensure([requirement]);
    ctx.progress.note(
      `${kind}: installed ${p!.name} ${p!.version} (download ${p!.downloadMs.toFixed(0)} ms, install ${p!.installMs.toFixed(0)} ms)`,
    );
  }
}

/** Runs once() until the point's operations or duration are used up; returns the seconds taken. */
export async function repeatForPoint(point: Point, signal: AbortSignal, once: () => Promise<void>): Promise<number> {
  const started = performance.now();
  let done = 0;
  const finished = () => (point.ops ? done >= point.ops : performance.now() - started >= (point.duration ?? 5) * 1000);
  while (!finished()) {
    if (signal.aborted) throw new Error('interrupted');
    await once();
    done++;
  }
  return (performance.now() - started) / 1000;
}
