// The one place a worker is put together: a backend (SOCK's engine or Docker), the import cache
// of zygotes around SOCK's, the handler cache around that, the install cache, the registry and
// the HTTP front. `sock worker up`, the cache studies, sock-vs-docker and the engine bench all
// start their worker here, so the pool's reserve and the order of the layers are decided once.
import { HandlerCache } from '../caches/handlerCache.js';
import { ImportCache } from '../caches/importCache.js';
import type { InstallCache } from '../caches/installCache.js';
import { zygoteImportsOf } from '../installers/packageNames.js';
import type { Limits } from '../cgroups/cgroupHierarchy.js';
import { DockerEngine } from '../sandbox/dockerEngine.js';
import type { SandboxBackend } from '../sandbox/sandbox.js';
import { SockEngine } from '../sandbox/sockEngine.js';
import { Registry } from './registry.js';
import { Worker } from './worker.js';

export type BackendName = 'sock' | 'docker' | 'docker-netnone';

export interface WorkerStackConfig {
  backend: BackendName;
  stateDir: string;
  /** Base root file system; default <stateDir>/base. */
  base?: string;
  /** The lambdas' directory. */
  registry: string;
  /** Sandboxes busy at once. */
  capacity: number;
  limits?: Limits;
  maxReplyBytes?: number;
  /** SOCK only: which cgroup hierarchy to pool in (default: the one chooseHierarchy picks). */
  cgroupVersion?: 1 | 2;
  /** SOCK only: false runs sandboxes without the seccomp filter, for measuring its cost. */
  seccomp?: boolean;
  /** SOCK only: fork handlers from zygotes; a package set gets its own after `threshold` requests. */
  zygotes?: { threshold: number; budgetBytes: number; maxZygotes: number };
  /** Keep answered instances (frozen once idle freezeAfterMs) for the next request of the same lambda version. */
  handlerCache?: { maxIdle: number; budgetBytes: number; freezeAfterMs?: number };
  /** Opened once the engine has claimed the state directory (which removes half-done installs there). */
  installCache?: () => InstallCache;
  timeoutMs: number;
  queueLimit: number;
  /** Whether a lambda may ask for outbound network [default true]. */
  outbound?: boolean;
  log?: (line: string) => void;
}

export interface WorkerStack {
  /** The backend at the bottom: its state directory, pool and status. */
  engine: SockEngine | DockerEngine;
  /** What the worker makes sandboxes with: the engine, or the import cache around it. */
  backend: SandboxBackend;
  handlerCache?: HandlerCache;
  installCache?: InstallCache;
  worker: Worker;
}

/** Pooled cgroups beyond capacity: one per instance the handler cache may keep, one per zygote and the root's. */
function reserveFor(c: WorkerStackConfig): number {
  return (c.handlerCache?.maxIdle ?? 0) + (c.zygotes ? c.zygotes.maxZygotes + 1 : 0);
}

/** Starts the backend and stacks the caches and the worker on it; on any failure the backend is shut down. */
export async function startWorkerStack(c: WorkerStackConfig): Promise<WorkerStack> {
  const common = {
    stateDir: c.stateDir,
    base: c.base,
    capacity: c.capacity,
    limits: c.limits,
    maxReplyBytes: c.maxReplyBytes,
    log: c.log,
  };
  const engine =
    c.backend === 'sock'
      ? await SockEngine.start({
          ...common,
          reserve: reserveFor(c),
          cgroupVersion: c.cgroupVersion,
          isolation: c.seccomp === false ? { seccomp: false } : undefined,
        })
      : await DockerEngine.start({ ...common, network: c.backend === 'docker-netnone' ? 'none' : 'bridge' });
  try {
    const installCache = c.installCache?.();
    let backend: SandboxBackend = engine;
    if (c.zygotes) {
      if (!(engine instanceof SockEngine)) throw new Error(`zygotes are the SOCK backend's; ${c.backend} has none`);
      backend = await ImportCache.start(engine, { ...c.zygotes, importsOf: zygoteImportsOf, log: c.log });
    }
    const handlerCache = c.handlerCache ? new HandlerCache(backend, { ...c.handlerCache, log: c.log }) : undefined;
    const worker = new Worker({
      registry: new Registry(c.registry, engine.state.code),
      backend,
      installCache,
      handlerCache,
      timeoutMs: c.timeoutMs,
      queueLimit: c.queueLimit,
      outbound: c.outbound,
      log: c.log,
    });
    return { engine, backend, handlerCache, installCache, worker };
  } catch (e) {
    await engine.shutdown();
    throw e;
  }
}
