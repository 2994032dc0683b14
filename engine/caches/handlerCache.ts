// The handler cache: instances that have answered are kept, frozen (cgroup freezer: no CPU,
// memory kept), and thawed for the next request of the same lambda version, which then skips
// making a sandbox and loading the handler altogether. A layer around any backend.
//
// An instance is frozen only once it has been idle for `freezeAfterMs`: a request that comes
// sooner (a caller's next one, back to back) gets it as it is, with neither the freeze nor the
// thaw on its path (on cgroup v1 here each is a write of 0.05 to 2 ms, during which the worker's
// event loop waits). What the instance may do in that window is what it may do while it runs:
// its cgroup's limits hold; an instance idle in its read of the next request uses no CPU.
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
  /** Idle time before an instance is frozen [default FREEZE_AFTER_MS]; 0 freezes it at once. */
  freezeAfterMs?: number;
  log?: (line: string) => void;
}

/** Long enough for a caller's next request back to back, short next to a lambda's idle life. */
export const FREEZE_AFTER_MS = 50;

interface Idle {
  lambda: string;
  version: string;
  sandbox: Sandbox;
  /** Set until the instance is frozen: it fires the freeze. */
  timer?: NodeJS.Timeout;
  /** The freeze, once started. */
  frozen?: Promise<void>;
}

export class HandlerCache {
  /** Least recently used first. */
  private readonly idle: Idle[] = [];
  private readonly counts = { hits: 0, unfrozenHits: 0, misses: 0, evicted: 0, invalidated: 0 };
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
      this.discard(stale);
    }
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const e = this.idle[i]!;
      if (e.lambda !== lambda || e.version !== version) continue;
      this.idle.splice(i, 1);
      if (e.timer) {
        // Never frozen: it is as it was when it answered.
        clearTimeout(e.timer);
        this.counts.hits++;
        this.counts.unfrozenHits++;
        return { sandbox: e.sandbox, hit: true };
      }
      try {
        await e.frozen;
        await e.sandbox.unpause();
        this.counts.hits++;
        return { sandbox: e.sandbox, hit: true };
      } catch (err) {
        this.options.log?.(`${e.sandbox.id}: thawing failed (${(err as Error).message}); making a new one`);
        this.discard(e);
        break;
      }
    }
    this.counts.misses++;
    return { sandbox: await this.backend.create(spec), hit: false };
  }

  /** Keeps an instance that answered for its version's next request, to be frozen once it has been idle a while. */
  async release(lambda: string, version: string, sandbox: Sandbox): Promise<void> {
    if (this.closed || !sandbox.alive) return sandbox.destroy();
    const e: Idle = { lambda, version, sandbox };
    const freezeAfterMs = this.options.freezeAfterMs ?? FREEZE_AFTER_MS;
    if (freezeAfterMs > 0) {
      e.timer = setTimeout(() => this.freeze(e), freezeAfterMs);
      // A kept instance never holds the worker's process open: close() destroys it.
      e.timer.unref();
    } else {
      this.freeze(e);
      try {
        await e.frozen;
      } catch {
        return; // destroyed by freeze()
      }
    }
    this.idle.push(e);
    this.trim();
  }

  /** Starts the freeze; an instance that cannot be frozen is destroyed. */
  private freeze(e: Idle): void {
    e.timer = undefined;
    e.frozen = e.sandbox.pause().catch((err) => {
      this.options.log?.(`${e.sandbox.id}: freezing failed (${(err as Error).message}); destroying it`);
      if (this.idle.includes(e)) this.remove(e);
      this.discard(e);
      throw err;
    });
    // acquire() awaits it, and says what went wrong there; nobody else need hear of it.
    e.frozen.catch(() => {});
  }

  private trim(): void {
    this.forgetDestroyed();
    let bytes = this.idle.reduce((sum, e) => sum + e.sandbox.memoryBytes(), 0);
    while (this.idle.length > 0 && (this.idle.length > this.options.maxIdle || bytes > this.options.budgetBytes)) {
      const oldest = this.idle.shift()!;
      bytes -= oldest.sandbox.memoryBytes();
      this.counts.evicted++;
      this.discard(oldest);
    }
  }

  private forgetDestroyed(): void {
    for (const e of this.idle.filter((i) => !i.sandbox.alive)) this.remove(e);
  }

  private remove(e: Idle): void {
    clearTimeout(e.timer);
    e.timer = undefined;
    this.idle.splice(this.idle.indexOf(e), 1);
  }

  private discard(e: Idle): void {
    clearTimeout(e.timer);
    e.timer = undefined;
    e.sandbox.destroy().catch((err) => this.options.log?.(`${e.sandbox.id}: ${(err as Error).message}`));
  }

  status(): Record<string, unknown> {
    this.forgetDestroyed();
    return {
      maxIdle: this.options.maxIdle,
      budgetBytes: this.options.budgetBytes,
      idle: this.idle.length,
      unfrozen: this.idle.filter((e) => e.timer).length,
      freezeAfterMs: this.options.freezeAfterMs ?? FREEZE_AFTER_MS,
      idleBytes: this.idle.reduce((sum, e) => sum + e.sandbox.memoryBytes(), 0),
      ...this.counts,
    };
  }

  /** Destroys every kept instance; later releases destroy theirs. */
  async close(): Promise<void> {
    this.closed = true;
    const all = this.idle.splice(0);
    for (const e of all) clearTimeout(e.timer);
    await Promise.all(all.map((e) => e.sandbox.destroy().catch(() => {})));
  }
}
