// Where on cgroup v2 the engine may make its pool. v2 has one tree and two rules that decide it:
// a cgroup's controllers are only those its parent enables in cgroup.subtree_control, and a
// cgroup other than the root cannot both hold processes and enable controllers for children
// ("no internal processes"). A worker started from the root cgroup (a bare machine, a guest)
// makes its pool under the root. A worker started in a cgroup of its own (a systemd service
// with Delegate=yes, a container with its own cgroup namespace, a user session's delegated
// scope) does what container runtimes do there: it moves itself into a leaf below its cgroup,
// enables the controllers in its cgroup's subtree_control, and makes the pool beside the leaf.
// What it cannot do it refuses, with one line naming what is missing and how to grant it: a
// cgroup whose parent did not delegate memory and pids, or one that holds other processes
// (which the engine did not start and does not move).
import fs from 'node:fs';
import path from 'node:path';
import { EngineSetupError } from '../errors.js';
import type { Hierarchy } from './cgroupHierarchy.js';

/** The leaf an engine moves its own process into, below the cgroup it was started in. */
export const SELF_LEAF = 'sockbench-self';
/** What a pool cannot do without (limits and OOM); cpu is enabled where it is offered. */
const REQUIRED = ['memory', 'pids'];
const WANTED = ['memory', 'pids', 'cpu'];

/** What the engine would do on this v2 hierarchy, read without changing anything (doctor, gc). */
export interface DelegationPlan {
  /** The directory the pool's parent goes in. */
  base: string;
  /** root: the root cgroup; own: the cgroup this process was started in (it moves into SELF_LEAF below it). */
  where: 'root' | 'own';
  /** Controllers the base must enable and cannot: the refusal's reason. */
  missing: string[];
  /** Processes other than this one in the base (only where the base is not the root). */
  others: number[];
  /** Whether this process already moved itself into SELF_LEAF (an engine started before in this process). */
  moved: boolean;
}

const read = (file: string) => fs.readFileSync(file, 'utf8').trim();
const words = (file: string) => read(file).split(/\s+/).filter(Boolean);

/** This process's cgroup v2 directory under the hierarchy's mount point (from /proc/self/cgroup's "0::" line). */
function ownCgroupDir(mount: string): string {
  const line = read('/proc/self/cgroup')
    .split('\n')
    .find((l) => l.startsWith('0::'));
  const rel = line?.slice(3) ?? '';
  // A path outside this cgroup namespace's root ("/.." ...) cannot be reached through the mount.
  if (!rel.startsWith('/') || rel.split('/').includes('..')) {
    throw new EngineSetupError(
      `cgroup v2: this process's cgroup (${rel || 'none'}) is not below ${mount}: mount the hierarchy of its cgroup namespace there`,
      3,
    );
  }
  return path.join(mount, rel);
}

/** The root of the hierarchy has no cgroup.type (a cgroup namespace's root does: it is a real cgroup below). */
const isRoot = (dir: string) => !fs.existsSync(path.join(dir, 'cgroup.type'));

const procs = (dir: string) => read(path.join(dir, 'cgroup.procs')).split('\n').filter(Boolean).map(Number);

export function planDelegation(h: Hierarchy): DelegationPlan {
  const mount = h.roots.unified!;
  const own = ownCgroupDir(mount);
  if (isRoot(own)) {
    const available = words(path.join(own, 'cgroup.controllers'));
    return {
      base: own,
      where: 'root',
      missing: REQUIRED.filter((c) => !available.includes(c)),
      others: [],
      moved: false,
    };
  }
  const moved = path.basename(own) === SELF_LEAF;
  const base = moved ? path.dirname(own) : own;
  const available = words(path.join(base, 'cgroup.controllers'));
  const others = moved ? [] : procs(base).filter((p) => p !== process.pid);
  return { base, where: 'own', missing: REQUIRED.filter((c) => !available.includes(c)), others, moved };
}

/** The one-line refusal for a plan that cannot be carried out, or undefined. */
export function refusal(plan: DelegationPlan): string | undefined {
  if (plan.missing.length > 0) {
    const parent = path.dirname(plan.base);
    return plan.where === 'root'
      ? `cgroup v2: this kernel offers no ${plan.missing.join(', ')} controller at ${plan.base}`
      : `cgroup v2: the worker's cgroup ${plan.base} was not delegated ${plan.missing.join(' and ')} (its parent enables only: ${words(path.join(parent, 'cgroup.subtree_control')).join(' ') || 'none'}); grant them with echo '${plan.missing.map((c) => `+${c}`).join(' ')}' > ${path.join(parent, 'cgroup.subtree_control')}, or run the worker as a systemd service with Delegate=yes`;
  }
  if (plan.others.length > 0) {
    const shown = plan.others.slice(0, 5).join(', ') + (plan.others.length > 5 ? ', ...' : '');
    return `cgroup v2: the worker's cgroup ${plan.base} also holds processes it did not start (${shown}), and a cgroup with processes cannot enable controllers below it; start the worker in a cgroup of its own whose parent delegates memory and pids (systemd-run --scope -p Delegate=yes ..., or a service with Delegate=yes)`;
  }
  return undefined;
}

/** Engines of this process placed through delegate(), and what the first of them changed. */
let placed = 0;
let undo: { base: string; enabled: string[]; moved: boolean } | undefined;

/**
 * Makes the hierarchy's pool place ready: moves this process into SELF_LEAF where it must and
 * enables the controllers below the base. Returns the hierarchy as the pool sees it: its root
 * the base, its controllers those enabled there. Undone by release() when the last engine of
 * this process goes.
 */
export function delegate(h: Hierarchy): Hierarchy {
  const plan = planDelegation(h);
  const refused = refusal(plan);
  if (refused) throw new EngineSetupError(refused, 3);
  let moved = false;
  if (plan.where === 'own' && !plan.moved) {
    const leaf = path.join(plan.base, SELF_LEAF);
    fs.mkdirSync(leaf, { recursive: true });
    fs.writeFileSync(path.join(leaf, 'cgroup.procs'), String(process.pid));
    moved = true;
  }
  const available = words(path.join(plan.base, 'cgroup.controllers'));
  const enabled: string[] = [];
  for (const c of WANTED.filter((x) => available.includes(x))) {
    if (words(path.join(plan.base, 'cgroup.subtree_control')).includes(c)) continue;
    try {
      fs.writeFileSync(path.join(plan.base, 'cgroup.subtree_control'), `+${c}`);
      enabled.push(c);
    } catch (e) {
      // cpu cannot be enabled while a real-time task runs outside a cpu cgroup: the pool goes without cpu.weight.
      if (REQUIRED.includes(c))
        throw new EngineSetupError(
          `cgroup v2: enabling ${c} in ${path.join(plan.base, 'cgroup.subtree_control')} failed: ${(e as Error).message}`,
          3,
        );
    }
  }
  if (placed === 0) undo = { base: plan.base, enabled: plan.where === 'own' ? enabled : [], moved };
  placed++;
  const controllers = words(path.join(plan.base, 'cgroup.subtree_control')).filter((c) => WANTED.includes(c));
  return { version: 2, roots: { unified: plan.base }, controllers };
}

/**
 * When the last engine of this process is gone: where the process moved itself, it moves back,
 * disables what it enabled and removes its leaf, unless another cgroup was made beside the leaf
 * meanwhile. At the root, enabled controllers stay enabled (others' cgroups may use them).
 */
export function release(): void {
  if (placed === 0) return;
  placed--;
  if (placed > 0 || !undo) return;
  const { base, enabled, moved } = undo;
  undo = undefined;
  if (!moved) return;
  const children = fs.readdirSync(base, { withFileTypes: true }).filter((e) => e.isDirectory() && e.name !== SELF_LEAF);
  if (children.length > 0) return;
  try {
    if (enabled.length > 0)
      fs.writeFileSync(path.join(base, 'cgroup.subtree_control'), enabled.map((c) => `-${c}`).join(' '));
    fs.writeFileSync(path.join(base, 'cgroup.procs'), String(process.pid));
    fs.rmdirSync(path.join(base, SELF_LEAF));
  } catch {
    // Another process joined the leaf, or a controller is in use below: leave things as they are.
  }
}
