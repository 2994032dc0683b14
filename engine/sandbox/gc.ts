// What a dead engine left under its state directory, of either backend: processes and pool
// cgroups (named for that directory), labelled Docker containers, mounts, sandbox directories
// and code snapshots. Refused while a live engine owns the directory.
import fs from 'node:fs';
import { CgroupPool } from '../cgroups/cgroupPool.js';
import { removeContainers } from './dockerEngine.js';
import { StateDir } from '../state/stateDir.js';

/** Removes the leftovers and gives up the directory; returns what it removed, a phrase each. */
export async function reclaimStateDir(dir: string): Promise<string[]> {
  const state = new StateDir(dir);
  if (!fs.existsSync(state.root)) return [];
  state.claim();
  try {
    const killed = await CgroupPool.reclaim(state.cgroupName, 5000);
    const containers = await removeContainers(state.root);
    const removed = state.reclaim();
    if (containers > 0) removed.unshift(`${containers} Docker containers`);
    if (killed > 0) removed.unshift(`${killed} processes in ${state.cgroupName}`);
    return removed;
  } finally {
    state.release();
  }
}
