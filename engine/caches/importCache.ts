// The import cache: a layer around the SOCK engine that starts handlers as forks of zygotes
// that have already imported their packages (the paper's generalized zygotes, section 4.3).
//
// - Tree: the root zygote has imported nothing; a zygote for {A,B} is forked from the zygote
//   with the largest subset of {A,B} there is (the root, {A}, ...), and imports only the rest.
// - Selection: a handler is forked from the zygote whose packages are the largest subset of
//   its own. Never from one that imported a package the handler did not ask for: package code
//   runs at import, so a zygote carries whatever its packages did into every fork.
// - Policy: a package set gets a zygote once `threshold` sandboxes have asked for exactly that
//   set. The zygotes' memory (sum of PSS: pages shared between zygotes, and with their forks,
//   counted once in all) is kept under a budget by evicting the zygotes whose sets were asked
//   for least per byte they hold.
// - Failure: a zygote that has ended is dropped and made again when its set is next asked for
//   (the root at once); a request whose zygote vanished is forked from another, and when none
//   is left, started lean. A package set whose imports fail in a zygote gets no zygote again.
import type { BackendStatus, Sandbox, SandboxBackend, SandboxSpec } from '../sandbox/sandbox.js';
import type { SockEngine } from '../sandbox/sockEngine.js';
import { type Zygote, ZygoteGoneError } from '../sandbox/zygote.js';

export interface ImportCacheOptions {
  /** A package set gets a zygote once this many sandboxes have asked for exactly it. */
  threshold: number;
  /** The most memory (sum of PSS) the zygotes may hold. */
  budgetBytes: number;
  /** The most zygotes besides the root: each holds a cgroup of the engine's reserve. */
  maxZygotes: number;
  /** The modules to import for an installed package, by its name. */
  importsOf: (packageName: string) => string[];
  log?: (line: string) => void;
}

export class ImportCache implements SandboxBackend {
  readonly name = 'sock';
  private root: Zygote | undefined;
  private rootStarting: Promise<Zygote> | undefined;
  private readonly zygotes = new Map<string, Zygote>();
  private readonly starting = new Map<string, Promise<Zygote | undefined>>();
  /** Sandboxes asked for, per package set. */
  private readonly wanted = new Map<string, number>();
  private readonly unusable = new Set<string>();
  private readonly counts = { forked: 0, lean: 0, zygotesMade: 0, evicted: 0, lost: 0, failedImports: 0 };

  private constructor(
    private readonly engine: SockEngine,
    private readonly options: ImportCacheOptions,
  ) {}

  /** The cache with its root zygote running. */
  static async start(engine: SockEngine, options: ImportCacheOptions): Promise<ImportCache> {
    const cache = new ImportCache(engine, options);
    await cache.rootZygote();
    return cache;
  }

  get capacity(): number {
    return this.engine.capacity;
  }

  async create(spec: SandboxSpec): Promise<Sandbox> {
    // Outbound network is given to a lean start, whose namespace the engine sets up before the
    // handler runs; a fork's is made inside its zygote's user namespace.
    if (spec.network === 'outbound') {
      this.counts.lean++;
      return this.engine.create(spec);
    }
    const names = Object.keys(spec.packages).sort();
    const key = names.join('+');
    this.wanted.set(key, (this.wanted.get(key) ?? 0) + 1);
    for (
      let zygote = await this.zygoteFor(key, spec.packages);
      zygote;
      zygote = await this.zygoteFor(key, spec.packages)
    ) {
      try {
        const sandbox = await this.engine.createFrom(zygote, spec);
        this.counts.forked++;
        return sandbox;
      } catch (e) {
        if (!(e instanceof ZygoteGoneError)) throw e;
        this.options.log?.(`${e.message}; forking from another zygote`);
        this.drop(zygote);
      }
    }
    this.counts.lean++;
    return this.engine.create(spec);
  }

  /** The zygote to fork from, making the set's own one first when it has been asked for enough. */
  private async zygoteFor(key: string, packages: Record<string, string>): Promise<Zygote | undefined> {
    const best = await this.largestSubset(Object.keys(packages));
    if (!best || best.key === key || this.unusable.has(key) || (this.wanted.get(key) ?? 0) < this.options.threshold)
      return best;
    let making = this.starting.get(key);
    if (!making) {
      making = this.makeZygote(key, packages, best).finally(() => this.starting.delete(key));
      this.starting.set(key, making);
    }
    return (await making) ?? (await this.largestSubset(Object.keys(packages)));
  }

  /** The live zygote that imported the most of names and nothing else; the root if no other. */
  private async largestSubset(names: string[]): Promise<Zygote | undefined> {
    const asked = new Set(names);
    let best: Zygote | undefined;
    for (const z of this.zygotes.values()) {
      if (!z.isAlive) {
        this.drop(z);
        continue;
      }
      if (z.packages.every((p) => asked.has(p)) && (!best || z.packages.length > best.packages.length)) best = z;
    }
    return (
      best ??
      (await this.rootZygote().catch((e: Error) => {
        this.options.log?.(`the root zygote could not be started: ${e.message}`);
        return undefined;
      }))
    );
  }

  private async rootZygote(): Promise<Zygote> {
    if (this.root?.isAlive) return this.root;
    if (this.root) {
      this.counts.lost++;
      this.options.log?.(`the root zygote ${this.root.describe()} has ended; starting another`);
      this.root = undefined;
    }
    this.rootStarting ??= this.engine
      .startZygote({}, [])
      .then((z) => (this.root = z))
      .finally(() => (this.rootStarting = undefined));
    return this.rootStarting;
  }

  private async makeZygote(key: string, packages: Record<string, string>, parent: Zygote): Promise<Zygote | undefined> {
    if (this.zygotes.size >= this.options.maxZygotes && !this.evictOne(key)) return undefined;
    const imports = Object.keys(packages)
      .filter((p) => !parent.packages.includes(p))
      .flatMap((p) => this.options.importsOf(p));
    let zygote: Zygote;
    try {
      zygote = await this.engine.startZygote(packages, imports, parent);
    } catch (e) {
      if (e instanceof ZygoteGoneError) {
        this.drop(parent);
        return undefined;
      }
      // Its packages cannot be imported into a zygote (or the fork failed): their handlers start from a subset.
      this.unusable.add(key);
      this.counts.failedImports++;
      this.options.log?.(`no zygote for ${key}: ${(e as Error).message}`);
      return undefined;
    }
    this.zygotes.set(key, zygote);
    this.counts.zygotesMade++;
    this.keepToBudget();
    return zygote.isAlive ? zygote : undefined;
  }

  /**
   * Evicts the least valuable zygotes until the sum of their PSS fits the budget (the root
   * stays). The newest is one of the candidates: a set asked for less than those already held
   * does not displace them, and its request forks from a subset's zygote instead.
   */
  private keepToBudget(): void {
    while (this.memory().pssBytes > this.options.budgetBytes && this.evictOne()) {
      /* until it fits */
    }
  }

  /** Evicts the zygote asked for least per byte of PSS (never the one for `keep`); false if there is none. */
  private evictOne(keep?: string): boolean {
    let worst: { z: Zygote; value: number } | undefined;
    for (const z of this.zygotes.values()) {
      if (z.key === keep) continue;
      const value = (this.wanted.get(z.key) ?? 0) / Math.max(1, z.memory().pssBytes);
      if (!worst || value < worst.value) worst = { z, value };
    }
    if (!worst) return false;
    this.evict(worst.z);
    return true;
  }

  private evict(zygote: Zygote): void {
    this.zygotes.delete(zygote.key);
    this.counts.evicted++;
    this.options.log?.(`evicted zygote ${zygote.describe()} (import cache over its budget or size)`);
    zygote
      .destroy()
      .catch((e) => this.options.log?.(`destroying zygote ${zygote.describe()}: ${(e as Error).message}`));
  }

  /** Forgets a zygote that can no longer fork; its set gets a new one when next asked for. */
  private drop(zygote: Zygote): void {
    if (zygote === this.root) return; // rootZygote() replaces it
    if (this.zygotes.get(zygote.key) === zygote) {
      this.zygotes.delete(zygote.key);
      this.counts.lost++;
      zygote.destroy().catch(() => {});
    }
  }

  private memory(): { pssBytes: number; ussBytes: number } {
    const all = [...this.zygotes.values(), ...(this.root ? [this.root] : [])];
    return all
      .map((z) => z.memory())
      .reduce((a, m) => ({ pssBytes: a.pssBytes + m.pssBytes, ussBytes: a.ussBytes + m.ussBytes }), {
        pssBytes: 0,
        ussBytes: 0,
      });
  }

  status(): BackendStatus {
    const zygotes = [...(this.root ? [this.root] : []), ...this.zygotes.values()].map((z) => ({
      id: z.id,
      packages: z.key || '(root)',
      pid: z.pid,
      alive: z.isAlive,
      forks: z.forks,
      asked: this.wanted.get(z.key) ?? 0,
      modules: z.modules,
      ...z.memory(),
    }));
    return {
      ...this.engine.status(),
      importCache: {
        threshold: this.options.threshold,
        budgetBytes: this.options.budgetBytes,
        maxZygotes: this.options.maxZygotes,
        ...this.memory(),
        ...this.counts,
        zygotes,
      },
    };
  }

  shutdown(): Promise<void> {
    return this.engine.shutdown();
  }
}
