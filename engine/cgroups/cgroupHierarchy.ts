// Where this machine's cgroup controllers are. v1 has one directory tree per controller
// (memory, cpu, pids, freezer); v2 has one tree whose controllers come from the parent's
// cgroup.subtree_control.
import fs from 'node:fs';
import path from 'node:path';
import { readMounts } from '../state/mountinfo.js';

/** What a sandbox is bounded by. */
export interface Limits {
  memoryBytes: number;
  pids: number;
  /** v1 cpu.shares (1024 = one default share); v2 gets the matching cpu.weight. */
  cpuShares: number;
}

/** The engine's defaults: 256 MiB, 256 tasks, half a default CPU share. */
export const DEFAULT_LIMITS: Limits = { memoryBytes: 256 * 1024 * 1024, pids: 256, cpuShares: 512 };

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
  if (Object.keys(v1).length > 0)
    found.push({ version: 1, roots: v1, controllers: V1_CONTROLLERS.filter((c) => v1[c]) });
  const v2 = mounts.find((m) => m.fsType === 'cgroup2');
  if (v2) {
    const available = fs.readFileSync(path.join(v2.mountPoint, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    found.push({
      version: 2,
      roots: { unified: v2.mountPoint },
      controllers: V2_CONTROLLERS.filter((c) => available.includes(c)),
    });
  }
  return found;
}

/**
 * The parent cgroup `name` in every directory tree of a hierarchy. On v2 the controllers are
 * enabled at the hierarchy's root (a fresh cgroup2 mount enables none; a root cgroup may
 * enable controllers while it holds processes) and in the parent, so its children get them.
 */
export function makeParents(h: Hierarchy, name: string): string[] {
  const parents = Object.values(h.roots).map((root) => path.join(root, name));
  if (h.version === 2 && h.controllers.length > 0) {
    const rootControl = path.join(h.roots.unified!, 'cgroup.subtree_control');
    const enabled = fs.readFileSync(rootControl, 'utf8').trim().split(/\s+/);
    const lacking = h.controllers.filter((c) => !enabled.includes(c));
    if (lacking.length > 0) fs.writeFileSync(rootControl, lacking.map((c) => `+${c}`).join(' '));
  }
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

/** The files (and values) that put limits on a cgroup's directory for one controller (v2: "unified"). */
export function limitFiles(h: Hierarchy, controller: string, limits: Limits): { file: string; value: string }[] {
  if (h.version === 1) {
    if (controller === 'memory') return [{ file: 'memory.limit_in_bytes', value: String(limits.memoryBytes) }];
    if (controller === 'cpu') return [{ file: 'cpu.shares', value: String(limits.cpuShares) }];
    if (controller === 'pids') return [{ file: 'pids.max', value: String(limits.pids) }];
    return [];
  }
  // cgroup v2's weight runs 1..10000 with 100 the default, where v1's shares default to 1024.
  const weight = Math.max(1, Math.min(10000, Math.round((limits.cpuShares * 100) / 1024)));
  return [
    ...(h.controllers.includes('memory') ? [{ file: 'memory.max', value: String(limits.memoryBytes) }] : []),
    ...(h.controllers.includes('cpu') ? [{ file: 'cpu.weight', value: String(weight) }] : []),
    ...(h.controllers.includes('pids') ? [{ file: 'pids.max', value: String(limits.pids) }] : []),
  ];
}
