// Container storage (the paper's AUFS vs bind study): how fast can a sandbox's root directory
// be provisioned and removed, by a read-only bind mount of a base, a SOCK-style stitched root
// (base, packages and code read-only, scratch writable), overlayfs (mainline's stand-in for
// AUFS), or a plain chroot into the tree. Setup and teardown are timed separately.
//
// Each operation sets a root up and tears it down, so the two phases share one rate: roots per
// second through the whole cycle (ops_per_sec is the same in both rows). What differs is each
// phase's latency, and busy_share, the fraction of the threads' time spent in it. A rate per
// phase would mislead: while most threads sleep in a slow teardown, the few in setup run
// unhindered, and their short latencies would promise more setups than the CPUs can do.
import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { constants, ScriptRun, type ScriptOptions, type ScriptStep } from '../../native/index.js';
import { PrivilegeError, UsageError } from '../../harness/errors.js';
import { ownedTmpfs, reclaimLeftovers, removeOwnedDir } from '../../harness/ownedDirs.js';
import type { Experiment, Measurement, Point, RunContext, Row } from '../../harness/types.js';
import { parseConfigList } from '../configList.js';
import { bounds, runToCompletion } from '../nativeRun.js';
import { storageFigure } from './figure.js';
import { paper } from './paper.js';

const STORAGE_CONFIGS = ['bind', 'sock-root', 'overlay', 'fuse-overlay', 'chroot'];
const DEFAULT_CONFIGS = STORAGE_CONFIGS;
const PHASES = ['setup', 'teardown'];

let workDir: string | undefined;
let measurements = 0;

/** The fuse-overlayfs program on PATH, if installed. */
function fuseOverlayfs(): string | undefined {
  return (process.env.PATH ?? '/usr/bin:/bin')
    .split(':')
    .map((d) => path.join(d, 'fuse-overlayfs'))
    .find((p) => fs.existsSync(p));
}

/** /proc/filesystems lines read "nodev\toverlay". */
function hasOverlayfs(): boolean {
  return fs
    .readFileSync('/proc/filesystems', 'utf8')
    .split('\n')
    .some((l) => l.split('\t')[1] === 'overlay');
}

/** A small root tree, with the mount points a stitched SOCK root needs, and what goes in them. */
export function makeStorageTree(dir: string): void {
  const base = path.join(dir, 'base');
  for (const d of ['bin', 'etc', 'lib', 'usr/lib/python3', 'tmp', 'packages', 'handler', 'host'])
    fs.mkdirSync(path.join(base, d), { recursive: true });
  fs.writeFileSync(path.join(base, 'etc/os-release'), 'NAME=sockbench-storage-base\n');
  const packages = path.join(dir, 'packages');
  fs.mkdirSync(path.join(packages, 'requests'), { recursive: true });
  fs.writeFileSync(path.join(packages, 'requests/__init__.py'), '');
  const code = path.join(dir, 'code');
  fs.mkdirSync(code);
  fs.writeFileSync(path.join(code, 'f.py'), 'def f(event):\n    return event\n');
  for (const d of ['roots', 'scratch', 'upper', 'work']) fs.mkdirSync(path.join(dir, d));
}

const { MS_BIND, MS_REMOUNT, MS_RDONLY, MNT_DETACH } = constants;
const bindRo = (source: string, target: string): ScriptStep[] => [
  { op: 'mount', source, path: target, flags: MS_BIND },
  // A bind mount ignores MS_RDONLY; read-only takes a second call.
  { op: 'mount', path: target, flags: MS_REMOUNT | MS_BIND | MS_RDONLY },
];

/**
 * The ScriptRun of one configuration: per-thread directories, the two phases, and cleanup.
 * `run` makes this measurement's directories its own (they go when the tmpfs does).
 */
export function storageScript(
  config: string,
  dir: string,
  run: number,
): Pick<ScriptOptions, 'prepare' | 'phases' | 'cleanup'> {
  const [base, packages, code] = ['base', 'packages', 'code'].map((d) => path.join(dir, d)) as [string, string, string];
  const root = path.join(dir, `roots/${run}-{t}`);
  const phases = (setup: ScriptStep[], teardown: ScriptStep[]) => [
    { name: 'setup', steps: setup },
    { name: 'teardown', steps: teardown },
  ];
  switch (config) {
    case 'bind':
      return {
        prepare: [{ op: 'mkdir', path: root }],
        phases: phases(bindRo(base, root), [{ op: 'umount', path: root }]),
        cleanup: [{ op: 'umount', path: root, flags: MNT_DETACH }],
      };
    case 'sock-root': {
      const scratch = path.join(dir, `scratch/${run}-{t}`);
      return {
        prepare: [
          { op: 'mkdir', path: root },
          { op: 'mkdir', path: scratch },
        ],
        phases: phases(
          [
            ...bindRo(base, root),
            ...bindRo(packages, `${root}/packages`),
            ...bindRo(code, `${root}/handler`),
            { op: 'mount', source: scratch, path: `${root}/host`, flags: MS_BIND },
          ],
          ['host', 'handler', 'packages']
            .map((m) => ({ op: 'umount', path: `${root}/${m}` }) as ScriptStep)
            .concat([{ op: 'umount', path: root }]),
        ),
        cleanup: [{ op: 'umount', path: root, flags: MNT_DETACH }],
      };
    }
    case 'overlay':
    case 'fuse-overlay': {
      const upper = path.join(dir, `upper/${run}-{t}`);
      const work = path.join(dir, `work/${run}-{t}`);
      const options = `lowerdir=${base},upperdir=${upper},workdir=${work}`;
      // The same overlay, in the kernel or served by a FUSE daemon. For the daemon, setup is
      // starting it (it daemonizes once its mount is up); the unmount ends it.
      const setup: ScriptStep =
        config === 'overlay'
          ? { op: 'mount', source: 'overlay', path: root, fstype: 'overlay', flags: 0, data: options }
          : { op: 'exec', path: fuseOverlayfs() ?? 'fuse-overlayfs', args: ['-o', options, root] };
      return {
        prepare: [root, upper, work].map((p) => ({ op: 'mkdir', path: p }) as ScriptStep),
        phases: phases([setup], [{ op: 'umount', path: root }]),
        cleanup: [{ op: 'umount', path: root, flags: MNT_DETACH }],
      };
    }
    case 'chroot':
      return { phases: phases([{ op: 'chroot', path: base }], [{ op: 'unchroot' }]) };
    default:
      throw new UsageError(`--configs: ${config} cannot be measured`);
  }
}

export const storage: Experiment = {
  name: 'storage',
  summary: 'provisioning a container root: bind, SOCK stitched root, overlayfs, chroot; setup and teardown',
  paper,
  reproTrace: ['locks'],
  kernelMatrix: 'on request',
  defaults: { concurrency: [1, 2, 4, 8, 16], duration: 2, repeat: 3, warmup: 0.3 },
  quick: { concurrency: [1, 4], duration: 0.5, repeat: 2, warmup: 0.1 },

  options(argv: Argv): Argv {
    return argv.option('configs', {
      type: 'string',
      default: DEFAULT_CONFIGS.join(','),
      describe: `comma-separated, among ${STORAGE_CONFIGS.join(', ')} [default: all; fuse-overlay only where fuse-overlayfs is installed]`,
    });
  },

  configs(options) {
    const asked = options.configs !== undefined && options.configs !== DEFAULT_CONFIGS.join(',');
    // By default fuse-overlay is measured where it can be; asked for by name, its absence is an error (preflight).
    return parseConfigList(options.configs, STORAGE_CONFIGS).filter(
      (c) => asked || c !== 'fuse-overlay' || fuseOverlayfs() !== undefined,
    );
  },

  async preflight(options) {
    if (process.geteuid?.() !== 0)
      throw new PrivilegeError('storage mounts container roots and needs root (CAP_SYS_ADMIN): run it as root');
    const configs = this.configs(options);
    if (configs.includes('overlay') && !hasOverlayfs()) {
      throw new PrivilegeError(
        'this kernel has no overlayfs (not in /proc/filesystems; try modprobe overlay), or leave it out with --configs',
      );
    }
    if (configs.includes('fuse-overlay') && (!fuseOverlayfs() || !fs.existsSync('/dev/fuse'))) {
      throw new PrivilegeError(
        `fuse-overlay needs ${fuseOverlayfs() ? '/dev/fuse' : 'fuse-overlayfs (apt-get install fuse-overlayfs, or run scripts/setup.sh)'}, or leave it out with --configs`,
      );
    }
  },

  async setup(ctx: RunContext) {
    if (!ctx.options.configs || String(ctx.options.configs) === DEFAULT_CONFIGS.join(',')) {
      if (!fuseOverlayfs())
        ctx.progress.note(
          'storage: not measuring fuse-overlay: fuse-overlayfs is not installed (scripts/setup.sh installs it)',
        );
    }
    for (const dir of reclaimLeftovers('storage'))
      ctx.progress.note(`storage: removed ${dir}, left by a run that is gone`);
    // Everything on a private tmpfs: no mount of the study propagates to or from the host.
    workDir = ownedTmpfs('storage');
    makeStorageTree(workDir);
  },

  async teardown() {
    if (workDir) removeOwnedDir(workDir);
    workDir = undefined;
  },

  async measure(point: Point, ctx: RunContext): Promise<Measurement[]> {
    const run = new ScriptRun({
      ...storageScript(point.config, workDir!, measurements++),
      concurrency: point.concurrency,
      ...bounds(point),
    });
    const result = await runToCompletion(run, ctx, `storage ${point.config}`);
    const busy = (phase: string) => result.phases[phase]!.reduce((sum, us) => sum + us, 0);
    const total = PHASES.reduce((sum, phase) => sum + busy(phase), 0);
    return PHASES.map((phase) => ({
      phase,
      ops: result.ops,
      seconds: result.seconds,
      latenciesUs: result.phases[phase]!,
      extra: { busy_share: total > 0 ? busy(phase) / total : NaN },
    }));
  },

  figure(rows: Row[]) {
    return storageFigure(rows);
  },
};
