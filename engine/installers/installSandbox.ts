// The sandbox the install cache runs its tools in: pip (an sdist's setup.py runs during both
// `pip download` and `pip install`, and with --installer pip the lambda's author picks the
// package), dpkg-deb and the base's python3 byte-compiling what they installed. Their input is
// hostile, so each tool runs
//
//   - as INSTALL_USER (not root, and not nobody, whom handlers run as), with no capabilities,
//     no_new_privs and the handlers' seccomp filter, in a session of its own (no terminal);
//   - in new PID, IPC, UTS and mount namespaces behind a reaper, PID 1, that stays root: when
//     the tool exits, when its install is aborted, and when the worker dies (even by SIGKILL:
//     the reaper has a parent-death signal a process of the install user cannot ptrace away),
//     the namespace ends, and with it every process setup.py started (a daemon included);
//   - in a new, empty network namespace, except a download (a user's index may be on localhost);
//   - chrooted in a root of read-only binds (the host's /usr and /etc for pip and dpkg-deb; the
//     base for python3) with a private /proc and /tmp, and writable only where this install
//     writes: another install, which runs as the same user, is out of sight.
//
// The mounts are made in the tool's own mount namespace and vanish with it: nothing is left
// mounted on the host, whatever happens to the worker.
import fs from 'node:fs';
import path from 'node:path';
import { constants, spawn, watchExit, type SpawnStep } from '../../native/index.js';
import { handlerFilter } from '../isolation/seccomp.js';
import { removeTree } from '../state/stateDir.js';

/**
 * The user and group every install tool runs as. Debian reserves 65000-65533 (no package or
 * adduser hands them out), so no account or file of the host has them; 65534 is nobody, the
 * handlers' user, and must not be shared: an install could then signal or ptrace a handler.
 */
export const INSTALL_USER = { uid: 65_000, gid: 65_000 } as const;

const { MS_BIND, MS_REC, MS_PRIVATE, MS_REMOUNT, MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC } = constants;
const NAMESPACES = constants.CLONE_NEWNS | constants.CLONE_NEWPID | constants.CLONE_NEWIPC | constants.CLONE_NEWUTS;

/** A host path seen at target inside the sandbox (a directory or a file). */
export interface Bind {
  source: string;
  target: string;
  writable?: boolean;
}

export interface ToolRun {
  argv: string[];
  env: string[];
  /** Keep the host's network namespace (a download); without it the tool gets a new, empty one. */
  network?: boolean;
  signal?: AbortSignal;
}

/** A sandboxed tool that did not exit with status 0; output is the end of what it wrote. */
export class ToolFailed extends Error {
  constructor(
    readonly output: string,
    how: string,
  ) {
    super(how);
    this.name = 'ToolFailed';
  }
}

/** How much of a tool's output is read back, from its end: what a hostile package prints is not read whole. */
const OUTPUT_TAIL_BYTES = 64 * 1024;

/** Merged-/usr hosts have these as links into usr/; older ones as directories, bound read-only. */
const TOP_LEVEL = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'];
const DEVICES = ['null', 'zero', 'full', 'random', 'urandom'];

const isHostDirectory = (d: string) => fs.lstatSync(`/${d}`, { throwIfNoEntry: false })?.isDirectory() ?? false;

/** systemd-resolved's /etc/resolv.conf is a link into /run, which the sandbox does not have: a download needs its target. */
function resolverOutsideEtc(): Bind[] {
  let target: string;
  try {
    target = fs.realpathSync('/etc/resolv.conf');
  } catch {
    return [];
  }
  return target.startsWith('/etc/') || target.startsWith('/usr/') ? [] : [{ source: target, target }];
}

/** Bound at target, with its remount: read-only unless writable, never set-id or devices. */
function bind(source: string, target: string, writable: boolean, recursive = false): SpawnStep[] {
  return [
    { op: 'mount', source, target, flags: MS_BIND | (recursive ? MS_REC : 0) },
    { op: 'mount', target, flags: MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (writable ? 0 : MS_RDONLY) },
  ];
}

/** Makes the place a bind of source goes: a directory, or an empty file for a file. */
function mountPoint(source: string, target: string): void {
  if (fs.statSync(source).isDirectory()) fs.mkdirSync(target, { recursive: true });
  else if (!fs.existsSync(target)) {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, '');
  }
}

/**
 * One install's directory under the state directory's install-work: root's, holding the
 * install user's work/ (seen as /work: downloads, HOME, TMPDIR), the roots its tools are
 * chrooted in and their logs. The tools reach none of it but work/.
 */
export class InstallWork {
  private runs = 0;
  private hostRoot: string | undefined;

  private constructor(readonly dir: string) {}

  /** A new <parent>/<label>-XXXXXX, with work/, work/home and work/tmp the install user's. */
  static create(parent: string, label: string): InstallWork {
    fs.mkdirSync(parent, { recursive: true });
    const w = new InstallWork(fs.mkdtempSync(path.join(parent, `${label}-`)));
    for (const d of [w.work, path.join(w.work, 'home'), path.join(w.work, 'tmp')]) {
      fs.mkdirSync(d, { mode: 0o700 });
      fs.chownSync(d, INSTALL_USER.uid, INSTALL_USER.gid);
    }
    return w;
  }

  /** The host path of what the tools see as /work. */
  get work(): string {
    return path.join(this.dir, 'work');
  }

  remove(): void {
    removeTree(this.dir);
  }

  /**
   * Runs a host tool (pip, dpkg-deb): the host's /usr and /etc read-only, /work, binds, a
   * private /proc, /tmp and /dev/shm, and /dev's null, zero, full, random and urandom; cwd
   * /work. Resolves with the end of its output (stdout and stderr).
   */
  onHost(run: ToolRun & { binds?: Bind[] }): Promise<string> {
    const root = this.makeHostRoot();
    const binds = [
      { source: this.work, target: '/work', writable: true },
      ...(run.binds ?? []),
      ...(run.network ? resolverOutsideEtc() : []),
    ];
    for (const b of binds) mountPoint(b.source, path.join(root, b.target));
    const at = (p: string) => path.join(root, p);
    return this.run(
      run,
      [
        ...bind('/usr', at('usr'), false, true),
        // Recursive: a container's /etc/resolv.conf and /etc/hosts are mounts of their own.
        ...bind('/etc', at('etc'), false, true),
        ...TOP_LEVEL.filter(isHostDirectory).flatMap((d) => bind(`/${d}`, at(d), false, true)),
        ...DEVICES.map((d): SpawnStep => ({
          op: 'mount',
          source: `/dev/${d}`,
          target: at(`dev/${d}`),
          flags: MS_BIND,
        })),
        { op: 'mount', source: 'proc', target: at('proc'), fstype: 'proc', flags: MS_NOSUID | MS_NODEV | MS_NOEXEC },
        {
          op: 'mount',
          source: 'sock-install-tmp',
          target: at('tmp'),
          fstype: 'tmpfs',
          flags: MS_NOSUID | MS_NODEV,
          data: 'mode=1777,size=256m',
        },
        {
          op: 'mount',
          source: 'sock-install-shm',
          target: at('dev/shm'),
          fstype: 'tmpfs',
          flags: MS_NOSUID | MS_NODEV,
          data: 'mode=1777,size=64m',
        },
        ...binds.flatMap((b) => bind(b.source, at(b.target), b.writable ?? false)),
      ],
      root,
      '/work',
    );
  }

  /**
   * Runs the base's own program (python3) on the base, read-only, with each package directory
   * at /packages/<name> (writable only when asked), as a sandbox sees them; cwd /.
   */
  inBase(base: string, packages: Record<string, string>, writable: boolean, run: ToolRun): Promise<string> {
    const dir = fs.mkdtempSync(path.join(this.dir, 'base-'));
    const top = path.join(dir, 'root');
    // The base is read-only: /packages/<name> are made in a directory of ours bound over its /packages.
    const mounted = path.join(dir, 'packages');
    fs.mkdirSync(top);
    fs.mkdirSync(mounted);
    for (const name of Object.keys(packages)) fs.mkdirSync(path.join(mounted, name));
    return this.run(
      run,
      [
        ...bind(base, top, false),
        ...bind(mounted, path.join(top, 'packages'), false),
        ...Object.entries(packages).flatMap(([name, source]) =>
          bind(source, path.join(top, 'packages', name), writable),
        ),
      ],
      top,
      '/',
    );
  }

  /** The skeleton the host tools are chrooted in: mount points and links, root's, made once per install. */
  private makeHostRoot(): string {
    if (this.hostRoot) return this.hostRoot;
    const root = path.join(this.dir, 'host-root');
    for (const d of ['usr', 'etc', 'proc', 'tmp', 'dev/shm']) fs.mkdirSync(path.join(root, d), { recursive: true });
    for (const d of TOP_LEVEL) {
      if (fs.lstatSync(`/${d}`, { throwIfNoEntry: false })?.isSymbolicLink())
        fs.symlinkSync(fs.readlinkSync(`/${d}`), path.join(root, d));
      else if (isHostDirectory(d)) fs.mkdirSync(path.join(root, d));
    }
    for (const d of DEVICES) fs.writeFileSync(path.join(root, 'dev', d), '');
    fs.symlinkSync('/proc/self/fd', path.join(root, 'dev/fd'));
    ['stdin', 'stdout', 'stderr'].forEach((name, fd) =>
      fs.symlinkSync(`/proc/self/fd/${fd}`, path.join(root, 'dev', name)),
    );
    this.hostRoot = root;
    return root;
  }

  /**
   * Spawns the tool: output to a log of ours, every mount private to its namespace, mounts,
   * chroot, the reaper, then the install user. Kills it (the reaper, and so the namespace) on
   * abort. Rejects with the abort's reason, or ToolFailed.
   */
  private async run(run: ToolRun, mounts: SpawnStep[], root: string, cwd: string): Promise<string> {
    run.signal?.throwIfAborted();
    const log = path.join(this.dir, `tool-${++this.runs}.log`);
    const pid = spawn({
      cloneFlags: NAMESPACES | (run.network ? 0 : constants.CLONE_NEWNET),
      steps: [
        { op: 'redirect', path: log },
        // On a host whose / is shared (systemd's default), the mounts below would reach the host.
        { op: 'mount', target: '/', flags: MS_REC | MS_PRIVATE },
        ...mounts,
        { op: 'sethostname', name: 'sock-install' },
        { op: 'chroot', path: root },
        { op: 'chdir', path: cwd },
        { op: 'setsid' },
        { op: 'reaper' },
        { op: 'dropPrivileges', ...INSTALL_USER },
        { op: 'seccomp', filter: handlerFilter() },
        { op: 'exec', argv: run.argv, env: run.env },
      ],
    });
    const kill = () => process.kill(pid, 'SIGKILL');
    run.signal?.addEventListener('abort', kill, { once: true });
    try {
      // Not reaped until the listener is gone: a kill on abort can only reach our own zombie.
      await watchExit(pid, { reap: false });
    } finally {
      run.signal?.removeEventListener('abort', kill);
    }
    // Our zombie now: reaping it gives its status at once.
    const { exitCode, signal } = await watchExit(pid);
    run.signal?.throwIfAborted();
    const output = tail(log);
    // The reaper exits 128 + N when signal N killed the tool; a signal of its own is the sandbox's end (the OOM killer's, say).
    if (exitCode !== 0)
      throw new ToolFailed(
        output,
        exitCode === null ? `its sandbox was killed by signal ${signal}` : `exited with status ${exitCode}`,
      );
    return output;
  }
}

/** The last OUTPUT_TAIL_BYTES of file, from a line's start; '' if the tool died before making it. */
function tail(file: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fs.fstatSync(fd).size;
    const start = Math.max(0, size - OUTPUT_TAIL_BYTES);
    const buffer = Buffer.alloc(size - start);
    fs.readSync(fd, buffer, 0, buffer.length, start);
    const text = buffer.toString('utf8');
    return start === 0 ? text : text.slice(text.indexOf('\n') + 1);
  } finally {
    fs.closeSync(fd);
  }
}

/** Lets the install user write in dir (made by root): the one directory a tool installs into. */
export function giveToInstallUser(dir: string): void {
  fs.chownSync(dir, INSTALL_USER.uid, INSTALL_USER.gid);
}

/**
 * Makes everything under dir root's (lchown: links are not followed), with no write access
 * for group or others and no set-id bits: once installed, a package cannot be changed by a
 * later install, which runs as the same install user, nor by a host user.
 */
export function makeRootOwned(dir: string): void {
  const st = fs.lstatSync(dir);
  if (st.uid !== 0 || st.gid !== 0) fs.lchownSync(dir, 0, 0);
  if (!st.isSymbolicLink() && (st.mode & 0o6022) !== 0) fs.chmodSync(dir, st.mode & 0o7777 & ~0o6022);
  if (st.isDirectory()) for (const entry of fs.readdirSync(dir)) makeRootOwned(path.join(dir, entry));
}

/**
 * Throws a one-line error unless the install user can read path (a directory: list and enter
 * it, and read each file in it): pip runs as that user, and would only say it found nothing.
 */
export function requireReadableByInstallUser(what: string, p: string): void {
  const check = (file: string, st: fs.Stats, need: number) => {
    const bits = st.uid === INSTALL_USER.uid ? st.mode >> 6 : st.gid === INSTALL_USER.gid ? st.mode >> 3 : st.mode;
    if ((bits & need) !== need) {
      throw new Error(
        `${what} ${file} is not readable by the install user (uid ${INSTALL_USER.uid}), which runs pip: mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} (chmod o+rX)`,
      );
    }
  };
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new Error(`${what} ${p} does not exist`);
  }
  if (!st.isDirectory()) return check(p, st, 4);
  check(p, st, 5);
  for (const entry of fs.readdirSync(p, { withFileTypes: true })) {
    if (entry.isFile()) check(path.join(p, entry.name), fs.statSync(path.join(p, entry.name)), 4);
  }
}
