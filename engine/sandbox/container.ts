// A lean container as the SOCK engine makes it, before anything runs in it. Its own file so
// that a zygote (zygote.ts), which puts its forks in containers, and the engine that makes
// them (sockEngine.ts) both name it without importing each other.
import type { PooledCgroup } from '../cgroups/cgroupPool.js';

/** A new container before anything runs in it: its cgroup from the pool and its stitched root. */
export interface Container {
  id: string;
  cgroup: PooledCgroup;
  dir: string;
  root: string;
  scratch: string;
}
