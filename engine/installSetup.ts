// The install cache a worker gets from `sock worker up`'s flags: Debian's python3-* packages
// (the default: the only registry this project's machines reach) or pip against the index or
// wheel directories given, installed under <state-dir>/packages with the state dir's base.
import path from 'node:path';
import { constants, umount2 } from '../native/index.js';
import { InstallCache } from './installCache.js';
import { DebianProvider } from './installers/debian.js';
import { PipProvider } from './installers/pip.js';
import { mountsUnder } from './mountinfo.js';
import { removeTree, StateDir } from './stateDir.js';

export interface InstallFlags {
  installer: 'debian' | 'pip';
  stateDir: string;
  base: string;
  pipIndexUrl?: string;
  pipFindLinks?: string[];
  log?: (line: string) => void;
}

/** Call with the state directory claimed (an engine started on it): what a crashed install left in it is removed. */
export function openInstallCache(flags: InstallFlags): InstallCache {
  const root = new StateDir(flags.stateDir).root;
  const workDir = path.join(root, 'install-work');
  for (const m of mountsUnder(workDir)) umount2(m, constants.MNT_DETACH);
  removeTree(workDir);
  const provider = flags.installer === 'pip'
    ? new PipProvider({ base: flags.base, workDir, indexUrl: flags.pipIndexUrl, findLinks: flags.pipFindLinks, noIndex: flags.pipIndexUrl === undefined })
    : new DebianProvider({ base: flags.base, workDir });
  return InstallCache.open(path.join(root, 'packages'), provider, flags.log);
}
