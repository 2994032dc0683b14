// A throwaway root laid out as a sandbox sees packages (the base read-only, each package at
// /packages/<name>), for the installers to run the base's own python3 over what they installed.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { constants, mount, umount2 } from '../../native/index.js';
import { mountsUnder } from '../mountinfo.js';
import { removeTree } from '../stateDir.js';

const run = promisify(execFile);
const { MS_BIND, MS_REMOUNT, MS_RDONLY, MS_NOSUID, MS_NODEV, MS_PRIVATE, MNT_DETACH } = constants;

/** What python3 gets in the root: nothing of the caller's environment leaks in. */
export const ROOT_ENV = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', HOME: '/tmp' };

/** Binds source at target, private (nothing propagates to the host's peers), read-only unless writable. */
function bind(source: string, target: string, options: { writable?: boolean; devices?: boolean } = {}): void {
  mount(source, target, null, MS_BIND);
  mount(null, target, null, MS_PRIVATE);
  mount(null, target, null, MS_BIND | MS_REMOUNT | MS_NOSUID | (options.devices ? 0 : MS_NODEV) | (options.writable ? 0 : MS_RDONLY));
}

function detachAll(dir: string): void {
  for (const m of mountsUnder(dir)) {
    try {
      umount2(m, MNT_DETACH);
    } catch (e) {
      // Gone with a parent detached before it.
      if ((e as { code?: string }).code !== 'EINVAL' && (e as { code?: string }).code !== 'ENOENT') throw e;
    }
  }
}

/**
 * Runs fn(root) with a root made under workDir: the base read-only, a tmpfs on /packages, and
 * each package directory bound at /packages/<name> (writable only when asked). Whatever fn
 * does, everything is unmounted and the directory removed afterwards.
 */
export async function withPackageRoot<T>(base: string, workDir: string, packages: Record<string, string>, writable: boolean, fn: (root: string) => Promise<T>): Promise<T> {
  fs.mkdirSync(workDir, { recursive: true });
  const dir = fs.mkdtempSync(path.join(workDir, 'root-'));
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  try {
    bind(base, root, { devices: true });
    const mounted = path.join(root, 'packages');
    mount('sock-packages', mounted, 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=0755,size=1m');
    mount(null, mounted, null, MS_PRIVATE);
    for (const [name, source] of Object.entries(packages)) {
      fs.mkdirSync(path.join(mounted, name));
      bind(source, path.join(mounted, name), { writable });
    }
    return await fn(root);
  } finally {
    detachAll(dir);
    removeTree(dir);
  }
}

/**
 * Byte-compiles <dir>/python with the base's python3, through /packages/<name>/python: the .pyc
 * files then carry the sandbox interpreter's magic number (the host's python may differ) and the
 * paths a sandbox's tracebacks should show, and a sandbox (whose package directories are
 * read-only) never compiles them again on import. A file that does not compile is left without
 * its .pyc, as pip does: it fails only if imported.
 */
export async function byteCompile(base: string, workDir: string, name: string, dir: string, signal?: AbortSignal): Promise<void> {
  await withPackageRoot(base, workDir, { [name]: dir }, true, async (root) => {
    try {
      await run('/usr/sbin/chroot', [root, '/usr/bin/python3', '-c', 'import compileall, sys; compileall.compile_dir(sys.argv[1], quiet=2)', `/packages/${name}/python/`], { env: ROOT_ENV, signal });
    } catch (e) {
      if (signal?.aborted) throw e;
      const last = String((e as { stderr?: string }).stderr ?? '').trim().split('\n').pop();
      throw new Error(`byte-compiling ${name} with the base's python3 failed: ${last || (e as Error).message}`);
    }
  });
}
