// SOCK against what a user would pick instead: the cold start of a no-op Python process in SOCK
// (lean, zygote, warm), bubblewrap, runc, crun, gVisor's runsc and Docker (--network none and
// the default bridge), all on the same Debian base, with a bare `chroot` as the reference. The
// runner goes round every peer once per repetition, so drift hits them alike; c callers each
// start the next process when the last has exited, so the concurrency sweep shows who scales
// and who serialises. Before the sweep each peer runs an isolation probe once, whose facts
// (namespaces, user namespace, seccomp, capabilities, network, kernel) meta.json keeps beside
// the numbers. A peer this host cannot run is measured nowhere and named, with its reason, in
// meta.json's notes.skipped.
import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { reclaimStateDir } from '../../engine/sandbox/gc.js';
import { PrivilegeError } from '../../harness/errors.js';
import { orphansIn, ownedDir, removeOwnedDir, RUN_ROOT } from '../../harness/ownedDirs.js';
import type { Experiment, Measurement, Point, RunContext, Row } from '../../harness/types.js';
import { parseConfigList } from '../configList.js';
import { baseOf, preflightCacheStudy, writeLambda } from '../studyWorker.js';
import { COMMAND_PEERS, CommandPeer, type CommandPeerName, removeLeftovers } from './commandPeers.js';
import { peersFigure } from './figure.js';
import { describeIsolation, type IsolationRow, parseProbe, PROBE_HANDLER, PROBE_SCRIPT } from './isolationProbe.js';
import { paper } from './paper.js';
import { SOCK_MODES, SockPeers, type SockMode } from './sockPeers.js';

const KIND = 'peers';
/** In the order measured within a round: the reference first, then SOCK, then the others. */
export const PEERS = ['bare', ...SOCK_MODES, ...COMMAND_PEERS.filter((p) => p !== 'bare')];

const isSock = (peer: string): peer is SockMode => (SOCK_MODES as readonly string[]).includes(peer);

interface State {
  dir: string;
  command: Map<string, CommandPeer>;
  sock: SockPeers;
  skipped: Record<string, string>;
}

let state: State | undefined;

/** c callers, each starting the next process when its last has exited, until the time is up. */
async function closedLoop(
  concurrency: number,
  seconds: number,
  signal: AbortSignal,
  start: (caller: number) => Promise<{ ms: number; asked: boolean }>,
): Promise<Measurement> {
  const latenciesUs: number[] = [];
  let asked = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const caller = async (i: number) => {
    while (performance.now() < deadline && !signal.aborted) {
      const s = await start(i);
      latenciesUs.push(s.ms * 1000);
      if (s.asked) asked++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => caller(i)));
  if (signal.aborted) throw new Error('interrupted');
  return {
    ops: latenciesUs.length,
    seconds: (performance.now() - t0) / 1000,
    latenciesUs: Float64Array.from(latenciesUs),
    // The share of starts that were the kind the peer is named for (a SOCK warm request that
    // found no kept instance is a cold start, counted but not as asked).
    extra: { as_asked: latenciesUs.length > 0 ? asked / latenciesUs.length : NaN },
  };
}

export const peers: Experiment = {
  name: KIND,
  summary:
    'cold start of a no-op Python process: SOCK (lean, zygote, warm) against bubblewrap, runc, crun, runsc and Docker, with what each isolates',
  paper,
  reproTrace: ['locks'],
  defaults: { concurrency: [1, 2, 5, 10], duration: 3, repeat: 3, warmup: 1 },
  quick: { concurrency: [1, 5], duration: 1, repeat: 1, warmup: 0.5 },

  options(argv: Argv): Argv {
    return argv
      .option('peers', {
        type: 'string',
        default: PEERS.join(','),
        describe: `comma-separated peers among ${PEERS.join(', ')}; bare is the reference the ratios are to`,
      })
      .option('base', {
        type: 'string',
        describe: 'base root file system every peer starts in [default: $SOCK_BASE or /var/lib/sockbench/base]',
      });
  },

  configs(options) {
    return parseConfigList(options.peers, PEERS, '--peers');
  },

  async preflight(options) {
    preflightCacheStudy(KIND, options);
    if (!fs.existsSync(path.join(baseOf(options), 'usr/bin/python3')))
      throw new PrivilegeError(`the base ${baseOf(options)} has no /usr/bin/python3; scripts/setup.sh builds one`);
  },

  async setup(ctx: RunContext) {
    for (const orphan of orphansIn(RUN_ROOT, KIND)) {
      const containers = await removeLeftovers(orphan);
      for (const mode of SOCK_MODES) await reclaimStateDir(path.join(orphan, mode));
      removeOwnedDir(orphan);
      ctx.progress.note(
        `${KIND}: removed ${orphan}${containers ? ` and ${containers} containers` : ''}, left by a run that is gone`,
      );
    }
    const dir = ownedDir(KIND);
    // The peers that drop root (SOCK's handlers run as nobody) still read the registry.
    fs.chmodSync(dir, 0o755);
    const registry = path.join(dir, 'registry');
    writeLambda(registry, 'noop', 'def f(event):\n    return None\n');
    writeLambda(registry, 'probe', PROBE_HANDLER);
    const configs = this.configs(ctx.options);
    state = {
      dir,
      command: new Map(),
      sock: new SockPeers({ dir, base: baseOf(ctx.options), registry }),
      skipped: {},
    };
    const isolation: Record<string, IsolationRow> = {};
    for (const peer of configs) {
      ctx.progress.note(`${KIND}: preparing ${peer} and probing what it isolates`);
      try {
        if (isSock(peer)) {
          const r = await state.sock.request(peer, 0, 1, 'probe');
          isolation[peer] = describeIsolation(parseProbe(peer, r.text));
          continue;
        }
        const p = await CommandPeer.prepare(peer as CommandPeerName, {
          dir,
          base: baseOf(ctx.options),
          say: (line) => ctx.progress.note(line),
        });
        if ('skipped' in p) {
          state.skipped[peer] = p.skipped;
          continue;
        }
        isolation[peer] = describeIsolation(parseProbe(peer, await p.output(PROBE_SCRIPT)));
        state.command.set(peer, p);
      } catch (e) {
        // A peer that refuses to start here (crun on a cgroup v1/v2 hybrid) is skipped with its own words.
        const why = ((e as { stderr?: string }).stderr || (e as Error).message).trim().split('\n').pop()!;
        if (isSock(peer)) throw e;
        state.skipped[peer] = `it refused to start a process here: ${why}`;
      }
    }
    for (const [peer, why] of Object.entries(state.skipped)) ctx.progress.note(`${KIND}: ${peer} skipped: ${why}`);
    ctx.notes.isolation = isolation;
    ctx.notes.skipped = state.skipped;
  },

  async teardown() {
    const s = state;
    state = undefined;
    if (!s) return;
    try {
      await s.sock.stop();
      await removeLeftovers(s.dir);
    } finally {
      removeOwnedDir(s.dir);
    }
  },

  async measure(point: Point, ctx: RunContext): Promise<Measurement[]> {
    const s = state!;
    const seconds = point.duration ?? 3;
    if (isSock(point.config)) {
      const mode = point.config;
      const m = await closedLoop(point.concurrency, seconds, ctx.signal, (i) =>
        s.sock.request(mode, i, point.concurrency),
      );
      await s.sock.settle(mode, ctx.signal);
      return [m];
    }
    const peer = s.command.get(point.config);
    // Skipped: no rows; meta.json's notes.skipped says why.
    if (!peer) return [];
    return [
      await closedLoop(point.concurrency, seconds, ctx.signal, async () => ({ ms: await peer.start(), asked: true })),
    ];
  },

  figure(rows: Row[]) {
    return peersFigure(rows);
  },
};
