// The install cache a worker gets from `sock worker up`'s flags: Debian's python3-* packages
// (the default: the only registry this project's machines reach) or pip against the index or
// wheel directories given, installed under <state-dir>/packages with the state dir's base.
import path from 'node:path';
import { InstallCache } from '../caches/installCache.js';
import { DebianProvider } from '../installers/debian.js';
import { PipProvider } from '../installers/pip.js';
import { StateDir } from '../state/stateDir.js';

export interface InstallFlags {
  installer: 'debian' | 'pip';
  stateDir: string;
  base: string;
  pipIndexUrl?: string;
  pipFindLinks?: string[];
  log?: (line: string) => void;
}

/** Call with the state directory claimed (an engine started on it): the cache removes half-done installs there. */
export function openInstallCache(flags: InstallFlags): InstallCache {
  const state = new StateDir(flags.stateDir);
  const provider =
    flags.installer === 'pip'
      ? new PipProvider({
          base: flags.base,
          workDir: state.installWork,
          indexUrl: flags.pipIndexUrl,
          findLinks: flags.pipFindLinks,
          noIndex: flags.pipIndexUrl === undefined,
        })
      : new DebianProvider({ base: flags.base, workDir: state.installWork });
  return InstallCache.open(path.join(state.root, 'packages'), provider, flags.log);
}
