// The network-namespace study (the paper's Figure 1): how many containers per second can be
// created and destroyed with each set of namespaces, as concurrency grows.
import type { Argv } from 'yargs';
import { NAMESPACES, namespaceFlags } from '../../native/index.js';
import { InterruptedError, UsageError } from '../../harness/errors.js';
import type { Experiment, Measurement, Point, RunContext, Row } from '../../harness/types.js';
import { NetnsTeardownProbe, sentinelOnlySeconds } from './teardown.js';
import { netnsFigure } from './figure.js';
import { churn } from '../nativeRun.js';
import { namespacesOf, normalizeSet, requireNamespaces } from '../namespaceSets.js';
import { paper } from './paper.js';

export const DEFAULT_SETS = ['none', 'ipc+mnt+pid+uts', 'ipc+mnt+net+pid+uts', 'net'];

let teardown: NetnsTeardownProbe | undefined;

export const netns: Experiment = {
  name: 'netns',
  summary: 'create+destroy rate of namespace sets against concurrency (paper Figure 1)',
  paper,
  reproTrace: ['locks', 'syscalls'],
  kernelMatrix: 'default',
  plainConfig: 'none',
  defaults: { concurrency: [1, 2, 4, 8, 16, 32, 64], duration: 2, repeat: 3, warmup: 0.5 },
  quick: { concurrency: [1, 4, 16], duration: 0.5, repeat: 2, warmup: 0.1 },

  options(argv: Argv): Argv {
    return argv
      .option('namespaces', {
        type: 'string',
        describe: `comma-separated namespace sets, each names joined by + (${NAMESPACES.join(', ')}) or none`,
        default: DEFAULT_SETS.join(','),
      })
      .option('method', {
        choices: ['unshare', 'clone'],
        default: 'unshare',
        describe:
          'unshare: child calls unshare() after a plain clone, as the paper did; clone: child is born in the namespaces',
      });
  },

  configs(options) {
    const sets = String(options.namespaces)
      .split(',')
      .filter((s) => s.trim() !== '');
    if (sets.length === 0) throw new UsageError('--namespaces: give at least one namespace set');
    return [...new Set(sets.map(normalizeSet))];
  },

  async preflight(options) {
    requireNamespaces('netns', this.configs(options));
  },

  async setup(ctx: RunContext) {
    try {
      ctx.notes.teardown_probe_idle_s = await sentinelOnlySeconds();
      teardown = new NetnsTeardownProbe();
    } catch (e) {
      const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
      ctx.notes.teardown_unavailable = why;
      ctx.progress.note(`netns: cannot watch namespace teardown (${why}); ops_per_sec_with_teardown will be empty`);
    }
  },

  async teardown() {
    await teardown?.disarm();
    teardown = undefined;
  },

  async measure(point: Point, ctx: RunContext): Promise<Measurement> {
    const namespaces = namespacesOf(point.config);
    const watchTeardown = teardown !== undefined && namespaces.includes('net');
    if (watchTeardown) await teardown!.arm();
    let result;
    try {
      result = await churn(
        point,
        ctx,
        { flags: namespaceFlags(namespaces), useUnshare: ctx.options.method === 'unshare' },
        `netns ${point.config}`,
      );
    } catch (e) {
      // Stopped by Ctrl-C, the children still exited normally: let the sentinels see their
      // teardown through. After a failure nothing is sure to finish: disarm.
      if (e instanceof InterruptedError && watchTeardown) await teardown!.wait();
      else await teardown?.disarm();
      throw e;
    }
    // Without net the namespaces are freed before the last child is reaped.
    const teardownSeconds = watchTeardown ? await teardown!.wait() : teardown ? 0 : NaN;
    return {
      ops: result.ops,
      seconds: result.seconds,
      latenciesUs: result.latenciesUs,
      extra: {
        teardown_s: teardownSeconds,
        ops_per_sec_with_teardown: result.ops / (result.seconds + teardownSeconds),
      },
    };
  },

  figure(rows: Row[]) {
    return netnsFigure(rows);
  },
};
