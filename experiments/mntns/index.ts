// Mount namespaces against host mounts (the paper's Figure 2): how fast can containers get a
// new mount namespace as the host's mount table grows, and what the chroot a lean container
// uses instead costs. Every op is a child that unshares (or chroots) and exits, so the rate
// counts the namespace's copy of every mount and its teardown.
import type { Argv } from 'yargs';
import { constants } from '../../native/index.js';
import { PrivilegeError, UsageError } from '../../harness/errors.js';
import { ownedTmpfs, reclaimLeftovers, removeOwnedDir } from '../../harness/ownedDirs.js';
import type { Experiment, Measurement, Point, RunContext, Row } from '../../harness/types.js';
import { parseConfigList } from '../configList.js';
import { churn } from '../nativeRun.js';
import { mntnsFigure } from './figure.js';
import { HostMounts } from './hostMounts.js';
import { paper } from './paper.js';

const MNTNS_CONFIGS = ['mntns', 'chroot'];
const DEFAULT_HOST_MOUNTS = [0, 100, 1000, 5000, 10000];
const QUICK_HOST_MOUNTS = [0, 1000];
/** Far beyond the study's range, and bounded so a typo cannot fill the mount table. */
const MAX_HOST_MOUNTS = 100_000;

let run: { dir: string; mounts: HostMounts; chrootDir: string } | undefined;

function parseHostMounts(text: string): number[] {
  const values = text
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((s) => Number(s.trim()));
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v < 0 || v > MAX_HOST_MOUNTS)) {
    throw new UsageError(`--host-mounts: expected comma-separated whole numbers 0..${MAX_HOST_MOUNTS}, got '${text}'`);
  }
  return [...new Set(values)].sort((a, b) => a - b);
}

export const mntns: Experiment = {
  name: 'mntns',
  summary: 'new mount namespaces (and chroot) per second as host mounts grow (paper Figure 2)',
  paper,
  reproTrace: ['locks'],
  kernelMatrix: 'default',
  defaults: { concurrency: [1, 2, 4, 8], duration: 2, repeat: 3, warmup: 0.3 },
  quick: { concurrency: [1, 4], duration: 0.5, repeat: 2, warmup: 0.1 },

  options(argv: Argv): Argv {
    return argv
      .option('configs', {
        type: 'string',
        default: MNTNS_CONFIGS.join(','),
        describe: 'mntns: unshare(CLONE_NEWNS); chroot: chroot into a directory, as SOCK does',
      })
      .option('host-mounts', {
        type: 'string',
        describe: `comma-separated counts of extra mounts in the host namespace [default: ${DEFAULT_HOST_MOUNTS.join(',')}; --quick: ${QUICK_HOST_MOUNTS.join(',')}]`,
      });
  },

  configs(options) {
    const configs = parseConfigList(options.configs, MNTNS_CONFIGS);
    if (options['host-mounts'] !== undefined) parseHostMounts(String(options['host-mounts']));
    return configs;
  },

  // Host mounts outermost, ascending: the mount table is grown between points, never rebuilt.
  points(configs, concurrency, options) {
    const hostMounts =
      options['host-mounts'] !== undefined
        ? parseHostMounts(String(options['host-mounts']))
        : options.quick
          ? QUICK_HOST_MOUNTS
          : DEFAULT_HOST_MOUNTS;
    return hostMounts.flatMap((n) =>
      configs.flatMap((config) => concurrency.map((c) => ({ config, concurrency: c, params: { host_mounts: n } }))),
    );
  },

  async preflight() {
    if (process.geteuid?.() !== 0)
      throw new PrivilegeError(
        'mntns mounts and unshares mount namespaces and needs root (CAP_SYS_ADMIN): run it as root',
      );
  },

  async setup(ctx: RunContext) {
    for (const dir of reclaimLeftovers('mntns')) ctx.progress.note(`mntns: removed ${dir}, left by a run that is gone`);
    const dir = ownedTmpfs('mntns');
    const mounts = new HostMounts(dir);
    run = { dir, mounts, chrootDir: mounts.directory('chroot-root') };
  },

  async teardown() {
    if (run) removeOwnedDir(run.dir);
    run = undefined;
  },

  async measure(point: Point, ctx: RunContext): Promise<Measurement> {
    const n = point.params!.host_mounts!;
    run!.mounts.resize(n);
    const result =
      point.config === 'mntns'
        ? await churn(point, ctx, { flags: constants.CLONE_NEWNS, useUnshare: true }, `mntns with ${n} host mounts`)
        : await churn(point, ctx, { flags: 0, chroot: run!.chrootDir }, `chroot with ${n} host mounts`);
    return { ops: result.ops, seconds: result.seconds, latenciesUs: result.latenciesUs };
  },

  figure(rows: Row[]) {
    return mntnsFigure(rows);
  },
};
