// SOCK against Docker (the paper's Figure 6): no-op lambdas, every cache off, a new sandbox per
// request, driven through the same worker by the same closed-loop client at each concurrency.
// Requests per second, mean and p99 latency, per backend: sock (lean containers), sock-zygote
// (each handler forked from the root zygote; the handler cache still off), docker (what a Docker
// user gets: bridge network, own mount namespace) and docker-netnone.
import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { pingDocker } from '../../engine/sandbox/dockerPing.js';
import { baseProblem } from '../../engine/sandbox/baseRootfs.js';
import { reclaimStateDir } from '../../engine/sandbox/gc.js';
import type { SandboxBackend } from '../../engine/sandbox/sandbox.js';
import { DEFAULT_STATE_DIR } from '../../engine/state/stateDir.js';
import { Worker } from '../../engine/worker/worker.js';
import { PrivilegeError } from '../../harness/errors.js';
import { orphansIn, ownedDir, removeOwnedDir, RUN_ROOT } from '../../harness/ownedDirs.js';
import type { Experiment, Measurement, Point, RunContext, Row } from '../../harness/types.js';
import { parseConfigList } from '../configList.js';
import { sockVsDockerFigure } from './figure.js';
import { paper } from './paper.js';
import { type BackendName, startWorkerStack } from '../../engine/worker/stack.js';

const BACKENDS = ['sock', 'sock-zygote', 'docker', 'docker-netnone'];
const KIND = 'sock-vs-docker';

interface Running {
  config: string;
  backend: SandboxBackend;
  worker: Worker;
  url: string;
  stateDir: string;
}

let dir: string | undefined;
let running: Running | undefined;

const baseOf = (options: Record<string, unknown>) =>
  path.resolve(String(options.base ?? process.env.SOCK_BASE ?? path.join(DEFAULT_STATE_DIR, 'base')));

async function stop(): Promise<void> {
  if (!running) return;
  const r = running;
  running = undefined;
  await r.worker.close();
  fs.rmSync(r.stateDir, { recursive: true, force: true });
}

/** The worker for config, started on first use (the previous config's is stopped first). */
async function workerFor(config: string, capacity: number, options: Record<string, unknown>): Promise<Running> {
  if (running?.config === config && running.backend.capacity >= capacity) return running;
  await stop();
  const stateDir = path.join(dir!, config);
  const registryDir = path.join(dir!, 'registry');
  // A client's next request can arrive while its last sandbox is still being destroyed (after
  // the answer): the worker queues it rather than refusing it.
  const { backend, worker } = await startWorkerStack({
    backend: (config === 'sock-zygote' ? 'sock' : config) as BackendName,
    zygotes: config === 'sock-zygote' ? { threshold: 1, budgetBytes: 2 ** 31, maxZygotes: 1 } : undefined,
    stateDir,
    base: baseOf(options),
    registry: registryDir,
    capacity,
    timeoutMs: 60_000,
    queueLimit: 4096,
  });
  const { port } = await worker.listen(0, '127.0.0.1');
  running = { config, backend, worker, url: `http://127.0.0.1:${port}/run/noop`, stateDir };
  return running;
}

/** c clients, each sending its next request when the last is answered, until the time is up. */
async function closedLoop(
  url: string,
  concurrency: number,
  seconds: number,
  signal: AbortSignal,
): Promise<{ latenciesUs: number[]; seconds: number }> {
  const latenciesUs: number[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const client = async () => {
    while (performance.now() < deadline && !signal.aborted) {
      const t0 = performance.now();
      // Not given the run's signal: a listener per request would pile up on it. A request takes
      // seconds at most, and the loop stops after it.
      const res = await fetch(url, { method: 'POST', body: 'null' });
      const body = await res.text();
      if (res.status !== 200) throw new Error(`the worker answered ${res.status}: ${body}`);
      latenciesUs.push((performance.now() - t0) * 1000);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  if (signal.aborted) throw new Error('interrupted');
  return { latenciesUs, seconds: (performance.now() - started) / 1000 };
}

export const sockVsDocker: Experiment = {
  name: KIND,
  summary:
    'no-op lambdas through the worker, a new sandbox per request: SOCK against Docker (requests/s, mean and p99 latency)',
  paper,
  reproTrace: ['locks'],
  defaults: { concurrency: [1, 2, 5, 10, 20], duration: 10, repeat: 3, warmup: 2 },
  quick: { concurrency: [1, 5, 10], duration: 3, repeat: 1, warmup: 1 },

  options(argv: Argv): Argv {
    return argv
      .option('backends', {
        type: 'string',
        default: BACKENDS.join(','),
        describe: `comma-separated backends among ${BACKENDS.join(', ')}`,
      })
      .option('base', {
        type: 'string',
        describe: 'base root file system [default: $SOCK_BASE or /var/lib/sockbench/base]',
      });
  },

  configs(options) {
    return parseConfigList(options.backends, BACKENDS, '--backends');
  },

  async preflight(options) {
    if (process.geteuid?.() !== 0)
      throw new PrivilegeError(`${KIND} makes containers, mounts and cgroups and needs root: run it as root`);
    const problem = baseProblem(baseOf(options));
    if (problem) throw new PrivilegeError(`no base root file system (${problem}); scripts/setup.sh builds it`);
    if (this.configs(options).some((c) => c.startsWith('docker'))) {
      const ping = await pingDocker();
      if (!ping.ok)
        throw new PrivilegeError(
          `the docker backends need a Docker daemon (${ping.why}); scripts/setup.sh starts one, or pass --backends sock`,
        );
    }
  },

  async setup(ctx: RunContext) {
    for (const orphan of orphansIn(RUN_ROOT, KIND)) {
      for (const config of BACKENDS) await reclaimStateDir(path.join(orphan, config));
      removeOwnedDir(orphan);
      ctx.progress.note(`${KIND}: removed ${orphan}, left by a run that is gone`);
    }
    dir = ownedDir(KIND);
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(path.join(dir, 'registry', 'noop'), { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'registry', 'noop', 'f.py'), 'def f(event):\n    return None\n');
  },

  async teardown() {
    try {
      await stop();
    } finally {
      if (dir) removeOwnedDir(dir);
      dir = undefined;
    }
  },

  async measure(point: Point, ctx: RunContext): Promise<Measurement> {
    const r = await workerFor(point.config, Math.max(2 * point.concurrency, 20), ctx.options);
    const result = await closedLoop(r.url, point.concurrency, point.duration ?? 5, ctx.signal);
    // The last sandboxes are destroyed after their answers: let them go before the next point.
    while (r.backend.status().alive > 0 && !ctx.signal.aborted) await new Promise((res) => setTimeout(res, 10));
    if (ctx.signal.aborted) throw new Error('interrupted');
    return {
      ops: result.latenciesUs.length,
      seconds: result.seconds,
      latenciesUs: Float64Array.from(result.latenciesUs),
    };
  },

  figure(rows: Row[]) {
    return sockVsDockerFigure(rows);
  },
};
