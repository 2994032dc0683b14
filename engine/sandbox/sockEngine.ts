// SOCK's lean containers: a stitched root entered with chroot, new IPC, UTS and PID namespaces
// but no mount namespace (the paper's point: that is where the kernel serializes), a cgroup
// from a pool, and an unprivileged user without capabilities. Beyond the paper, every sandbox
// is a sandbox for strangers' code (see engine/README.md, "Isolation"): a session of its own
// with no terminal and a minimal /dev, a network namespace of its own from a pool of ready
// ones, and zygote trees in a user namespace of their own, pivoted into their root, so that
// package code imported by a zygote holds no power over the host.
import fs from 'node:fs';
import path from 'node:path';
import {
  CAPABILITIES,
  constants,
  spawn,
  watchExit,
  type ExitResult,
  type SpawnOptions,
  type SpawnStep,
} from '../../native/index.js';
import { requireBase } from './baseRootfs.js';
import { CgroupPool, chooseHierarchy, type PooledCgroup } from '../cgroups/cgroupPool.js';
import { delegate, release as releaseDelegation } from '../cgroups/cgroupDelegation.js';
import { DEFAULT_LIMITS, type Limits } from '../cgroups/cgroupHierarchy.js';
import { Channel, ChannelError, DEFAULT_MAX_REPLY_BYTES, lineBytesFor } from './channel.js';
import {
  deathErrorOf,
  packagePaths,
  requireReadable,
  compileRuntime,
  RUNTIME_DIR,
  runtimeCommand,
  RuntimeSandbox,
  SANDBOX_USER,
  sandboxEnv,
  waitAtMost,
} from './runtimeSandbox.js';
import { makeDevices } from '../isolation/devices.js';
import { EngineSetupError, SandboxError } from '../errors.js';
import { NetnsPool } from '../isolation/netnsPool.js';
import { Outbound } from '../isolation/outbound.js';
import type { BackendStatus, Sandbox, SandboxBackend, SandboxSpec } from './sandbox.js';
import { SandboxLedger } from './sandboxLedger.js';
import { removeTree, StateDir } from '../state/stateDir.js';
import type { Container } from './container.js';
import { Zygote, ZygoteGoneError, type ZygoteHost } from './zygote.js';
import { compileFilters, handlerFilter, handlerFilterHex, zygoteFilter } from '../isolation/seccomp.js';
import { stitchRoot, unstitch } from '../isolation/stitch.js';

const KILL_TIMEOUT_MS = 5000;

export interface SockEngineOptions {
  stateDir: string;
  /** Base root file system; default <stateDir>/base. */
  base?: string;
  /** Sandboxes busy at once: what the worker may ask for. */
  capacity: number;
  /** Pooled cgroups beyond capacity, for what the caches keep alive: zygotes and paused instances. */
  reserve?: number;
  limits?: Limits;
  cgroupVersion?: 1 | 2;
  /** Time a new sandbox has to load its handler and say ready. */
  startTimeoutMs?: number;
  /** Protections to turn off, for measuring what each costs (bench:isolation) and nothing else. */
  isolation?: Partial<Isolation>;
  /** The longest line a sandbox or zygote may send; past it, it is destroyed. */
  maxReplyBytes?: number;
  log?: (line: string) => void;
}

/** What a SOCK sandbox has beyond the paper's lean container; all on unless a benchmark says otherwise. */
export interface Isolation {
  /** A session of its own (no controlling terminal) and the minimal /dev (devices.ts). */
  terminal: boolean;
  /** A network namespace of its own with loopback only: lean sandboxes from a pool, zygote forks unshare ahead. */
  network: boolean;
  /** Zygote trees in a user namespace of their own, pivoted into their root, handed detached mount trees. */
  userns: boolean;
  /** Every sandbox under the handler filter of engine/isolation/seccomp/profile.json, every zygote under its zygote filter. */
  seccomp: boolean;
}

export const FULL_ISOLATION: Isolation = { terminal: true, network: true, userns: true, seccomp: true };

/**
 * The host uid (and gid) a zygote tree's uid 0 is mapped to: a zygote is root only in its own
 * user namespace, and acts on the host's files as this uid, which owns nothing there. The
 * sandbox user (nobody) is mapped to itself, so a zygote's forks run as the same host user as
 * lean sandboxes.
 */
const ZYGOTE_HOST_ID = 2_000_000_000;

/**
 * What to run in a new container: a process the engine spawns (its pid known at once, and what
 * else it started for it: outbound network), or a zygote's fork (the pid comes with its connection).
 */
type Starter = (container: Container) => Promise<{ pid: number; outbound?: Outbound } | { forked: true }>;

/**
 * The capabilities a zygote keeps, to put its forks in their containers: unshare, mount /proc
 * and attach roots, chroot, bring a new network namespace's loopback up, change ids, empty the
 * bounding set. With isolation, over its own user namespace's namespaces only.
 */
const ZYGOTE_CAPABILITIES = [
  CAPABILITIES.SYS_ADMIN,
  CAPABILITIES.SYS_CHROOT,
  CAPABILITIES.NET_ADMIN,
  CAPABILITIES.SETUID,
  CAPABILITIES.SETGID,
  CAPABILITIES.SETPCAP,
];

export class SockEngine implements SandboxBackend, ZygoteHost {
  readonly name = 'sock';
  readonly sandboxes = new SandboxLedger<SockSandbox>();
  readonly zygotes = new Set<Zygote>();

  private constructor(
    readonly state: StateDir,
    readonly base: string,
    readonly pool: CgroupPool,
    readonly limits: Limits,
    readonly capacity: number,
    private readonly startTimeoutMs: number,
    readonly isolation: Isolation,
    /** The minimal /dev bound into every root (isolation.terminal). */
    private readonly dev: string | undefined,
    /** Ready network namespaces for lean sandboxes (isolation.network). */
    readonly netns: NetnsPool | undefined,
    readonly maxReplyBytes: number,
    /** Where a sandbox or zygote destroyed for what it did while idle says why. */
    readonly log: (line: string) => void,
  ) {}

  /**
   * Claims the state directory, removes what a crashed engine left in it (mounts, sandbox
   * directories, processes and cgroups of this state directory's name), and fills the pool.
   */
  static async start(options: SockEngineOptions): Promise<SockEngine> {
    const log = options.log ?? (() => {});
    if (process.getuid?.() !== 0)
      throw new EngineSetupError('the SOCK engine must run as root (it mounts, chroots and makes cgroups)', 3);
    const state = new StateDir(options.stateDir);
    const base = path.resolve(options.base ?? state.defaultBase);
    requireBase(base);
    const chosen = chooseHierarchy(options.cgroupVersion);
    // v2: the pool goes under the root or, started in a cgroup of its own, beside the leaf it moves into.
    const hierarchy = chosen.version === 2 ? delegate(chosen) : chosen;
    try {
      state.claim();
    } catch (e) {
      if (hierarchy.version === 2) releaseDelegation();
      throw e;
    }
    try {
      const killed = await CgroupPool.reclaim(state.cgroupName, KILL_TIMEOUT_MS);
      const removed = state.reclaim();
      if (killed > 0) removed.unshift(`${killed} processes in ${state.cgroupName}`);
      if (removed.length > 0) log(`removed what a previous engine left: ${removed.join('; ')}`);
      if (!compileRuntime(base))
        log(
          "the runtime is not byte-compiled (this machine's python3 is not the base's, or engine/runtime is not writable): each lean start compiles it",
        );
      const limits = options.limits ?? DEFAULT_LIMITS;
      const isolation = { ...FULL_ISOLATION, ...options.isolation };
      // Compiled now, once: a broken profile stops the start, and no sandbox waits for it.
      if (isolation.seccomp) compileFilters();
      const dev = isolation.terminal ? makeDevices(state.dev) : undefined;
      const pool = CgroupPool.create(hierarchy, state.cgroupName, options.capacity + (options.reserve ?? 0), limits);
      let netns: NetnsPool | undefined;
      try {
        // Enough for a burst of lean starts without waiting; the pool refills in the background.
        netns = isolation.network ? await NetnsPool.create(Math.min(32, Math.max(4, options.capacity))) : undefined;
      } catch (e) {
        await pool.destroy(KILL_TIMEOUT_MS);
        throw e;
      }
      return new SockEngine(
        state,
        base,
        pool,
        limits,
        options.capacity,
        options.startTimeoutMs ?? 30_000,
        isolation,
        dev,
        netns,
        options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
        log,
      );
    } catch (e) {
      state.release();
      if (hierarchy.version === 2) releaseDelegation();
      throw e;
    }
  }

  /** A sandbox whose first process the engine spawns: the runtime, exec'd in the new container. */
  create(spec: SandboxSpec): Promise<Sandbox> {
    return this.make(spec, 'lean', async (c) => {
      const netns = await this.netns?.take();
      let outbound: Outbound | undefined;
      try {
        if (spec.network === 'outbound') {
          if (netns === undefined)
            throw new SandboxError(
              'sandbox',
              "outbound network is given through the sandbox's own network namespace, and this engine makes none",
            );
          outbound = await Outbound.start(netns);
        }
        return {
          pid: spawn(
            this.inContainer(
              c,
              { cloneFlags: NEW_NAMESPACES, netns, ...runtimeCommand(spec) },
              [mountProc(c)],
              [{ op: 'dropPrivileges', ...SANDBOX_USER }, ...this.filter(handlerFilter)],
            ),
          ),
          outbound,
        };
      } catch (e) {
        outbound?.stop();
        throw e;
      } finally {
        // The sandbox's first process holds the namespace now (or nothing does, and it is freed).
        if (netns !== undefined) fs.closeSync(netns);
      }
    });
  }

  /** A sandbox forked from a zygote that has imported some of spec's packages, and moved into a new container. */
  createFrom(zygote: Zygote, spec: SandboxSpec): Promise<Sandbox> {
    // A fork's network namespace is made in its zygote's user namespace, where slirp4netns is not
    // set up: outbound network comes with a lean start (the import cache sends such lambdas there).
    if (spec.network === 'outbound')
      return Promise.reject(
        new SandboxError('sandbox', 'outbound network is given to lean starts only, not to zygote forks'),
      );
    return this.make(spec, `zygote:${zygote.key || 'root'}`, async (c) => {
      await zygote.fork('handler', c, packagePaths(spec.packages), [], spec.entry);
      return { forked: true };
    });
  }

  /**
   * A zygote with packages imported: forked from parent (which has imported a subset of them)
   * into a container of its own, or, with no parent, the root zygote with its reaper, spawned.
   */
  async startZygote(packages: Record<string, string>, imports: string[], parent?: Zygote): Promise<Zygote> {
    const c = await this.prepare('zy', { code: '', packages }, this.isolation.userns ? ZYGOTE_HOST_ID : 0);
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new Error(`it did not say it was ready within ${this.startTimeoutMs} ms`)),
      this.startTimeoutMs,
    );
    const { listening, accepted } = Channel.listen(
      path.join(c.scratch, 'worker.sock'),
      abort.signal,
      lineBytesFor(this.maxReplyBytes),
    );
    let reaper: number | undefined;
    const fail = async (e: unknown): Promise<never> => {
      if (reaper !== undefined) process.kill(reaper, 'SIGKILL');
      // The start's failure is the error to report; what releasing left is secondary.
      await this.releaseContainer(c);
      const why = e instanceof ChannelError ? `it ${e.message}` : (e as Error).message;
      throw new SandboxError(
        'sandbox',
        `starting zygote ${c.id} (${Object.keys(packages).join('+') || 'root'}) failed: ${why}`,
      );
    };
    try {
      await listening;
      if (parent) await parent.fork('zygote', c, packagePaths(packages), imports);
      else reaper = spawn(this.rootZygoteSpawn(c, packages));
      const channel = await accepted;
      const hello = await channel.hello(abort.signal);
      // A line after the hello in the same read has broken the channel by now.
      if (channel.broken) throw channel.broken;
      if (hello.fatal) throw new Error(`${String(hello.type)}: ${String(hello.message)}`);
      if (hello.ready !== true || typeof hello.modules !== 'number')
        throw new Error(`its first message was ${JSON.stringify(hello).slice(0, 100)}, not its hello`);
      const zygote = new Zygote(
        c,
        Object.keys(packages).sort(),
        channel.peerPid(),
        channel,
        Number(hello.modules),
        parent,
        reaper,
        this,
      );
      this.zygotes.add(zygote);
      return zygote;
    } catch (e) {
      return fail(e);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The seccomp step with filter, unless this engine runs without one. */
  private filter(filter: () => Buffer): SpawnStep[] {
    return this.isolation.seccomp ? [{ op: 'seccomp', filter: filter() }] : [];
  }

  /** Gives back a zygote's container, once its processes (the reaper's whole namespace, for the root) have ended. */
  async releaseZygote(zygote: Zygote, container: Container): Promise<void> {
    this.zygotes.delete(zygote);
    const left = await this.releaseContainer(container);
    if (left.length > 0) throw new SandboxError('sandbox', `releasing zygote ${container.id} left ${left.join('; ')}`);
  }

  /**
   * The one way a container is given back: its cgroup emptied and returned to the pool, then its
   * root unstitched, with \`between\` run in between (a sandbox waits there for its first process
   * to be reaped). Every step is tried; what each failed to do is returned, for the caller to
   * raise or, where another error matters more, to drop.
   */
  async releaseContainer(c: Pick<Container, 'cgroup' | 'dir'>, between?: () => Promise<void>): Promise<string[]> {
    const left: string[] = [];
    try {
      // A frozen task dies only once thawed (cgroup v1): give() thaws and kills what is left.
      await this.pool.give(c.cgroup, KILL_TIMEOUT_MS);
    } catch (e) {
      left.push(`its cgroup: ${(e as Error).message}`);
    }
    await between?.();
    try {
      await unstitch(c.dir);
    } catch (e) {
      left.push(`its root: ${(e as Error).message}`);
    }
    return left;
  }

  /**
   * The root zygote's reaper: with isolation, born in a user namespace of its own (uid 0 there
   * is ZYGOTE_HOST_ID here) that owns its new mount, PID, IPC, UTS and network namespaces; it
   * joins its cgroup while still host root, makes its root the root of its mount namespace
   * (pivot_root, the old root detached), becomes the namespace's uid 0 and keeps only what it
   * needs to put forks in their containers, all of it over its own namespaces only.
   */
  private rootZygoteSpawn(c: Container, packages: Record<string, string>): SpawnOptions {
    // The zygote installs the handler filter in each handler it forks, on top of its own.
    const config = {
      tree: this.isolation.userns,
      netns: this.isolation.network,
      filter: this.isolation.seccomp ? handlerFilterHex() : '',
    };
    const run = {
      argv: ['/usr/bin/python3', '-B', '/sock/zygote.py', '/host/worker.sock', JSON.stringify(config)],
      env: sandboxEnv(packages),
    };
    const keep: SpawnStep[] = [{ op: 'keepCapabilities', keep: ZYGOTE_CAPABILITIES }, ...this.filter(zygoteFilter)];
    if (!this.isolation.userns)
      return this.inContainer(c, { cloneFlags: NEW_NAMESPACES, ...run }, [mountProc(c)], keep);
    const { MS_BIND, MS_REC, MS_PRIVATE } = constants;
    const ids = `0 ${ZYGOTE_HOST_ID} 1\n${SANDBOX_USER.uid} ${SANDBOX_USER.uid} 1\n`;
    return {
      cloneFlags: NEW_NAMESPACES | constants.CLONE_NEWNS | (this.isolation.network ? constants.CLONE_NEWNET : 0),
      userns: { uidMap: ids, gidMap: ids.replaceAll(String(SANDBOX_USER.uid), String(SANDBOX_USER.gid)) },
      intoCgroup: c.cgroup.intoCgroupFd,
      steps: [
        ...cgroupWrites(c),
        ...(this.isolation.terminal ? [{ op: 'setsid' as const }] : []),
        { op: 'redirect', path: path.join(c.scratch, 'runtime.log') },
        // Nothing of what follows may propagate back to the host's mounts.
        { op: 'mount', target: '/', flags: MS_REC | MS_PRIVATE },
        // A mount of this namespace's own to pivot into (the copies of the host's are locked).
        { op: 'mount', source: c.root, target: c.root, flags: MS_BIND | MS_REC },
        mountProc(c),
        { op: 'pivotRoot', path: c.root },
        { op: 'sethostname', name: c.id },
        { op: 'setIds', uid: 0, gid: 0 },
        ...keep,
        { op: 'exec', ...run },
      ],
    };
  }

  /** A cgroup from the pool and a stitched root, for a sandbox or a zygote; its runtime.log is logOwner's (who opens it). */
  private async prepare(prefix: string, spec: SandboxSpec, logOwner: number): Promise<Container> {
    const id = this.sandboxes.nextId(prefix);
    const cgroup = this.pool.take();
    const dir = path.join(this.state.sandboxes, id);
    try {
      const code = spec.code || path.join(dir, 'nothing');
      if (!spec.code) fs.mkdirSync(code, { recursive: true });
      const stitched = await stitchRoot(dir, {
        base: this.base,
        runtime: RUNTIME_DIR,
        code,
        packages: spec.packages,
        ...SANDBOX_USER,
        scratchBytes: this.limits.memoryBytes,
        libraryCache: this.state.libraries,
        dev: this.dev,
      });
      // The runtime's log, made here for whoever opens it: a lean sandbox's first process as root,
      // a zygote's fork as nobody, a child zygote as its tree's uid. None of them could create it
      // in scratch (nobody's, and a zygote is root without CAP_DAC_OVERRIDE over host files).
      const log = path.join(stitched.scratch, 'runtime.log');
      fs.writeFileSync(log, '', { mode: 0o600 });
      if (logOwner !== 0) fs.chownSync(log, logOwner, logOwner === SANDBOX_USER.uid ? SANDBOX_USER.gid : logOwner);
      return { id, cgroup, dir, root: stitched.root, scratch: stitched.scratch };
    } catch (e) {
      this.sandboxes.failed();
      await this.pool.give(cgroup, KILL_TIMEOUT_MS);
      removeTree(dir);
      throw new SandboxError('sandbox', `stitching the root of ${id} failed: ${(e as Error).message}`);
    }
  }

  private async make(spec: SandboxSpec, origin: string, start: Starter): Promise<Sandbox> {
    requireReadable(spec);
    const t0 = performance.now();
    const c = await this.prepare('sb', spec, SANDBOX_USER.uid);
    const t1 = performance.now();
    const abort = new AbortController();
    const { listening, accepted } = Channel.listen(
      path.join(c.scratch, 'worker.sock'),
      abort.signal,
      lineBytesFor(this.maxReplyBytes),
    );
    let started;
    try {
      await listening;
      started = await start(c);
    } catch (e) {
      abort.abort();
      this.sandboxes.failed();
      await this.releaseContainer(c);
      if (e instanceof ZygoteGoneError) throw e;
      throw new SandboxError('sandbox', `starting ${c.id} failed: ${(e as Error).message}`);
    }
    const t2 = performance.now();
    const pid = 'pid' in started ? started.pid : accepted.then((channel) => channel.peerPid());
    const sandbox = new SockSandbox(
      c,
      pid,
      'pid' in started,
      this,
      'outbound' in started ? started.outbound : undefined,
    );
    sandbox.origin = origin;
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
      cgroupParent: path.join(Object.values(this.pool.hierarchy.roots)[0]!, this.pool.name),
      // v2: a lean sandbox's first process and a root zygote are born in their cgroup (no migration).
      cgroupEntry: this.pool.hierarchy.version === 2 ? 'clone3 CLONE_INTO_CGROUP' : 'cgroup.procs write',
      pool: { size: this.pool.size, free: this.pool.freeCount },
      limits: this.limits,
      isolation: this.isolation,
      networkNamespaces: this.netns?.status() ?? 'off',
      maxReplyBytes: this.maxReplyBytes,
      stateDir: this.state.root,
      base: this.base,
    };
  }

  async shutdown(): Promise<void> {
    await this.sandboxes.close();
    await Promise.all([...this.zygotes].map((z) => z.destroy().catch(() => {})));
    await this.netns?.close();
    await this.pool.destroy(KILL_TIMEOUT_MS);
    if (this.pool.hierarchy.version === 2) releaseDelegation();
    this.state.release();
  }

  /**
   * A container's first process: born in new IPC, UTS and PID namespaces (it is PID 1 there), it
   * joins its cgroup before anything else so all it allocates is charged there, leaves the
   * worker's session, joins its network namespace, runs the steps that need the host's view (a
   * /proc of its own namespace), chroots, gives up what it must (steps after chroot) and execs.
   * Unprivileged, without CAP_SYS_CHROOT, chroot cannot be escaped.
   */
  private inContainer(
    c: Container,
    run: { cloneFlags: number; netns?: number; argv: string[]; env: string[] },
    beforeChroot: SpawnStep[],
    afterChroot: SpawnStep[],
  ): SpawnOptions {
    return {
      cloneFlags: run.cloneFlags,
      intoCgroup: c.cgroup.intoCgroupFd,
      steps: [
        ...cgroupWrites(c),
        ...(this.isolation.terminal ? [{ op: 'setsid' as const }] : []),
        ...(run.netns !== undefined ? [{ op: 'setns' as const, fd: run.netns, flags: constants.CLONE_NEWNET }] : []),
        { op: 'redirect', path: path.join(c.scratch, 'runtime.log') },
        ...beforeChroot,
        { op: 'sethostname', name: c.id },
        { op: 'chroot', path: c.root },
        { op: 'chdir', path: '/' },
        ...afterChroot,
        { op: 'exec', argv: run.argv, env: run.env },
      ],
    };
  }
}

const NEW_NAMESPACES = constants.CLONE_NEWIPC | constants.CLONE_NEWUTS | constants.CLONE_NEWPID;

/**
 * How a spawned first process enters its cgroup before it allocates anything: on v2 it is born
 * there (spawn's intoCgroup: clone3 with CLONE_INTO_CGROUP, no migration) and needs no step; on
 * v1 its first steps write it into each controller's cgroup.procs.
 */
function cgroupWrites(c: Container): SpawnStep[] {
  if (c.cgroup.intoCgroupFd !== undefined) return [];
  return c.cgroup.procsFiles.map((file) => ({ op: 'write' as const, path: file, value: '0' }));
}

/** A /proc that shows the first process's own PID namespace, mounted by it (before chroot: the host's path). */
const mountProc = (c: Container): SpawnStep => ({
  op: 'mount',
  source: 'proc',
  target: path.join(c.root, 'proc'),
  fstype: 'proc',
  flags: constants.MS_NOSUID | constants.MS_NODEV | constants.MS_NOEXEC,
});

class SockSandbox extends RuntimeSandbox {
  private pid: number | undefined;
  private exitStatus: ExitResult | undefined;
  private readonly exitWatch: Promise<ExitResult | undefined>;
  private readonly oomKillsBefore: number;
  private readonly cgroup: PooledCgroup;
  private readonly dir: string;
  protected readonly scratch: string;

  /** pid: known at once for a spawned first process (our child, reaped here); for a zygote's fork, learned from its connection. */
  constructor(
    c: Container,
    pid: number | Promise<number>,
    ourChild: boolean,
    private readonly engine: SockEngine,
    private readonly outbound?: Outbound,
  ) {
    super(c.id, engine.log, engine.maxReplyBytes);
    this.cgroup = c.cgroup;
    this.dir = c.dir;
    this.scratch = c.scratch;
    this.oomKillsBefore = c.cgroup.oomKills();
    this.exitWatch = Promise.resolve(pid).then(
      (p) => {
        this.pid = p;
        return watchExit(p, { reap: ourChild }).then((status) => (this.exitStatus = status));
      },
      () => undefined, // it never connected: ready() says why
    );
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
    if (this.pid !== undefined && !this.exitStatus) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        /* exited on its own meanwhile */
      }
    }
    const errors = await this.engine.releaseContainer({ cgroup: this.cgroup, dir: this.dir }, async () => {
      if (this.pid !== undefined) await waitAtMost(this.exitWatch, KILL_TIMEOUT_MS);
      this.outbound?.stop();
    });
    this.engine.sandboxes.forget(this);
    if (errors.length > 0) throw new SandboxError('sandbox', `destroying ${this.id} left ${errors.join('; ')}`);
  }

  protected async deathError(when: string): Promise<SandboxError> {
    const status = this.exitStatus;
    const how =
      !status || (status.signal === null && status.exitCode === null)
        ? 'ended'
        : status.signal !== null
          ? `was killed by signal ${status.signal}`
          : `exited with status ${status.exitCode}`;
    return deathErrorOf(when, {
      oom: this.cgroup.oomKills() > this.oomKillsBefore,
      how,
      memoryBytes: this.engine.limits.memoryBytes,
      scratch: this.scratch,
    });
  }
}
