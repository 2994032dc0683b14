// SOCK's lean containers: a stitched root entered with chroot, new IPC, UTS and PID namespaces
// but no network or mount namespace (the paper's point: those two are where the kernel
// serializes), a cgroup from a pool, and an unprivileged user without capabilities.
import path from 'node:path';
import { constants, spawn, watchExit, type ExitResult } from '../native/index.js';
import { requireBase } from './baseRootfs.js';
import { CgroupPool, chooseHierarchy, type PooledCgroup } from './cgroupPool.js';
import { DEFAULT_LIMITS, type Limits } from './cgroupHierarchy.js';
import { Channel } from './channel.js';
import { deathErrorOf, requireReadable, RUNTIME_DIR, runtimeCommand, RuntimeSandbox, SANDBOX_USER, waitAtMost } from './runtimeSandbox.js';
import { EngineSetupError, SandboxError } from './errors.js';
import type { BackendStatus, Sandbox, SandboxBackend, SandboxSpec } from './sandbox.js';
import { SandboxLedger } from './sandboxLedger.js';
import { StateDir } from './stateDir.js';
import { stitchRoot, unstitch } from './stitch.js';

const KILL_TIMEOUT_MS = 5000;

export interface SockEngineOptions {
  stateDir: string;
  /** Base root file system; default <stateDir>/base. */
  base?: string;
  /** Sandboxes alive at once: the cgroup pool's size. */
  capacity: number;
  limits?: Limits;
  cgroupVersion?: 1 | 2;
  /** Time a new sandbox has to load its handler and say ready. */
  startTimeoutMs?: number;
  log?: (line: string) => void;
}

export class SockEngine implements SandboxBackend {
  readonly name = 'sock';
  readonly sandboxes = new SandboxLedger<SockSandbox>();

  private constructor(
    readonly state: StateDir,
    readonly base: string,
    readonly pool: CgroupPool,
    readonly limits: Limits,
    private readonly startTimeoutMs: number,
  ) {}

  /**
   * Claims the state directory, removes what a crashed engine left in it (mounts, sandbox
   * directories, processes and cgroups of this state directory's name), and fills the pool.
   */
  static async start(options: SockEngineOptions): Promise<SockEngine> {
    const log = options.log ?? (() => {});
    if (process.getuid?.() !== 0) throw new EngineSetupError('the SOCK engine must run as root (it mounts, chroots and makes cgroups)', 3);
    const state = new StateDir(options.stateDir);
    const base = path.resolve(options.base ?? state.defaultBase);
    requireBase(base);
    const hierarchy = chooseHierarchy(options.cgroupVersion);
    state.claim();
    try {
      const killed = await CgroupPool.reclaim(state.cgroupName, KILL_TIMEOUT_MS);
      const removed = state.reclaim();
      if (killed > 0) removed.unshift(`${killed} processes in ${state.cgroupName}`);
      if (removed.length > 0) log(`removed what a previous engine left: ${removed.join('; ')}`);
      const limits = options.limits ?? DEFAULT_LIMITS;
      const pool = CgroupPool.create(hierarchy, state.cgroupName, options.capacity, limits);
      return new SockEngine(state, base, pool, limits, options.startTimeoutMs ?? 30_000);
    } catch (e) {
      state.release();
      throw e;
    }
  }

  get capacity(): number {
    return this.pool.size;
  }

  async create(spec: SandboxSpec): Promise<Sandbox> {
    requireReadable(spec.code);
    const id = this.sandboxes.nextId('sb');
    const t0 = performance.now();
    const cgroup = this.pool.take();
    const dir = path.join(this.state.sandboxes, id);
    let stitched;
    try {
      stitched = stitchRoot(dir, { base: this.base, runtime: RUNTIME_DIR, code: spec.code, packages: spec.packages, ...SANDBOX_USER, scratchBytes: this.limits.memoryBytes });
    } catch (e) {
      this.sandboxes.failed();
      await this.pool.give(cgroup, KILL_TIMEOUT_MS);
      throw new SandboxError('sandbox', `stitching the root of ${id} failed: ${(e as Error).message}`);
    }
    const t1 = performance.now();
    const abort = new AbortController();
    const accepted = Channel.accept(path.join(stitched.scratch, 'worker.sock'), abort.signal);
    accepted.catch(() => {});
    let pid: number;
    try {
      pid = spawnSandbox(id, stitched.root, stitched.scratch, cgroup, spec);
    } catch (e) {
      abort.abort();
      this.sandboxes.failed();
      await this.pool.give(cgroup, KILL_TIMEOUT_MS);
      unstitch(dir);
      throw new SandboxError('sandbox', `starting ${id} failed: ${(e as Error).message}`);
    }
    const t2 = performance.now();
    const sandbox = new SockSandbox(id, pid, cgroup, dir, stitched.scratch, this);
    this.sandboxes.add(sandbox);
    await sandbox.becomeReady(accepted, abort, this.startTimeoutMs, t0, t1, t2);
    return sandbox;
  }

  status(): BackendStatus {
    return {
      backend: this.name,
      ...this.sandboxes.counts(),
      memoryBytes: this.pool.busyMemoryBytes(),
      cgroupVersion: this.pool.hierarchy.version,
      pool: { size: this.pool.size, free: this.pool.freeCount },
      limits: this.limits,
      stateDir: this.state.root,
      base: this.base,
    };
  }

  async shutdown(): Promise<void> {
    await this.sandboxes.close();
    await this.pool.destroy(KILL_TIMEOUT_MS);
    this.state.release();
  }
}

/**
 * The sandbox's first process: born in new IPC, UTS and PID namespaces (it is PID 1 there), it
 * joins its cgroup before anything else so all it allocates is charged there, mounts a /proc
 * that shows only its own namespace, chroots, drops to an unprivileged user with no capabilities
 * and no_new_privs (chroot cannot be escaped without CAP_SYS_CHROOT), and execs the runtime.
 */
function spawnSandbox(id: string, root: string, scratch: string, cgroup: PooledCgroup, spec: SandboxSpec): number {
  const c = constants;
  const runtime = runtimeCommand(spec);
  return spawn({
    cloneFlags: c.CLONE_NEWIPC | c.CLONE_NEWUTS | c.CLONE_NEWPID,
    steps: [
      ...cgroup.procsFiles.map((file) => ({ op: 'write' as const, path: file, value: '0' })),
      { op: 'redirect', path: path.join(scratch, 'runtime.log') },
      { op: 'mount', source: 'proc', target: path.join(root, 'proc'), fstype: 'proc', flags: c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC },
      { op: 'sethostname', name: id },
      { op: 'chroot', path: root },
      { op: 'chdir', path: '/' },
      { op: 'dropPrivileges', ...SANDBOX_USER },
      { op: 'exec', argv: runtime.argv, env: runtime.env },
    ],
  });
}

class SockSandbox extends RuntimeSandbox {
  private exitStatus: ExitResult | undefined;
  private readonly exitWatch: Promise<ExitResult>;
  private readonly oomKillsBefore: number;

  constructor(
    id: string,
    private readonly pid: number,
    private readonly cgroup: PooledCgroup,
    private readonly dir: string,
    private readonly scratch: string,
    private readonly engine: SockEngine,
  ) {
    super(id);
    this.oomKillsBefore = cgroup.oomKills();
    this.exitWatch = watchExit(pid).then((status) => (this.exitStatus = status));
  }

  protected get exited(): Promise<unknown> {
    return this.exitWatch;
  }

  protected hasExited(): boolean {
    return this.exitStatus !== undefined;
  }

  pause(): Promise<void> {
    return this.cgroup.freeze(KILL_TIMEOUT_MS);
  }

  unpause(): Promise<void> {
    return this.cgroup.thaw(KILL_TIMEOUT_MS);
  }

  memoryBytes(): number {
    return this.cgroup.memoryBytes();
  }

  protected async teardown(): Promise<void> {
    // Killing PID 1 of its namespace kills every process in it; until it is reaped its pid cannot be reused.
    if (!this.exitStatus) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch { /* exited on its own meanwhile */ }
    }
    const errors: string[] = [];
    try {
      // A frozen task dies only once thawed (cgroup v1): give() thaws and kills what is left.
      await this.engine.pool.give(this.cgroup, KILL_TIMEOUT_MS);
    } catch (e) {
      errors.push(`its cgroup: ${(e as Error).message}`);
    }
    await waitAtMost(this.exitWatch, KILL_TIMEOUT_MS);
    try {
      unstitch(this.dir);
    } catch (e) {
      errors.push(`its root: ${(e as Error).message}`);
    }
    this.engine.sandboxes.forget(this);
    if (errors.length > 0) throw new SandboxError('sandbox', `destroying ${this.id} left ${errors.join('; ')}`);
  }

  protected async deathError(when: string): Promise<SandboxError> {
    const status = this.exitStatus;
    const how = !status ? 'ended' : status.signal !== null ? `was killed by signal ${status.signal}` : `exited with status ${status.exitCode}`;
    return deathErrorOf(when, { oom: this.cgroup.oomKills() > this.oomKillsBefore, how, memoryBytes: this.engine.limits.memoryBytes, scratch: this.scratch });
  }

}
