// Scratch directories a run owns, named so that a later run can tell a crashed owner's leftovers
// (which it removes, mounts and all) from a live run's (which it leaves alone):
// /run/sockbench/<kind>-<pid>-<process start time>. The start time guards against a reused pid.
import fs from 'node:fs';
import path from 'node:path';
import { constants, mount, umount2 } from '../native/index.js';
import { mountsUnder } from '../engine/state/mountinfo.js';
import { isAlive, selfIdentity } from '../engine/state/processIdentity.js';

export const RUN_ROOT = '/run/sockbench';

/** This process's name for a thing of that kind it owns: "<kind>-<pid>-<start time>". */
export function ownerTag(kind: string): string {
  return `${kind}-${selfIdentity()}`;
}

/** Entries of dir named by ownerTag(kind) whose owning process is gone. */
export function orphansIn(dir: string, kind: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const pattern = new RegExp(`^${kind}-(\\d+)-(\\d+)$`);
  return names
    .filter((name) => {
      const m = pattern.exec(name);
      return m !== null && !isAlive(`${m[1]}-${m[2]}`);
    })
    .map((name) => path.join(dir, name));
}

/** Makes this process's directory of that kind (empty) and returns its path. */
export function ownedDir(kind: string): string {
  const dir = path.join(RUN_ROOT, ownerTag(kind));
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * This process's directory of that kind with a private tmpfs on it: what a study mounts inside
 * propagates neither to nor from the rest of the machine, and removeOwnedDir takes it all away.
 */
export function ownedTmpfs(kind: string, sizeMb = 64): string {
  const dir = ownedDir(kind);
  try {
    mount('sockbench', dir, 'tmpfs', constants.MS_NOSUID | constants.MS_NODEV, `mode=0755,size=${sizeMb}m`);
    mount(null, dir, null, constants.MS_PRIVATE);
  } catch (e) {
    removeOwnedDir(dir);
    throw e;
  }
  return dir;
}

/** Unmounts everything at or under dir, deepest first, then deletes it. */
export function removeOwnedDir(dir: string): void {
  for (const m of mountsUnder(dir)) {
    try {
      umount2(m, constants.MNT_DETACH);
    } catch (e) {
      // Gone with a parent detached before it, or stacked twice and already taken off.
      if ((e as { code?: string }).code !== 'EINVAL' && (e as { code?: string }).code !== 'ENOENT') throw e;
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Removes the directories of that kind whose owner is gone; returns what it removed. */
export function reclaimLeftovers(kind: string): string[] {
  const orphans = orphansIn(RUN_ROOT, kind);
  for (const dir of orphans) removeOwnedDir(dir);
  return orphans;
}
