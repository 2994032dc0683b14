// The scripts that make a sandbox's cgroup ready in each way the study compares, on the
// hierarchies the engine finds (engine/cgroupHierarchy.ts).
import path from 'node:path';
import type { ScriptStep } from '../../native/index.js';
import { DEFAULT_LIMITS, limitFiles, type Hierarchy } from '../../engine/cgroups/cgroupHierarchy.js';

/** The cgroup directories of one sandbox cgroup named `leaf`, controller by controller. */
function dirs(h: Hierarchy, parent: string, leaf: string): { controller: string; dir: string }[] {
  if (h.version === 2) return [{ controller: 'unified', dir: path.join(h.roots.unified!, parent, leaf) }];
  return h.controllers.map((c) => ({ controller: c, dir: path.join(h.roots[c]!, parent, leaf) }));
}

/** The engine's default limits set on a ready cgroup, per directory. */
function limitSteps(h: Hierarchy, controller: string, dir: string): ScriptStep[] {
  return limitFiles(h, controller, DEFAULT_LIMITS).map(({ file, value }) => ({
    op: 'write',
    path: path.join(dir, file),
    value,
  }));
}

/** How one way gets a sandbox a ready cgroup and gives it back, as ScriptRun steps. */
export interface CgroupScript {
  /** Once per thread before the clock starts, and once at the end. */
  prepare: ScriptStep[];
  cleanup: ScriptStep[];
  /** Per operation: make the cgroup ready, then give it back. */
  ready: ScriptStep[];
  release: ScriptStep[];
}

/** create: mkdir, set limits; give back: rmdir. Each operation makes a cgroup of its own. */
export function createScript(h: Hierarchy, parent: string): CgroupScript {
  const all = dirs(h, parent, 'c{t}-{n}');
  return {
    prepare: [],
    cleanup: [],
    ready: all.flatMap(({ controller, dir }) => [
      { op: 'mkdir', path: dir } as ScriptStep,
      ...limitSteps(h, controller, dir),
    ]),
    release: all.map(({ dir }) => ({ op: 'rmdir', path: dir }) as ScriptStep),
  };
}

/** The directories of the one cgroup clone-move and clone-into put their new processes in. */
export function targetDirs(h: Hierarchy, parent: string): string[] {
  return dirs(h, parent, 'clone-target').map(({ dir }) => dir);
}

/**
 * move: each thread's holder process (a child that only waits) is moved back and forth
 * between two of the thread's cgroups, by writing its pid to cgroup.procs in every directory
 * of the hierarchy, as a worker does to put a sandbox's first process in its cgroup.
 */
export function moveScript(
  h: Hierarchy,
  parent: string,
): { prepare: ScriptStep[]; toA: ScriptStep[]; toB: ScriptStep[]; cleanup: ScriptStep[] } {
  const a = dirs(h, parent, 'move-{t}-a');
  const b = dirs(h, parent, 'move-{t}-b');
  const moveTo = (to: typeof a) =>
    to.map(({ dir }) => ({ op: 'write', path: path.join(dir, 'cgroup.procs'), value: '{p}' }) as ScriptStep);
  return {
    prepare: [...a, ...b].map(({ dir }) => ({ op: 'mkdir', path: dir }) as ScriptStep),
    toA: moveTo(a),
    toB: moveTo(b),
    // The holder is gone by then (ScriptRun kills it before cleanup), so both are empty.
    cleanup: [...a, ...b].map(({ dir }) => ({ op: 'rmdir', path: dir }) as ScriptStep),
  };
}

/**
 * reuse: each thread owns one pooled cgroup. Taking it re-sets the limits, clears the peak
 * memory statistic (v1) and thaws it; giving it back checks it holds no task, as a pool must
 * before handing it on.
 */
export function reuseScript(h: Hierarchy, parent: string): CgroupScript {
  const all = dirs(h, parent, 'pool-{t}');
  const thaw = (controller: string, dir: string): ScriptStep[] =>
    h.version === 2
      ? [{ op: 'write', path: path.join(dir, 'cgroup.freeze'), value: '0' }]
      : controller === 'freezer'
        ? [{ op: 'write', path: path.join(dir, 'freezer.state'), value: 'THAWED' }]
        : [];
  const clearStats = (controller: string, dir: string): ScriptStep[] =>
    h.version === 1 && controller === 'memory'
      ? [{ op: 'write', path: path.join(dir, 'memory.max_usage_in_bytes'), value: '0' }]
      : [];
  return {
    prepare: all.map(({ dir }) => ({ op: 'mkdir', path: dir }) as ScriptStep),
    ready: all.flatMap(({ controller, dir }) => [
      ...limitSteps(h, controller, dir),
      ...clearStats(controller, dir),
      ...thaw(controller, dir),
    ]),
    release: all.map(({ dir }) => ({ op: 'empty', path: path.join(dir, 'cgroup.procs') }) as ScriptStep),
    cleanup: all.map(({ dir }) => ({ op: 'rmdir', path: dir }) as ScriptStep),
  };
}
