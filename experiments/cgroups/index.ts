// cgroups: create vs reuse. How fast can a new sandbox get a ready cgroup (limits set, clean,
// thawed), by making a fresh one and removing it afterwards, or by taking one from a pool and
// resetting it? And what does putting a process in one cost: moving a running one (a write to
// cgroup.procs), a new one that moves itself in, or one born there (clone3 CLONE_INTO_CGROUP)?
// On cgroup v1 (a directory per controller) and v2 (one directory), wherever this machine
// mounts them.
import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { ScriptRun } from '../../native/index.js';
import { PrivilegeError, UsageError } from '../../harness/errors.js';
import { orphansIn, ownerTag } from '../../harness/ownedDirs.js';
import type { Experiment, Measurement, Point, RunContext, Row } from '../../harness/types.js';
import { parseConfigList } from '../configList.js';
import { bounds, churn, runToCompletion } from '../nativeRun.js';
import { cgroupsFigure } from './figure.js';
import { createScript, moveScript, reuseScript, targetDirs } from './hierarchies.js';
import {
  findHierarchies,
  makeParents,
  removeCgroupTree,
  type Hierarchy,
} from '../../engine/cgroups/cgroupHierarchy.js';
import { paper } from './paper.js';

const CGROUP_CONFIGS = ['create', 'reuse', 'move', 'clone-move', 'clone-into'];
const KIND = 'sockbench-cgroups';

let parents: { hierarchy: Hierarchy; name: string; dirs: string[] }[] = [];

function requestedVersions(options: Record<string, unknown>): number[] | undefined {
  if (options.versions === undefined) return undefined;
  const versions = String(options.versions)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (versions.length === 0 || versions.some((v) => v !== '1' && v !== '2'))
    throw new UsageError(`--versions: expected 1, 2 or 1,2, got '${options.versions}'`);
  return [...new Set(versions.map(Number))];
}

/** The hierarchies to measure: those asked for, each of which must exist, or all there are. */
function hierarchiesFor(options: Record<string, unknown>): Hierarchy[] {
  const found = findHierarchies();
  const wanted = requestedVersions(options);
  if (!wanted) return found;
  for (const v of wanted)
    if (!found.some((h) => h.version === v)) throw new PrivilegeError(`cgroup v${v} is not mounted on this machine`);
  return found.filter((h) => wanted.includes(h.version));
}

/** One operation is one move; a ScriptRun operation moves the holder there and back. */
async function measureMove(h: Hierarchy, parent: string, point: Point, ctx: RunContext): Promise<Measurement> {
  const { prepare, toA, toB, cleanup } = moveScript(h, parent);
  const run = new ScriptRun({
    prepare,
    cleanup,
    holder: true,
    phases: [
      { name: 'a', steps: toA },
      { name: 'b', steps: toB },
    ],
    concurrency: point.concurrency,
    ...bounds(point),
  });
  const result = await runToCompletion(run, ctx, `cgroups move v${h.version}`);
  const latenciesUs = new Float64Array([...result.phases.a!, ...result.phases.b!]);
  return { ops: latenciesUs.length, seconds: result.seconds, latenciesUs };
}

/**
 * A new process per operation that ends up in the target cgroup: written in by itself
 * (clone-move, "0" to cgroup.procs in each directory) or born there (clone-into), then exits.
 */
async function measureClone(h: Hierarchy, parent: string, point: Point, ctx: RunContext): Promise<Measurement> {
  const target = targetDirs(h, parent);
  for (const dir of target) fs.mkdirSync(dir, { recursive: true });
  try {
    const how =
      point.config === 'clone-into'
        ? { intoCgroup: target[0]! }
        : { moveTo: target.map((d) => path.join(d, 'cgroup.procs')) };
    const result = await churn(point, ctx, { flags: 0, ...how }, `cgroups ${point.config} v${h.version}`);
    return { ops: result.ops, seconds: result.seconds, latenciesUs: result.latenciesUs };
  } finally {
    // Every child has exited and been reaped: the target is empty.
    for (const dir of target) fs.rmdirSync(dir);
  }
}

export const cgroups: Experiment = {
  name: 'cgroups',
  summary: 'a ready cgroup per second: create a fresh one vs reuse one from a pool, cgroup v1 and v2',
  paper,
  reproTrace: ['locks'],
  kernelMatrix: 'default',
  defaults: { concurrency: [1, 2, 4, 8, 16], duration: 2, repeat: 3, warmup: 0.3 },
  quick: { concurrency: [1, 4], duration: 0.5, repeat: 2, warmup: 0.1 },

  options(argv: Argv): Argv {
    return argv
      .option('configs', {
        type: 'string',
        default: CGROUP_CONFIGS.join(','),
        describe:
          'create: mkdir, set limits, rmdir; reuse: reset a pooled cgroup; move: write a process into cgroup.procs; clone-move: a new process writes itself in, then exits; clone-into: it is born there (clone3 CLONE_INTO_CGROUP, cgroup v2 only)',
      })
      .option('versions', {
        type: 'string',
        describe: 'cgroup versions to measure, 1 and/or 2 [default: every one mounted]',
      });
  },

  configs(options) {
    const configs = parseConfigList(options.configs, CGROUP_CONFIGS);
    requestedVersions(options);
    return configs;
  },

  points(configs, concurrency, options) {
    // CLONE_INTO_CGROUP takes a cgroup v2 directory: there is no v1 point of it.
    return hierarchiesFor(options).flatMap((h) =>
      configs
        .filter((config) => config !== 'clone-into' || h.version === 2)
        .flatMap((config) =>
          concurrency.map((c) => ({ config, concurrency: c, params: { cgroup_version: h.version } })),
        ),
    );
  },

  async preflight(options) {
    if (process.geteuid?.() !== 0)
      throw new PrivilegeError('cgroups makes and removes cgroups and needs root: run it as root');
    if (hierarchiesFor(options).length === 0)
      throw new PrivilegeError('no cgroup hierarchy is mounted (neither cgroup v1 controllers nor cgroup2)');
  },

  async setup(ctx: RunContext) {
    for (const h of findHierarchies()) {
      for (const root of Object.values(h.roots)) {
        for (const orphan of orphansIn(root, KIND)) {
          removeCgroupTree(orphan);
          ctx.progress.note(`cgroups: removed ${orphan}, left by a run that is gone`);
        }
      }
    }
    const name = ownerTag(KIND);
    for (const h of hierarchiesFor(ctx.options)) {
      parents.push({ hierarchy: h, name, dirs: makeParents(h, name) });
      ctx.notes[`cgroup_v${h.version}_controllers`] = h.controllers;
      if (h.version === 2 && h.controllers.length === 0) {
        ctx.progress.note(
          'cgroups: cgroup v2 here offers none of memory, cpu, pids: v2 points make and reset bare cgroups, with no limits to set',
        );
      }
    }
  },

  async teardown() {
    for (const p of parents) for (const dir of p.dirs) removeCgroupTree(dir);
    parents = [];
  },

  async measure(point: Point, ctx: RunContext): Promise<Measurement> {
    const parent = parents.find((p) => p.hierarchy.version === point.params!.cgroup_version)!;
    if (point.config === 'move') return measureMove(parent.hierarchy, parent.name, point, ctx);
    if (point.config === 'clone-move' || point.config === 'clone-into')
      return measureClone(parent.hierarchy, parent.name, point, ctx);
    const { prepare, cleanup, ready, release } = (point.config === 'create' ? createScript : reuseScript)(
      parent.hierarchy,
      parent.name,
    );
    // Timed as one cycle, ready and given back: create pays its rmdir there, reuse its check.
    const run = new ScriptRun({
      prepare,
      cleanup,
      phases: [{ name: 'cycle', steps: [...ready, ...release] }],
      concurrency: point.concurrency,
      ...bounds(point),
    });
    const result = await runToCompletion(run, ctx, `cgroups ${point.config} v${point.params!.cgroup_version}`);
    return { ops: result.ops, seconds: result.seconds, latenciesUs: result.phases.cycle! };
  },

  figure(rows: Row[]) {
    return cgroupsFigure(rows);
  },
};
