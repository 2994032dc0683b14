// The cheap namespaces: IPC, UTS and PID namespace creation against concurrency. The paper
// found these stay flat while network and mount namespaces collapse; this study checks that on
// today's kernel with the same churn loop as netns (each op: clone, unshare, exit, reap).
import type { Argv } from 'yargs';
import { namespaceFlags } from '../../native/index.js';
import { UsageError } from '../../harness/errors.js';
import type { Experiment, Measurement, Point, RunContext, Row } from '../../harness/types.js';
import { churn } from '../nativeRun.js';
import { namespacesOf, normalizeSet, requireNamespaces } from '../namespaceSets.js';
import { ipcutsFigure } from './figure.js';
import { paper } from './paper.js';

const IPCUTS_SETS = ['none', 'ipc', 'uts', 'pid', 'ipc+pid+uts'];

export const ipcuts: Experiment = {
  name: 'ipcuts',
  summary: 'create+destroy rate of IPC, UTS and PID namespaces against concurrency',
  paper,
  kernelMatrix: 'on request',
  plainConfig: 'none',
  defaults: { concurrency: [1, 2, 4, 8, 16, 32, 64], duration: 2, repeat: 3, warmup: 0.5 },
  quick: { concurrency: [1, 4, 16], duration: 0.5, repeat: 2, warmup: 0.1 },

  options(argv: Argv): Argv {
    return argv.option('namespaces', {
      type: 'string',
      describe: 'comma-separated namespace sets among ipc, uts, pid (joined by +), or none',
      default: IPCUTS_SETS.join(','),
    });
  },

  configs(options) {
    const sets = String(options.namespaces)
      .split(',')
      .filter((s) => s.trim() !== '');
    if (sets.length === 0) throw new UsageError('--namespaces: give at least one namespace set');
    const configs = [...new Set(sets.map(normalizeSet))];
    for (const c of configs) {
      const other = namespacesOf(c).find((ns) => !['ipc', 'uts', 'pid'].includes(ns));
      if (other)
        throw new UsageError(
          `--namespaces: '${other}' is not one of the cheap namespaces (ipc, uts, pid); exp:netns and exp:mntns study it`,
        );
    }
    return configs;
  },

  async preflight(options) {
    requireNamespaces('ipcuts', this.configs(options));
  },

  async measure(point: Point, ctx: RunContext): Promise<Measurement> {
    const result = await churn(
      point,
      ctx,
      { flags: namespaceFlags(namespacesOf(point.config)), useUnshare: true },
      `ipcuts ${point.config}`,
    );
    return { ops: result.ops, seconds: result.seconds, latenciesUs: result.latenciesUs };
  },

  figure(rows: Row[]) {
    return ipcutsFigure(rows);
  },
};
