// The engine's state directory (default /var/lib/sockbench): the base root file system, the
// sandboxes' stitched roots and scratch, snapshots of handler code, and an owner file naming
// the live engine. One engine owns a state directory at a time; whoever claims it next removes
// what a crashed owner left there, and touches nothing outside it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { constants, mount, umount2 } from '../../native/index.js';
import { EngineSetupError } from '../errors.js';
import { mountsUnder } from './mountinfo.js';
import { isAlive, selfIdentity } from './processIdentity.js';

export const DEFAULT_STATE_DIR = '/var/lib/sockbench';

export class StateDir {
  readonly root: string;
  /** A private mount: sandbox mounts made below it propagate neither out nor in. */
  readonly sandboxes: string;
  readonly code: string;
  /** Links to each package set's shared libraries, made once per set (stitch.ts). */
  readonly libraries: string;
  /** Installs' temporary files, and the roots they byte-compile in (mounts). */
  readonly installWork: string;
  /** The minimal /dev bound into every root (devices.ts), made anew by each engine. */
  readonly dev: string;
  private readonly ownerFile: string;

  constructor(dir: string) {
    this.root = path.resolve(dir);
    this.sandboxes = path.join(this.root, 'sandboxes');
    this.code = path.join(this.root, 'code');
    this.libraries = path.join(this.root, 'libraries');
    this.installWork = path.join(this.root, 'install-work');
    this.dev = path.join(this.root, 'dev');
    this.ownerFile = path.join(this.root, 'owner');
  }

  /** Default place of the base root file system. */
  get defaultBase(): string {
    return path.join(this.root, 'base');
  }

  /** Where a running worker says how to reach it. */
  get workerFile(): string {
    return path.join(this.root, 'worker.json');
  }

  /** The name of this state directory's cgroups under each hierarchy root: unique to it, so a claim removes only its own. */
  get cgroupName(): string {
    return `sockbench-sock-${crypto.createHash('sha256').update(this.root).digest('hex').slice(0, 12)}`;
  }

  /** The identity ("pid-starttime") of the live engine that owns it, if any. */
  liveOwner(): string | undefined {
    try {
      const owner = fs.readFileSync(this.ownerFile, 'utf8').trim();
      return isAlive(owner) ? owner : undefined;
    } catch {
      return undefined;
    }
  }

  /** Makes this process the owner, or throws naming the live one. */
  claim(): void {
    fs.mkdirSync(this.root, { recursive: true });
    for (;;) {
      try {
        fs.writeFileSync(this.ownerFile, selfIdentity(), { flag: 'wx' });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const owner = this.liveOwner();
      if (owner)
        throw new EngineSetupError(
          `state directory ${this.root} is in use by a running engine (pid ${owner.split('-')[0]}); stop it or choose another --state-dir`,
        );
      fs.rmSync(this.ownerFile, { force: true });
    }
  }

  /**
   * Removes every mount, sandbox directory, code snapshot, library link and install's temporary file a previous owner left, then makes
   * the empty sandboxes directory a private mount. Returns what it removed, for the log.
   */
  reclaim(): string[] {
    const removed: string[] = [];
    for (const dir of [this.sandboxes, this.installWork]) {
      const mounts = mountsUnder(dir);
      for (const m of mounts) detach(m);
      if (mounts.length > 0) removed.push(`${mounts.length} mounts under ${dir}`);
    }
    for (const dir of [this.sandboxes, this.code, this.libraries, this.installWork, this.dev]) {
      const left = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
      if (left.length > 0) removed.push(`${left.length} entries in ${dir}`);
      removeTree(dir);
    }
    fs.rmSync(this.workerFile, { force: true });
    fs.mkdirSync(this.sandboxes, { recursive: true });
    fs.mkdirSync(this.code, { recursive: true });
    fs.mkdirSync(this.libraries, { recursive: true });
    mount(this.sandboxes, this.sandboxes, null, constants.MS_BIND);
    mount(null, this.sandboxes, null, constants.MS_PRIVATE);
    return removed;
  }

  /** Unmounts and removes the sandboxes, code snapshots, library links and install work, then gives up ownership. */
  release(): void {
    for (const dir of [this.sandboxes, this.installWork]) for (const m of mountsUnder(dir)) detach(m);
    removeTree(this.sandboxes);
    removeTree(this.code);
    removeTree(this.libraries);
    removeTree(this.installWork);
    removeTree(this.dev);
    fs.rmSync(this.workerFile, { force: true });
    fs.rmSync(this.ownerFile, { force: true });
  }
}

function detach(mountPoint: string): void {
  try {
    umount2(mountPoint, constants.MNT_DETACH);
  } catch (e) {
    // Already gone with a parent detached before it.
    if ((e as { code?: string }).code !== 'EINVAL' && (e as { code?: string }).code !== 'ENOENT') throw e;
  }
}

/** Deletes dir, refusing if anything is still mounted under it: rm must never walk into a bind of the base or the registry. */
export function removeTree(dir: string): void {
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`cannot remove ${dir}: ${left[0]} is still mounted`);
  fs.rmSync(dir, { recursive: true, force: true });
}
