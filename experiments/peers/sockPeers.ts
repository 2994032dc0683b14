// SOCK as a peer: the same no-op Python start, asked of the worker over HTTP by a client with a
// kept-alive connection per concurrent caller, in the three ways SOCK starts a handler: lean (a
// new container, caches off), zygote (forked from the root zygote, handler cache off) and warm
// (the handler cache's frozen instance thawed). One worker per mode, each started on its first
// use and kept for the run, so a mode's zygote and kept instances survive between rounds.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startWorkerStack, type WorkerStack } from '../../engine/worker/stack.js';
import { post } from '../studyWorker.js';

export const SOCK_MODES = ['sock-lean', 'sock-zygote', 'sock-warm'] as const;
export type SockMode = (typeof SOCK_MODES)[number];

/** The x-sock-start a request of each mode should get: anything else is counted as a miss. */
const EXPECTED_START: Record<SockMode, (start: string) => boolean> = {
  'sock-lean': (s) => s === 'lean',
  'sock-zygote': (s) => s.startsWith('zygote'),
  'sock-warm': (s) => s === 'warm',
};

interface Running {
  stack: WorkerStack;
  stateDir: string;
  url: string;
  /** One kept-alive connection per caller. */
  agents: http.Agent[];
}

export class SockPeers {
  /** Each mode's worker, or its start in progress (callers arriving together share it). */
  private readonly running = new Map<SockMode, Promise<Running>>();

  constructor(private readonly o: { dir: string; base: string; registry: string }) {}

  /** The mode's worker, with room for `callers` at once: started on first use, restarted bigger when a sweep's concurrency grows. */
  private async worker(mode: SockMode, callers: number): Promise<Running> {
    for (;;) {
      const pending = this.running.get(mode);
      const had = pending && (await pending);
      if (had && had.agents.length >= callers) return had;
      // Another caller replaced it while this one waited: look again.
      if (this.running.get(mode) !== pending) continue;
      const next = (async () => {
        if (had) await this.close(had);
        return this.start(mode, callers);
      })();
      this.running.set(mode, next);
      return next;
    }
  }

  private async start(mode: SockMode, callers: number): Promise<Running> {
    const stateDir = path.join(this.o.dir, mode);
    const stack = await startWorkerStack({
      backend: 'sock',
      stateDir,
      base: this.o.base,
      registry: this.o.registry,
      // Room for the sandboxes still being destroyed after their answers.
      capacity: 2 * callers,
      zygotes: mode === 'sock-zygote' ? { threshold: 1, budgetBytes: 2 ** 31, maxZygotes: 1 } : undefined,
      handlerCache: mode === 'sock-warm' ? { maxIdle: callers, budgetBytes: 2 ** 31 } : undefined,
      timeoutMs: 60_000,
      queueLimit: 4096,
    });
    const { port } = await stack.worker.listen(0, '127.0.0.1');
    const agents = Array.from({ length: callers }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    return { stack, stateDir, url: `http://127.0.0.1:${port}/run`, agents };
  }

  private async close(r: Running): Promise<void> {
    for (const a of r.agents) a.destroy();
    await r.stack.worker.close();
    fs.rmSync(r.stateDir, { recursive: true, force: true });
  }

  /**
   * One request of lambda by caller `caller` of `callers`, on its own connection: ms end to end,
   * and whether it started the way the mode is named for.
   */
  async request(
    mode: SockMode,
    caller: number,
    callers: number,
    lambda = 'noop',
  ): Promise<{ ms: number; asked: boolean; text: string }> {
    const r = await this.worker(mode, callers);
    const t0 = performance.now();
    const { status, headers, text } = await post(`${r.url}/${lambda}`, 'null', r.agents[caller]!);
    const ms = performance.now() - t0;
    if (status !== 200) throw new Error(`${mode}: the worker answered ${status}: ${text.slice(0, 300)}`);
    return { ms, asked: EXPECTED_START[mode](String(headers['x-sock-start'] ?? '')), text };
  }

  /** Waits until the sandboxes destroyed after their answers are gone, so they do not weigh on the next peer. */
  async settle(mode: SockMode, signal: AbortSignal): Promise<void> {
    const r = await this.running.get(mode);
    if (!r) return;
    const kept = () => Number(r.stack.handlerCache?.status().idle ?? 0);
    while (!signal.aborted && Number(r.stack.engine.status().alive) - kept() > 0)
      await new Promise((res) => setTimeout(res, 5));
  }

  async stop(): Promise<void> {
    const all = await Promise.allSettled(this.running.values());
    this.running.clear();
    for (const r of all) if (r.status === 'fulfilled') await this.close(r.value);
  }
}
