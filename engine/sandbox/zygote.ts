// A zygote as the engine sees it: a Python process in a lean container of its own that has
// imported a set of packages and forks handler instances (and child zygotes) on request. The
// fork protocol and why it is as it is are in engine/README.md; this side opens the
// new container's descriptors, sends them, and waits for the answer. A zygote runs the code of
// the packages it imported, so its channel is held to what a sandbox's is (channel.ts): a line
// too long, garbage, an answer to another fork or a line unasked makes the zygote gone, and it
// is destroyed. Which zygotes exist and which one serves a handler is the import cache's
// business (importCache.ts), not this file's.
import fs from 'node:fs';
import { openTree, watchExit } from '../../native/index.js';
import type { Channel, ChannelError } from './channel.js';
import type { Container } from './container.js';
import type { HandlerEntry } from './sandbox.js';

/** A fork takes about a millisecond; one that takes this long is a zygote stuck in something. */
const FORK_TIMEOUT_MS = 10_000;

/** What a zygote needs of the engine that made it (SockEngine), named here so neither imports the other. */
export interface ZygoteHost {
  readonly isolation: { userns: boolean };
  log(message: string): void;
  /** Gives the zygote's container back once its processes have ended. */
  releaseZygote(zygote: Zygote, container: Container): Promise<void>;
}

/** The zygote cannot fork any more (it died, or its socket closed): ask another one. */
export class ZygoteGoneError extends Error {}

export interface ZygoteMemory {
  /** Proportional set size: shared pages divided among the processes sharing them. */
  pssBytes: number;
  /** Unique set size: pages only this process maps. */
  ussBytes: number;
}

export class Zygote {
  readonly id: string;
  /** The package set it imported, sorted; the key names it ("" is the root). */
  readonly key: string;
  forks = 0;
  private alive = true;
  private reaperAlive: boolean;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly exitWatch: Promise<unknown>;
  private destroying: Promise<void> | undefined;

  constructor(
    private readonly container: Container,
    readonly packages: string[],
    /** The zygote's own pid, in the engine's PID namespace. */
    readonly pid: number,
    private readonly channel: Channel,
    /** Modules loaded once its imports were done. */
    readonly modules: number,
    readonly parent: Zygote | undefined,
    /** The root zygote's reaper (PID 1 of the namespace every fork lives under), our child. */
    private readonly reaper: number | undefined,
    private readonly engine: ZygoteHost,
  ) {
    this.id = container.id;
    this.reaperAlive = reaper !== undefined;
    this.key = packages.join('+');
    const died = watchExit(pid, { reap: false }).then(() => {
      this.alive = false;
    });
    // The root's container (shared with its reaper) is free only once the reaper has ended,
    // that is once every fork below it has; a child zygote's, once it has.
    this.exitWatch =
      reaper === undefined
        ? died
        : Promise.all([
            died,
            watchExit(reaper).then(() => {
              this.reaperAlive = false;
            }),
          ]);
    this.exitWatch.then(() => this.destroy()).catch(() => {});
    channel.onViolation((e, unasked) => this.violated(e, unasked));
  }

  get isAlive(): boolean {
    return this.alive;
  }

  /**
   * Forks a child into container c: a handler instance (which then dials c's socket) or a
   * zygote that imports `imports`. Requests to one zygote go one at a time.
   */
  fork(
    kind: 'handler' | 'zygote',
    c: Container,
    paths: string[],
    imports: string[] = [],
    entry?: HandlerEntry,
  ): Promise<void> {
    const next = this.queue.then(() => this.forkNow(kind, c, paths, imports, entry));
    this.queue = next.catch(() => {});
    return next;
  }

  private async forkNow(
    kind: 'handler' | 'zygote',
    c: Container,
    paths: string[],
    imports: string[],
    entry: HandlerEntry | undefined,
  ): Promise<void> {
    if (!this.alive) throw new ZygoteGoneError(`zygote ${this.describe()} has ended`);
    const fds: number[] = [];
    let reply: Promise<Record<string, unknown>>;
    try {
      // In its own user and mount namespaces a zygote gets a detached copy of the root's mounts:
      // `..` from a plain directory descriptor would climb the host's mount tree to its root.
      fds.push(
        this.engine.isolation.userns
          ? openTree(c.root)
          : fs.openSync(c.root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY),
      );
      for (const file of c.cgroup.procsFiles) fds.push(fs.openSync(file, fs.constants.O_WRONLY));
      // The container's id names the fork, and the answer must name it back; an error carries no id.
      reply = this.channel.request(
        { fork: kind, id: c.id, paths, imports, entry },
        (r) => forkAnswerProblem(r, c.id),
        fds,
      );
    } finally {
      for (const fd of fds) fs.closeSync(fd);
    }
    let timer: NodeJS.Timeout | undefined;
    const answer = await Promise.race([
      reply.catch((e: ChannelError) => {
        throw new ZygoteGoneError(`zygote ${this.describe()} ${e.message}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(
            new ZygoteGoneError(
              `zygote ${this.describe()} did not answer a fork within ${FORK_TIMEOUT_MS} ms; it was destroyed`,
            ),
          );
          // Its channel still waits on this fork, and a zygote stuck this long is not given the next: it goes now.
          this.destroy().catch(() => {});
        }, FORK_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (typeof answer.error === 'string') throw new Error(`zygote ${this.describe()} could not fork: ${answer.error}`);
    this.forks++;
  }

  /**
   * Its memory from /proc/<pid>/smaps_rollup, with its spare child's (forked ahead of the next
   * request, still in the zygote's cgroup): the two share most pages, and PSS splits those
   * between them. Zero once it has ended.
   */
  memory(): ZygoteMemory {
    const total = { pssBytes: 0, ussBytes: 0 };
    for (const pid of [this.pid, ...this.sparePids()]) {
      let text: string;
      try {
        text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      } catch {
        continue;
      }
      const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
      total.pssBytes += kb('Pss');
      total.ussBytes += kb('Private_Clean') + kb('Private_Dirty');
    }
    return total;
  }

  /** Children still in the zygote's own cgroup: its spare (its forks have moved to cgroups of their own). */
  private sparePids(): number[] {
    try {
      const own = fs.readFileSync(`/proc/${this.pid}/cgroup`, 'utf8');
      return fs
        .readFileSync(`/proc/${this.pid}/task/${this.pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number)
        .filter((pid) => {
          try {
            return fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8') === own;
          } catch {
            return false;
          }
        });
    } catch {
      return [];
    }
  }

  /** It broke the fork protocol: a fork outstanding fails (ZygoteGoneError, see forkNow), and it goes at once. */
  private violated(e: ChannelError, unasked: boolean): void {
    if (unasked) this.engine.log(`zygote ${this.describe()} ${e.message}; it was destroyed`);
    this.destroy().catch((err) => this.engine.log(`destroying zygote ${this.describe()}: ${(err as Error).message}`));
  }

  describe(): string {
    return `${this.id} (${this.key || 'root'})`;
  }

  /** Kills the zygote (the root: with its reaper, so every fork too) and gives back its container. */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      // Only a process not yet seen to end is signalled: an ended one's pid may be someone else's now.
      const targets = [this.alive ? this.pid : undefined, this.reaperAlive ? this.reaper : undefined];
      this.alive = false;
      this.channel.close();
      for (const pid of targets) {
        if (pid === undefined) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await this.engine.releaseZygote(this, this.container);
    })();
    return this.destroying;
  }
}

/** Why a message is not the zygote's answer to the fork of `id` (see runtime/zygote.py), or undefined if it is. */
function forkAnswerProblem(answer: Record<string, unknown>, id: string): string | undefined {
  if ('forked' in answer) return answer.forked === id ? undefined : 'answered another fork';
  if (typeof answer.error !== 'string') return 'answered a fork with neither "forked" nor "error"';
  return answer.id === id ? undefined : 'answered another fork';
}
