// The handler cache: instances that have answered are kept, frozen (cgroup freezer: no CPU,
// memory kept), and thawed for the next request of the same lambda version, which then skips
// making a sandbox and loading the handler altogether. A layer around any backend.
//
// Instances are evicted oldest-idle first when more than `maxIdle` are kept or their memory
// passes the budget; a new version of a lambda makes its older instances useless at once. An
// instance the engine destroyed on its own (its runtime wrote to the worker unasked) is
// forgotten, never handed out.
import type { Sandbox, SandboxBackend, SandboxSpec } from '../sandbox/sandbox.js';

export interface HandlerCacheOptions {
  /** Idle instances kept at most (each holds a cgroup of the engine's reserve). */
  maxIdle: number;
  /** The most memory the idle instances may hold together (their cgroups' charge). */
  budgetBytes: number;
  log?: (line: string) => void;
}

interface Idle {
  lambda: string;
  version: string;
  sandbox: Sandbox;
}

export class HandlerCache {
  /** Least recently used first. */
  private readonly idle: Idle[] = [];
  private readonly counts = { hits: 0, misses: 0, evicted: 0, invalidated: 0 };
  private closed = false;

  constructor(
    private readonly backend: SandboxBackend,
    private readonly options: HandlerCacheOptions,
  ) {}

  /** A thawed instance of this lambda version if one is kept, else a new sandbox from the backend. */
  async acquire(lambda: string, version: string, spec: SandboxSpec): Promise<{ sandbox: Sandbox; hit: boolean }> {
    this.forgetDestroyed();
    for (const stale of this.idle.filter((e) => e.lambda === lambda && e.version !== version)) {
      this.remove(stale);
      this.counts.invalidated++;
      this.discard(stale.sandbox);
    }
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const e = this.idle[i]!;
      if (e.lambda !== lambda || e.version !== version) continue;
      this.idle.splice(i, 1);
      try {
        await e.sandbox.unpause();
        this.counts.hits++;
        return { sandbox: e.sandbox, hit: true };
      } catch (err) {
        this.options.log?.(`${e.sandbox.id}: thawing failed (${(err as Error).message}); making a new one`);
        this.discard(e.sandbox);
        break;
      }
    }
    this.counts.misses++;
    return { sandbox: await this.backend.create(spec), hit: false };
  }

  /** Freezes an instance that answered and keeps it for its version's next request. */
  async release(lambda: string, version: string, sandbox: Sandbox): Promise<void> {
    if (this.closed || !sandbox.alive) return sandbox.destroy();
    try {
      await sandbox.pause();
    } catch (e) {
      this.options.log?.(`${sandbox.id}: freezing failed (${(e as Error).message}); destroying it`);
      return sandbox.destroy();
    }
    this.idle.push({ lambda, version, sandbox });
    this.trim();
  }

  private trim(): void {
    this.forgetDestroyed();
    let bytes = this.idle.reduce((sum, e) => sum + e.sandbox.memoryBytes(), 0);
    while (this.idle.length > 0 && (this.idle.length > this.options.maxIdle || bytes > this.options.budgetBytes)) {
      const oldest = this.idle.shift()!;
      bytes -= oldest.sandbox.memoryBytes();
      this.counts.evicted++;
      this.discard(oldest.sandbox);
    }
  }

  private forgetDestroyed(): void {
    for (const e of this.idle.filter((i) => !i.sandbox.alive)) this.remove(e);
  }

  private remove(e: Idle): void {
    this.idle.splice(this.idle.indexOf(e), 1);
  }

  private discard(sandbox: Sandbox): void {
    sandbox.destroy().catch((e) => this.options.log?.(`${sandbox.id}: ${(e as Error).message}`));
  }

  status(): Record<string, unknown> {
    this.forgetDestroyed();
    return {
      maxIdle: this.options.maxIdle,
      budgetBytes: this.options.budgetBytes,
      idle: this.idle.length,
      idleBytes: this.idle.reduce((sum, e) => sum + e.sandbox.memoryBytes(), 0),
      ...this.counts,
    };
  }

  /** Destroys every kept instance; later releases destroy theirs. */
  async close(): Promise<void> {
    this.closed = true;
    const all = this.idle.splice(0);
    await Promise.all(all.map((e) => e.sandbox.destroy().catch(() => {})));
  }
}
