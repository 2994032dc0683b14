// Where this machine's cgroup controllers are, and the scripts that make a sandbox's cgroup
// ready in each way the study compares. v1 has one directory per controller (memory, cpu, pids,
// freezer); v2 has one directory whose controllers come from the parent's subtree_control.
import fs from 'node:fs';
import path from 'node:path';
import type { ScriptStep } from '../../native/index.js';
import { readMounts } from '../../harness/mountinfo.js';

/** What a sandbox is given: 256 MiB, 256 tasks, a CPU share (the engine's defaults). */
export const LIMITS = { memoryBytes: String(256 * 1024 * 1024), pids: '256', cpuShares: '512', cpuWeight: '50' };
const V1_CONTROLLERS = ['memory', 'cpu', 'pids', 'freezer'] as const;
const V2_CONTROLLERS = ['memory', 'cpu', 'pids'];

export interface Hierarchy {
  version: 1 | 2;
  /** controller -> mount point (v1); for v2 the one mount point under the key "unified". */
  roots: Record<string, string>;
  /** The controllers a sandbox's cgroup gets limits from; on v2, what could be enabled. */
  controllers: string[];
}

export function findHierarchies(): Hierarchy[] {
  const mounts = readMounts();
  const found: Hierarchy[] = [];
  const v1: Record<string, string> = {};
  for (const m of mounts) {
    if (m.fsType !== 'cgroup') continue;
    for (const c of V1_CONTROLLERS) if (m.superOptions.includes(c) && !v1[c]) v1[c] = m.mountPoint;
  }
  if (Object.keys(v1).length > 0) found.push({ version: 1, roots: v1, controllers: V1_CONTROLLERS.filter((c) => v1[c]) });
  const v2 = mounts.find((m) => m.fsType === 'cgroup2');
  if (v2) {
    const available = fs.readFileSync(path.join(v2.mountPoint, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    found.push({ version: 2, roots: { unified: v2.mountPoint }, controllers: V2_CONTROLLERS.filter((c) => available.includes(c)) });
  }
  return found;
}

/** The run's parent cgroup in every directory of a hierarchy (v2: with the controllers enabled below it). */
export function makeParents(h: Hierarchy, name: string): string[] {
  const parents = Object.values(h.roots).map((root) => path.join(root, name));
  for (const p of parents) fs.mkdirSync(p);
  if (h.version === 2 && h.controllers.length > 0) {
    fs.writeFileSync(path.join(parents[0]!, 'cgroup.subtree_control'), h.controllers.map((c) => `+${c}`).join(' '));
  }
  return parents;
}

/** Removes cgroups at and under dir, deepest first. They must hold no tasks. */
export function removeCgroupTree(dir: string): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) removeCgroupTree(path.join(dir, entry.name));
  }
  fs.rmdirSync(dir);
}

/** The cgroup directories of one sandbox cgroup named `leaf`, controller by controller. */
function dirs(h: Hierarchy, parent: string, leaf: string): { controller: string; dir: string }[] {
  if (h.version === 2) return [{ controller: 'unified', dir: path.join(h.roots.unified!, parent, leaf) }];
  return h.controllers.map((c) => ({ controller: c, dir: path.join(h.roots[c]!, parent, leaf) }));
}

/** Limits set on a ready cgroup, per directory. */
function limitSteps(h: Hierarchy, controller: string, dir: string): ScriptStep[] {
  const w = (file: string, value: string): ScriptStep => ({ op: 'write', path: path.join(dir, file), value });
  if (h.version === 1) {
    if (controller === 'memory') return [w('memory.limit_in_bytes', LIMITS.memoryBytes)];
    if (controller === 'cpu') return [w('cpu.shares', LIMITS.cpuShares)];
    if (controller === 'pids') return [w('pids.max', LIMITS.pids)];
    return [];
  }
  return [
    ...(h.controllers.includes('memory') ? [w('memory.max', LIMITS.memoryBytes)] : []),
    ...(h.controllers.includes('cpu') ? [w('cpu.weight', LIMITS.cpuWeight)] : []),
    ...(h.controllers.includes('pids') ? [w('pids.max', LIMITS.pids)] : []),
  ];
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
    ready: all.flatMap(({ controller, dir }) => [{ op: 'mkdir', path: dir } as ScriptStep, ...limitSteps(h, controller, dir)]),
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
export function moveScript(h: Hierarchy, parent: string): { prepare: ScriptStep[]; toA: ScriptStep[]; toB: ScriptStep[]; cleanup: ScriptStep[] } {
  const a = dirs(h, parent, 'move-{t}-a');
  const b = dirs(h, parent, 'move-{t}-b');
  const moveTo = (to: typeof a) => to.map(({ dir }) => ({ op: 'write', path: path.join(dir, 'cgroup.procs'), value: '{p}' }) as ScriptStep);
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
    h.version === 2 ? [{ op: 'write', path: path.join(dir, 'cgroup.freeze'), value: '0' }]
      : controller === 'freezer' ? [{ op: 'write', path: path.join(dir, 'freezer.state'), value: 'THAWED' }] : [];
  const clearStats = (controller: string, dir: string): ScriptStep[] =>
    h.version === 1 && controller === 'memory' ? [{ op: 'write', path: path.join(dir, 'memory.max_usage_in_bytes'), value: '0' }] : [];
  return {
    prepare: all.map(({ dir }) => ({ op: 'mkdir', path: dir }) as ScriptStep),
    ready: all.flatMap(({ controller, dir }) => [...limitSteps(h, controller, dir), ...clearStats(controller, dir), ...thaw(controller, dir)]),
    release: all.map(({ dir }) => ({ op: 'empty', path: path.join(dir, 'cgroup.procs') }) as ScriptStep),
    cleanup: all.map(({ dir }) => ({ op: 'rmdir', path: dir }) as ScriptStep),
  };
}
