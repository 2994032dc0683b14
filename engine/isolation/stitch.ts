// A sandbox's root: a directory made of bind mounts, and nothing copied.
//
//   <sandbox>/root            <- base root file system, read-only
//   <sandbox>/root/sock       <- the engine's Python runtime, read-only
//   <sandbox>/root/handler    <- the handler's code, read-only
//   <sandbox>/root/packages   <- <sandbox>/packages (read-only), and in it one read-only bind
//                                per package directory from the install cache
//   <sandbox>/root/packages/.lib <- a link to each shared library those packages brought (see
//                                installCache.ts), the one directory on LD_LIBRARY_PATH; made
//                                once per package set and bound read-only (a package set like
//                                Pillow's has dozens of libraries)
//   <sandbox>/root/host       <- <sandbox>/scratch, writable by the sandbox's user: the Unix socket
//   <sandbox>/root/tmp        <- <sandbox>/scratch/tmp, writable
//   <sandbox>/root/dev        <- the engine's minimal /dev (devices.ts), read-only; the base
//                                itself is mounted nodev, so no other device node works
//
// Scratch is a tmpfs of its own, so what a handler writes is memory charged to its cgroup
// (bounded by its memory limit) rather than disk shared with the host.
//   <sandbox>/root/proc       <- mounted by the sandbox's first process, from inside its PID namespace
//
// Every mount is made private, so nothing propagates from it to the host's peers or back.
// One lazy unmount of <sandbox>/root takes the whole tree away.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { constants, mount, umount2Async } from '../../native/index.js';
import { mountsUnder } from '../state/mountinfo.js';
import { removeTree } from '../state/stateDir.js';

export interface StitchSpec {
  base: string;
  runtime: string;
  code: string;
  /** package name -> directory of the installed package */
  packages: Record<string, string>;
  /** Owner of the writable scratch directory: the sandbox's unprivileged user. */
  uid: number;
  gid: number;
  /** Size of the scratch tmpfs. */
  scratchBytes: number;
  /** Where each package set's library links are kept (librarySet); needed when there are packages. */
  libraryCache: string;
  /** The minimal /dev to bind over the base's (devices.ts); without it the base's own /dev works, as before isolation (for measuring its cost only). */
  dev?: string;
}

export interface StitchedRoot {
  dir: string;
  root: string;
  scratch: string;
}

const { MS_BIND, MS_REMOUNT, MS_RDONLY, MS_NOSUID, MS_NODEV, MS_PRIVATE, MNT_DETACH } = constants;

/** Binds source at target, private, read-only unless writable; device nodes work only where asked (the minimal /dev). */
function bind(source: string, target: string, options: { writable?: boolean; devices?: boolean } = {}): void {
  mount(source, target, null, MS_BIND);
  mount(null, target, null, MS_PRIVATE);
  const flags =
    MS_BIND | MS_REMOUNT | MS_NOSUID | (options.devices ? 0 : MS_NODEV) | (options.writable ? 0 : MS_RDONLY);
  mount(null, target, null, flags);
}

/** Makes <dir>/root; on any failure unmounts what it made and removes dir. */
export async function stitchRoot(dir: string, spec: StitchSpec): Promise<StitchedRoot> {
  const root = path.join(dir, 'root');
  const scratch = path.join(dir, 'scratch');
  const packages = path.join(dir, 'packages');
  fs.mkdirSync(root, { recursive: true });
  fs.mkdirSync(packages);
  for (const name of Object.keys(spec.packages)) fs.mkdirSync(path.join(packages, name));
  // It exists even when empty: see linkLibraries.
  fs.mkdirSync(path.join(packages, '.lib'));
  try {
    makeScratch(dir, spec);
    bind(spec.base, root, { devices: spec.dev === undefined });
    if (spec.dev !== undefined) bind(spec.dev, path.join(root, 'dev'), { devices: true });
    bind(spec.runtime, path.join(root, 'sock'));
    bind(spec.code, path.join(root, 'handler'));
    bind(packages, path.join(root, 'packages'));
    for (const [name, source] of Object.entries(spec.packages)) bind(source, path.join(root, 'packages', name));
    if (Object.keys(spec.packages).length > 0)
      bind(librarySet(spec.libraryCache, spec.packages), path.join(root, 'packages', '.lib'));
    bind(scratch, path.join(root, 'host'), { writable: true });
    bind(path.join(scratch, 'tmp'), path.join(root, 'tmp'), { writable: true });
  } catch (e) {
    await unstitch(dir);
    throw e;
  }
  return { dir, root, scratch };
}

/**
 * One directory of links to every package's shared libraries, so the loader finds them with a
 * single, fixed LD_LIBRARY_PATH. It exists even when empty: the loader marks a missing search
 * directory as absent once and never looks again, and a zygote's fork that later chroots into
 * a root with more packages must still find theirs. The first package to bring a name wins.
 */
export function linkLibraries(dir: string, packages: Record<string, string>): void {
  fs.mkdirSync(dir);
  const taken = new Set<string>();
  for (const [name, source] of Object.entries(packages)) {
    let files: string[];
    try {
      files = fs.readdirSync(path.join(source, 'lib'));
    } catch {
      continue;
    }
    for (const file of files) {
      if (taken.has(file)) continue;
      taken.add(file);
      fs.symlinkSync(`/packages/${name}/lib/${file}`, path.join(dir, file));
    }
  }
}

/** <cache>/<hash of the package set>: its library links, made once (atomically) and shared by every root with that set. */
function librarySet(cache: string, packages: Record<string, string>): string {
  const key = crypto
    .createHash('sha256')
    .update(
      Object.entries(packages)
        .sort()
        .map(([name, dir]) => `${name}\0${dir}`)
        .join('\n'),
    )
    .digest('hex')
    .slice(0, 16);
  const dir = path.join(cache, key);
  if (fs.existsSync(dir)) return dir;
  const partial = `${dir}.partial-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  linkLibraries(partial, packages);
  try {
    fs.renameSync(partial, dir);
  } catch (e) {
    removeTree(partial);
    if (!fs.existsSync(dir)) throw e;
  }
  return dir;
}

/**
 * <dir>/scratch: a tmpfs owned by the sandbox's user, with tmp/ in it. What a handler writes
 * there is memory charged to its own cgroup. Every backend gives its sandboxes one.
 */
export function makeScratch(dir: string, owner: { uid: number; gid: number; scratchBytes: number }): string {
  const scratch = path.join(dir, 'scratch');
  fs.mkdirSync(scratch, { recursive: true });
  mount(
    'sock-scratch',
    scratch,
    'tmpfs',
    MS_NOSUID | MS_NODEV,
    `size=${owner.scratchBytes},mode=0755,uid=${owner.uid},gid=${owner.gid}`,
  );
  fs.mkdirSync(path.join(scratch, 'tmp'));
  fs.chownSync(path.join(scratch, 'tmp'), owner.uid, owner.gid);
  return scratch;
}

/**
 * Unmounts the root's whole tree (and the scratch tmpfs) and deletes the sandbox's directory.
 * Each unmount waits for an RCU grace period, 2 to 3 ms on the reference VM: it is made on a
 * libuv pool thread (umount2Async), so a caller's next request is not kept waiting behind the
 * last one's teardown.
 */
export async function unstitch(dir: string): Promise<void> {
  const root = path.join(dir, 'root');
  try {
    await umount2Async(root, MNT_DETACH);
  } catch (e) {
    if ((e as { code?: string }).code !== 'EINVAL' && (e as { code?: string }).code !== 'ENOENT') throw e;
  }
  // A mount stacked under the first (a failed stitch may leave one) goes the same way.
  for (const m of mountsUnder(dir)) await umount2Async(m, MNT_DETACH);
  removeTree(dir);
}
