// A pool of pre-created cgroups, one per sandbox that can be alive at once. Making and removing
// a cgroup per sandbox costs mkdir/rmdir in every controller's tree and serializes on the
// cgroup mutex; taking a ready one costs a few writes (the cgroups study measures both). A
// cgroup comes back to the pool only once it holds no task and is thawed.
import fs from 'node:fs';
import path from 'node:path';
import { EngineSetupError } from '../errors.js';
import {
  findHierarchies,
  limitFiles,
  makeParents,
  removeCgroupTree,
  type Hierarchy,
  type Limits,
} from './cgroupHierarchy.js';
import { planDelegation } from './cgroupDelegation.js';

const POLL_MS = 2;
/** For this long a state change is polled between other work (setImmediate), not every POLL_MS: a v2 thaw is done in microseconds. */
const EAGER_POLL_MS = 1;

/** One pooled cgroup: a directory per controller tree (v1) or one directory (v2). */
export class PooledCgroup {
  /** v2: the directory, open, for a child to be born in it (clone3 with CLONE_INTO_CGROUP); closed by close(). */
  private dirFd: number | undefined;

  constructor(
    readonly hierarchy: Hierarchy,
    /** controller (v2: "unified") -> directory */
    readonly dirs: Record<string, string>,
  ) {}

  /**
   * v2: a descriptor of the cgroup's directory, for spawn's intoCgroup: the child is born here
   * and never migrated. v1 has no such thing (undefined): a child writes its pid to procsFiles.
   */
  get intoCgroupFd(): number | undefined {
    if (this.hierarchy.version !== 2) return undefined;
    this.dirFd ??= fs.openSync(this.dirs.unified!, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    return this.dirFd;
  }

  close(): void {
    if (this.dirFd !== undefined) fs.closeSync(this.dirFd);
    this.dirFd = undefined;
  }

  /** The cgroup.procs files a process writes "0" to, to enter this cgroup in every tree. */
  get procsFiles(): string[] {
    return Object.values(this.dirs).map((d) => path.join(d, 'cgroup.procs'));
  }

  private dir(controller: 'memory' | 'freezer' | 'pids'): string {
    return this.hierarchy.version === 2 ? this.dirs.unified! : this.dirs[controller]!;
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const f of this.procsFiles) {
      for (const line of fs.readFileSync(f, 'utf8').split('\n')) if (line) all.add(Number(line));
    }
    return [...all];
  }

  /** How many times the kernel's OOM killer has killed a task here since the cgroup was made. */
  oomKills(): number {
    const file = this.hierarchy.version === 2 ? 'memory.events' : 'memory.oom_control';
    const m = /^oom_kill (\d+)$/m.exec(fs.readFileSync(path.join(this.dir('memory'), file), 'utf8'));
    return m ? Number(m[1]) : 0;
  }

  memoryBytes(): number {
    const file = this.hierarchy.version === 2 ? 'memory.current' : 'memory.usage_in_bytes';
    return Number(fs.readFileSync(path.join(this.dir('memory'), file), 'utf8'));
  }

  setLimits(limits: Limits): void {
    for (const [controller, dir] of Object.entries(this.dirs)) {
      for (const { file, value } of limitFiles(this.hierarchy, controller, limits))
        fs.writeFileSync(path.join(dir, file), value);
    }
  }

  async freeze(timeoutMs: number): Promise<void> {
    await this.setFrozen(true, timeoutMs);
  }

  async thaw(timeoutMs: number): Promise<void> {
    await this.setFrozen(false, timeoutMs);
  }

  private async setFrozen(frozen: boolean, timeoutMs: number): Promise<void> {
    const dir = this.dir('freezer');
    // v1 passes through FREEZING while tasks stop; v2 reports completion in cgroup.events.
    const done =
      this.hierarchy.version === 2
        ? () => fs.readFileSync(path.join(dir, 'cgroup.events'), 'utf8').includes(`frozen ${frozen ? 1 : 0}`)
        : () => fs.readFileSync(path.join(dir, 'freezer.state'), 'utf8').trim() === (frozen ? 'FROZEN' : 'THAWED');
    if (this.hierarchy.version === 2) fs.writeFileSync(path.join(dir, 'cgroup.freeze'), frozen ? '1' : '0');
    else fs.writeFileSync(path.join(dir, 'freezer.state'), frozen ? 'FROZEN' : 'THAWED');
    await until(done, timeoutMs, `${frozen ? 'freezing' : 'thawing'} ${dir}`);
  }

  /**
   * How empty() kills. A cgroup about to be removed, on v2 (Linux 5.14 and later), gets one
   * write to cgroup.kill, which SIGKILLs every task, frozen ones and those forked meanwhile
   * included. A cgroup going back to the pool gets its tasks signalled one by one, as on v1
   * (a sandbox is a PID namespace, whose PID 1 dying kills the rest): once a cgroup has been
   * cgroup.kill'ed, every later child cloned into it with CLONE_INTO_CGROUP is SIGKILLed at
   * birth. cgroup_css_set_fork() records the kill sequence of the parent's cgroup, not the
   * target's, and cgroup_post_fork() compares it with the target's; seen here on Debian's
   * 6.1.0-50 and on 6.18.
   */
  killMethod(then: 'reuse' | 'remove'): 'cgroup.kill' | 'signals' {
    return then === 'remove' &&
      this.hierarchy.version === 2 &&
      fs.existsSync(path.join(this.dirs.unified!, 'cgroup.kill'))
      ? 'cgroup.kill'
      : 'signals';
  }

  /**
   * SIGKILLs every task and waits until none is left, the cgroup thawed; `then` says whether it
   * is to be reused or removed (see killMethod). v1 thaws first: a frozen v1 task does not die
   * until thawed; on v2 a fatal signal ends a frozen task.
   */
  async empty(timeoutMs: number, then: 'reuse' | 'remove'): Promise<void> {
    const byCgroupKill = this.killMethod(then) === 'cgroup.kill';
    if (this.hierarchy.version === 1 && this.dirs.freezer) await this.thaw(timeoutMs);
    const kill = byCgroupKill
      ? () => fs.writeFileSync(path.join(this.dirs.unified!, 'cgroup.kill'), '1')
      : () =>
          this.pids().forEach((pid) => {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              /* already gone */
            }
          });
    await until(
      () => {
        if (this.pids().length === 0) return true;
        kill();
        return false;
      },
      timeoutMs,
      `emptying ${Object.values(this.dirs)[0]}`,
    );
    if (this.hierarchy.version === 2) await this.thaw(timeoutMs);
  }
}

async function until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const started = performance.now();
  while (!done()) {
    const waited = performance.now() - started;
    if (waited > timeoutMs) throw new Error(`${what} did not finish in ${timeoutMs} ms`);
    await new Promise((r) => (waited < EAGER_POLL_MS ? setImmediate(r) : setTimeout(r, POLL_MS)));
  }
}

/** The hierarchy a sandbox gets its cgroup from: v1 where it has memory, pids and freezer, else v2 with memory and pids. */
export function chooseHierarchy(version?: 1 | 2): Hierarchy {
  const usable = findHierarchies().filter((h) =>
    h.version === 1
      ? ['memory', 'pids', 'freezer'].every((c) => h.controllers.includes(c))
      : ['memory', 'pids'].every((c) => h.controllers.includes(c)),
  );
  const chosen = version ? usable.find((h) => h.version === version) : usable[0];
  if (!chosen) {
    throw new EngineSetupError(
      version
        ? `no usable cgroup v${version} hierarchy here (it needs ${version === 1 ? 'memory, pids and freezer' : 'memory and pids'} controllers)`
        : 'no usable cgroup hierarchy: neither v1 with memory, pids and freezer nor v2 with memory and pids',
      3,
    );
  }
  return chosen;
}

/** A hierarchy with its root where this process's engine makes pools: on v2, the base delegation gives (read, not changed). */
function wherePoolsAre(h: Hierarchy): Hierarchy {
  if (h.version !== 2) return h;
  try {
    return { ...h, roots: { unified: planDelegation(h).base } };
  } catch {
    return h;
  }
}

export class CgroupPool {
  private readonly free: PooledCgroup[] = [];
  private readonly all: PooledCgroup[] = [];

  private constructor(
    readonly hierarchy: Hierarchy,
    readonly name: string,
  ) {}

  /** The parent cgroup `name` (in every tree) with `size` children ready. Leftovers of a crashed owner of that name must be reclaimed first. */
  static create(hierarchy: Hierarchy, name: string, size: number, limits: Limits): CgroupPool {
    const pool = new CgroupPool(hierarchy, name);
    const parents = makeParents(hierarchy, name);
    const keys = hierarchy.version === 2 ? ['unified'] : Object.keys(hierarchy.roots);
    for (let i = 0; i < size; i++) {
      const dirs: Record<string, string> = {};
      keys.forEach((k, j) => {
        dirs[k] = path.join(parents[j]!, `pool-${i}`);
        fs.mkdirSync(dirs[k]!);
      });
      const cg = new PooledCgroup(hierarchy, dirs);
      cg.setLimits(limits);
      pool.all.push(cg);
      pool.free.push(cg);
    }
    return pool;
  }

  /**
   * Kills whatever is left in the cgroups named `name` under every hierarchy and removes them.
   * Returns how many tasks it had to kill.
   */
  static async reclaim(name: string, timeoutMs: number): Promise<number> {
    let killed = 0;
    for (const h of findHierarchies().map(wherePoolsAre)) {
      const parents = Object.values(h.roots)
        .map((r) => path.join(r, name))
        .filter((p) => fs.existsSync(p));
      if (parents.length === 0) continue;
      const leaves = fs
        .readdirSync(parents[0]!, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
      for (const leaf of leaves) {
        const dirs: Record<string, string> = {};
        if (h.version === 2) dirs.unified = path.join(parents[0]!, leaf);
        else
          for (const [c, root] of Object.entries(h.roots))
            if (fs.existsSync(path.join(root, name, leaf))) dirs[c] = path.join(root, name, leaf);
        const cg = new PooledCgroup(h, dirs);
        killed += cg.pids().length;
        await cg.empty(timeoutMs, 'remove');
      }
      for (const p of parents) removeCgroupTree(p);
    }
    return killed;
  }

  get size(): number {
    return this.all.length;
  }

  get freeCount(): number {
    return this.free.length;
  }

  /** A clean cgroup; the caller must not take more than the pool's size at once. */
  take(): PooledCgroup {
    const cg = this.free.pop();
    if (!cg) throw new Error('cgroup pool exhausted: more sandboxes than the pool was made for');
    return cg;
  }

  /** Empties cg and puts it back; a cgroup that cannot be emptied is kept out of the pool. */
  async give(cg: PooledCgroup, timeoutMs: number): Promise<void> {
    await cg.empty(timeoutMs, 'reuse');
    this.free.push(cg);
  }

  /** Memory charged to the cgroups in use. */
  busyMemoryBytes(): number {
    return this.all.filter((cg) => !this.free.includes(cg)).reduce((sum, cg) => sum + cg.memoryBytes(), 0);
  }

  /** Empties and removes every cgroup of the pool. */
  async destroy(timeoutMs: number): Promise<void> {
    for (const cg of this.all) {
      await cg.empty(timeoutMs, 'remove');
      cg.close();
    }
    const parents = Object.values(this.hierarchy.roots).map((r) => path.join(r, this.name));
    for (const p of parents) if (fs.existsSync(p)) removeCgroupTree(p);
    this.free.length = 0;
    this.all.length = 0;
  }
}
