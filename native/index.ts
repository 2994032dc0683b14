// Typed front door of the native addon (built by node-gyp into build/Release on npm install).
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The namespaces the churn benchmark and spawn() know, by the names users type. */
export const NAMESPACES = ['cgroup', 'ipc', 'mnt', 'net', 'pid', 'uts'] as const;
export type Namespace = (typeof NAMESPACES)[number];

export interface Constants {
  CLONE_NEWCGROUP: number;
  CLONE_NEWIPC: number;
  CLONE_NEWNET: number;
  CLONE_NEWNS: number;
  CLONE_NEWPID: number;
  CLONE_NEWUTS: number;
  CLONE_NEWUSER: number;
  MS_RDONLY: number;
  MS_NOSUID: number;
  MS_NODEV: number;
  MS_NOEXEC: number;
  MS_REMOUNT: number;
  MS_BIND: number;
  MS_REC: number;
  MS_PRIVATE: number;
  MS_SLAVE: number;
  MNT_DETACH: number;
}

export interface ChurnOptions {
  /** CLONE_NEW* bits; see namespaceFlags(). */
  flags: number;
  /** Worker threads, each with one child in flight at a time. */
  concurrency: number;
  /** Give exactly one of durationSeconds and ops. */
  durationSeconds?: number;
  ops?: number;
  /** Child calls unshare(flags) after a plain clone, instead of being cloned into the namespaces. */
  useUnshare?: boolean;
  /** Then chroot(2) into this directory (and chdir to /), as a lean container does. */
  chroot?: string;
  /** A cgroup v2 directory the child is born in: clone3 with CLONE_INTO_CGROUP (x86_64). */
  intoCgroup?: string;
  /** cgroup.procs files the child writes "0" to, moving itself in, before anything else. */
  moveTo?: string[];
}

/** One call of a ScriptRun. Paths, values and sources may hold {t} (thread), {n} (operation number) and {p} (the thread's holder pid). */
export type ScriptStep =
  | { op: 'mkdir' | 'rmdir'; path: string }
  /** Fails with ENOTEMPTY unless the file reads empty (e.g. a pooled cgroup's cgroup.procs). */
  | { op: 'empty'; path: string }
  /** Makes path the calling thread's root (the thread first unshares CLONE_FS); unchroot goes back. */
  | { op: 'chroot'; path: string }
  | { op: 'unchroot' }
  /** Runs the program at path (output discarded, no shell) and waits; it must exit 0. */
  | { op: 'exec'; path: string; args: string[] }
  | { op: 'write'; path: string; value: string }
  | { op: 'mount'; path: string; source?: string; fstype?: string; flags: number; data?: string }
  | { op: 'umount'; path: string; flags?: number };

export interface ScriptOptions {
  concurrency: number;
  durationSeconds?: number;
  ops?: number;
  /** Run once by each thread before the clock starts (e.g. its own directories). */
  prepare?: ScriptStep[];
  /** Every operation runs the phases in order; each phase is timed on its own. */
  phases: { name: string; steps: ScriptStep[] }[];
  /** Run once by each thread at the end, whatever happened; errors ignored. */
  cleanup?: ScriptStep[];
  /** Each thread keeps a child that only waits (killed at the end); {p} is its pid. */
  holder?: boolean;
}

export interface ScriptResult {
  ops: number;
  seconds: number;
  /** phase name -> per-operation latency in microseconds */
  phases: Record<string, Float64Array>;
  stopped: boolean;
}

export interface ScriptRun {
  start(): Promise<ScriptResult>;
  stop(): void;
}

export interface ChurnResult {
  ops: number;
  seconds: number;
  latenciesUs: Float64Array;
  /** True when stop() ended the run early. */
  stopped: boolean;
}

export interface ChurnRun {
  start(): Promise<ChurnResult>;
  stop(): void;
}

export type SpawnStep =
  | { op: 'unshare'; flags: number }
  /** Joins the namespace at path, or the one a descriptor of the parent's (e.g. from makeNetns) refers to. */
  | { op: 'setns'; path: string; flags?: number }
  | { op: 'setns'; fd: number; flags?: number }
  | { op: 'mount'; source?: string; target: string; fstype?: string; flags: number; data?: string }
  | { op: 'chroot'; path: string }
  | { op: 'chdir'; path: string }
  /**
   * Makes path, a mount point of the child's own mount namespace, its root (pivot_root) and
   * detaches the old root: no way back out, even with CAP_SYS_CHROOT. Ends in the new "/".
   */
  | { op: 'pivotRoot'; path: string }
  /** A new session with no controlling terminal: nothing it runs can reach the worker's terminal. */
  | { op: 'setsid' }
  | { op: 'sethostname'; name: string }
  /** open(path, O_WRONLY), write value, close: e.g. "0" to a cgroup.procs file to join that cgroup. Fails as 'open' or 'write'. */
  | { op: 'write'; path: string; value: string }
  /** stdout and stderr append to path (created 0600), stdin reads /dev/null. A host path: put it before chroot. */
  | { op: 'redirect'; path: string }
  /**
   * No supplementary groups, then these ids (real, effective, saved), capabilities kept: in a
   * new user namespace, to become its uid 0 (and so the unprivileged host uid mapped to it).
   */
  | { op: 'setIds'; uid: number; gid: number }
  /**
   * For good: no supplementary groups, gid then uid set (real, effective, saved), every
   * capability set and the bounding set emptied, no_new_privs. Later steps run unprivileged.
   */
  | { op: 'dropPrivileges'; uid: number; gid: number }
  /**
   * Stays root but keeps only these capabilities (numbers, see CAPABILITIES), in the bounding
   * set too; nothing inheritable or ambient; no_new_privs.
   */
  | { op: 'keepCapabilities'; keep: number[] }
  /**
   * Sets no_new_privs and installs this seccomp filter (seccompFilter()'s bytes, copied before
   * the clone): every later step, exec included, and the program run under it. Fails as 'prctl'
   * or 'seccomp'.
   */
  | { op: 'seccomp'; filter: Buffer }
  /**
   * Forks: the process stays behind with its credentials and no descriptors, reaps every
   * child it gets, and exits with the status of the child that carries on with the next
   * steps (128 + N if signal N killed it); that child dies with it. As PID 1 of a new PID
   * namespace, ahead of a dropPrivileges, no process of the dropped uid can ptrace or signal
   * it, and its end kills the whole namespace. spawn() then returns the reaper's pid.
   */
  | { op: 'reaper' }
  /** execve; the program gets fds 0-2 only. */
  | { op: 'exec'; argv: string[]; env?: string[] }
  | { op: 'hold' };

export interface SpawnOptions {
  /** Namespaces the child is born in (clone flags). */
  cloneFlags?: number;
  steps: SpawnStep[];
  /** SIGKILL the child when the process that spawned it dies (default true). */
  dieWithParent?: boolean;
  /**
   * Born in a new user namespace too (owning the other new namespaces), with these
   * /proc/<pid>/uid_map and gid_map contents, written by the parent before the first step.
   */
  userns?: { uidMap: string; gidMap: string };
  /**
   * A descriptor of a cgroup v2 directory: the child is born in that cgroup (clone3 with
   * CLONE_INTO_CGROUP) and never migrated, where a `write` of "0" to cgroup.procs moves it.
   */
  intoCgroup?: number;
}

export interface ExitResult {
  /** Set when the child exited normally. */
  exitCode: number | null;
  /** Set when a signal killed the child. */
  signal: number | null;
}

/** A regular file of a lambda, as lambdaFiles() found it (fstat of the descriptor it read). */
export interface LambdaFile {
  /** Relative to the lambda's directory, '/'-separated. */
  path: string;
  /** Permission bits, setuid/setgid/sticky included. */
  mode: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  /** With { contents: true }: the bytes read from that descriptor. */
  contents?: Buffer;
}

/** One comparison on a system call's argument; all of a rule's must hold. `&==` compares (argument & mask) with value. */
export interface SeccompCondition {
  index: number;
  op: '==' | '!=' | '<' | '<=' | '>' | '>=' | '&==';
  value: number | bigint;
  mask?: number | bigint;
}

/** A rule: the named calls are allowed, or refused with errno, when every condition holds (always, with none). */
export interface SeccompRule {
  names: string[];
  errno?: number;
  args?: SeccompCondition[];
}

export interface SeccompSpec {
  /** What every call no rule allows gets, calls through a foreign ABI (i386, x32) included. */
  defaultErrno: number;
  rules: SeccompRule[];
}

/** An Error from a failed syscall, as the addon throws it. */
export interface SyscallError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

interface Addon {
  ChurnRun: new (options: ChurnOptions) => ChurnRun;
  ScriptRun: new (options: ScriptOptions) => ScriptRun;
  spawn(options: SpawnOptions): number;
  /**
   * Resolves when our child pid exits, and reaps it. Waits in one native epoll thread, not in
   * libuv's pool, so any number can be pending; holds the event loop open only while some are.
   * Rejects with a SyscallError: 'pidfd_open' (ESRCH: no such pid), 'waitid' (ECHILD: not our child).
   * With reap: false it only waits for pid's exit (any process's, not only a child's) and
   * resolves with both fields null: the status goes to the parent.
   */
  watchExit(pid: number, options?: { reap?: boolean }): Promise<ExitResult>;
  /** One sendmsg of data with fds attached (SCM_RIGHTS) on a connected Unix socket's fd. */
  sendFds(socketFd: number, data: Buffer, fds: number[]): void;
  /** Who connected to this Unix socket, with the pid as our PID namespace sees it. */
  peerCred(socketFd: number): { pid: number; uid: number; gid: number };
  mount(source: string | null, target: string, fstype: string | null, flags: number, data?: string | null): void;
  umount2(target: string, flags?: number): void;
  /** umount2 on a libuv pool thread: the RCU grace period an unmount waits for is not the event loop's. */
  umount2Async(target: string, flags?: number): Promise<void>;
  /** A detached, recursive copy of the mount tree at path (open_tree OPEN_TREE_CLONE), close-on-exec. */
  openTree(path: string): number;
  /** count new network namespaces with loopback up, as close-on-exec descriptors, made on a pool thread. */
  makeNetns(count: number): Promise<number[]>;
  /** Times every BPF program run until the returned fd is closed (BPF_ENABLE_STATS). */
  enableBpfStats(): number;
  /**
   * The regular files of registry/name, walked without following any link or crossing a mount
   * (openat with O_NOFOLLOW from the lambda's directory down), sorted by path; names in skip are
   * left out at every level. null when registry/name is not a directory; { refused } (one line
   * naming the entry) for a symbolic link (the lambda's directory included), a special file, a
   * mount point, or a file the directory's owner could not read (a hard link to another's file).
   */
  lambdaFiles(
    registry: string,
    name: string,
    options: { contents: boolean; skip: readonly string[] },
  ): { files: LambdaFile[] } | { refused: string } | null;
  /**
   * Compiles spec with libseccomp for this machine's architecture into the BPF program
   * SECCOMP_SET_MODE_FILTER takes: struct sock_filter, 8 bytes each. Throws naming the call for
   * an unknown system call, one of another architecture, or two actions for one call.
   */
  seccompFilter(spec: SeccompSpec): Buffer;
  constants: Constants;
}

const here = path.dirname(fileURLToPath(import.meta.url));
// Compiled to dist/native/index.js; the addon lives at the package root's build/.
const root = path.resolve(here, here.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');
const addon = createRequire(import.meta.url)(path.join(root, 'build/Release/sockbench_native.node')) as Addon;

export const {
  ChurnRun,
  ScriptRun,
  spawn,
  watchExit,
  sendFds,
  peerCred,
  mount,
  umount2,
  umount2Async,
  openTree,
  makeNetns,
  enableBpfStats,
  lambdaFiles,
  seccompFilter,
  constants,
} = addon;

/** Capability numbers (linux/capability.h) the engine names. */
export const CAPABILITIES = {
  CHOWN: 0,
  DAC_OVERRIDE: 1,
  KILL: 5,
  SETGID: 6,
  SETUID: 7,
  SETPCAP: 8,
  NET_ADMIN: 12,
  SYS_CHROOT: 18,
  SYS_ADMIN: 21,
} as const;

const FLAG_OF: Record<Namespace, keyof Constants> = {
  cgroup: 'CLONE_NEWCGROUP',
  ipc: 'CLONE_NEWIPC',
  mnt: 'CLONE_NEWNS',
  net: 'CLONE_NEWNET',
  pid: 'CLONE_NEWPID',
  uts: 'CLONE_NEWUTS',
};

export function namespaceFlags(namespaces: readonly Namespace[]): number {
  return namespaces.reduce((flags, ns) => flags | constants[FLAG_OF[ns]], 0);
}
