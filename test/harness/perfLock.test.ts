// Our names for lock waits against perf's: one real netns churn (five namespaces, c=16) traced at
// once by the harness's tracer (bpf/locks.bt, stacks resolved by harness/attribution.ts) and by
// `perf lock record` + `perf lock contention`. The heaviest waits must be the same call paths,
// starting at the same function where the lock is taken, with close totals.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { probeTracing } from '../../harness/capabilities.js';
import type { LockRow } from '../../harness/tracer.js';
import { CLI, skipWith } from '../helpers/helpers.js';

const run = promisify(execFile);
const TRACED = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../helpers/tracedLocks.js');

/** The heaviest waits compared: the issue that prompted this test saw the two tools disagree on the first. */
const TOP = 3;
/**
 * How far apart a path's two totals may be. The tools time the same waits, each with its own
 * clock reads, and locks.bt times one spinlock or rwlock wait in 8 and scales their sum up. On
 * the development VM the heaviest paths' totals were within 1% of each other.
 */
const FACTOR = 1.1;

/** Why perf and bpftrace cannot both trace lock contention here, or undefined where they can. */
async function whyNot(): Promise<string | undefined> {
  if (process.geteuid?.() !== 0) return 'needs root: perf and bpftrace trace every task';
  const lockTracepoints = (await probeTracing()).lockTracepoints;
  if (!lockTracepoints.ok) return `bpftrace cannot attach the lock tracepoints: ${lockTracepoints.why}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-perflock-'));
  try {
    // Record and report once, briefly: a perf too old for this kernel, or Debian's wrapper
    // without a perf for it, fails here rather than in the middle of the test.
    await run('perf', ['lock', 'record', '-o', path.join(dir, 'probe.data'), '--', 'true']);
    await run('perf', ['lock', 'contention', '-i', path.join(dir, 'probe.data')]);
    return undefined;
  } catch (e) {
    const err = e as { code?: unknown; stderr?: string; message: string };
    if (err.code === 'ENOENT') return 'perf is not installed (Debian package linux-perf)';
    return `perf lock cannot run here: ${err.stderr?.trim().split('\n').pop() || err.message}`;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Total wait in µs by call path, heaviest first. */
type Waits = [path: string, waitUs: number][];

function heaviest(byPath: Map<string, number>): Waits {
  return [...byPath].sort((a, b) => b[1] - a[1]);
}

const US_PER: Record<string, number> = { ns: 1e-3, us: 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 };
const functionOf = (frame: string) => frame.replace(/\+0x[0-9a-f]+$/, '');

/**
 * `perf lock contention -v` (it reports on stderr): per entry a line ending in its type and
 * caller, then its stack, innermost first. A path is the caller's frame and the two above it,
 * as ours is the first three frames that are not locking machinery.
 */
function perfWaits(report: string): Waits {
  const byPath = new Map<string, number>();
  let entry: { waitUs: number; caller: string; frames: string[] } | undefined;
  const add = () => {
    if (!entry) return;
    const from = Math.max(0, entry.frames.indexOf(entry.caller));
    const frames = entry.frames.length > 0 ? entry.frames.slice(from, from + 3) : [entry.caller];
    const p = frames.map(functionOf).join(' <- ');
    byPath.set(p, (byPath.get(p) ?? 0) + entry.waitUs);
  };
  for (const line of report.split('\n')) {
    const head = /^\s*\d+\s+([\d.]+) (ns|us|ms|s|m|h)\s+[\d.]+ \w+\s+[\d.]+ \w+\s+\S+\s+(\S+)\s*$/.exec(line);
    const frame = /^\t+0x[0-9a-f]+\s+(\S+)\s*$/.exec(line);
    if (head) {
      add();
      entry = { waitUs: Number(head[1]) * US_PER[head[2]!]!, caller: head[3]!, frames: [] };
    } else if (frame && entry) {
      entry.frames.push(frame[1]!);
    }
  }
  add();
  return heaviest(byPath);
}

const show = (w: Waits) => w.map(([p, us]) => `${p}: ${(us / 1000).toFixed(0)} ms`).join('; ');

skipWith(await whyNot())(
  'a netns churn: the heaviest lock waits have the same call paths and totals under perf lock contention',
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-perflock-'));
    try {
      const data = path.join(dir, 'perf.data');
      const rowsFile = path.join(dir, 'locks.json');
      const [ctl, ack] = [path.join(dir, 'ctl'), path.join(dir, 'ack')];
      await run('mkfifo', [ctl, ack]);
      // perf outside, our tracer inside (TRACED), which switches perf on and off at its own cuts:
      // the two count the same waits, those that end between the cuts.
      await run(
        'perf',
        // -a: a namespace's teardown runs in kernel workers, outside the study's processes.
        ['lock', 'record', '-a', '-D', '-1', '--control', `fifo:${ctl},${ack}`, '-o', data, '--'].concat(
          [process.execPath, TRACED, rowsFile, ctl, ack, '--'],
          [process.execPath, CLI, 'run', 'netns', '--namespaces', 'ipc+mnt+net+pid+uts', '--concurrency', '16'],
          ['--duration', '2', '--repeat', '1', '--warmup', '0', '--out', dir],
        ),
        { env: { ...process.env, CI: 'true' }, timeout: 120_000 },
      );
      const byPath = new Map<string, number>();
      for (const r of JSON.parse(fs.readFileSync(rowsFile, 'utf8')) as LockRow[]) {
        // Waits under the stack threshold have no path in ours; perf counts them in theirs, where
        // they are a sliver of the heaviest paths' totals.
        if (r.operation === '(short waits)') continue;
        byPath.set(r.call_path, (byPath.get(r.call_path) ?? 0) + r.wait_total_us);
      }
      const ours = heaviest(byPath);
      // --stack-skip 0: perf's default skips the first 3 frames blindly, as if they were always
      // locking machinery. On this kernel rtnl_lock, mutex_lock and __mutex_lock_slowpath end in
      // jumps and leave no frame, so it skips the function that takes the lock and its caller,
      // and names setup_net+0x6e, the return from setup_net's call to ops_init. With 0, perf's
      // own test (the frame is in the kernel's sched or lock text) finds the caller.
      const { stderr } = await run('perf', ['lock', 'contention', '-i', data, '--stack-skip', '0', '-v'], {
        maxBuffer: 64 << 20,
      });
      const perf = perfWaits(stderr);
      const both = `ours: ${show(ours.slice(0, TOP))}\nperf: ${show(perf.slice(0, TOP))}`;
      assert.ok(ours.length >= TOP && perf.length >= TOP, both);
      assert.equal(
        ours.slice(0, TOP).map(([p]) => p),
        perf.slice(0, TOP).map(([p]) => p),
        `the same heaviest paths, in the same order\n${both}`,
      );
      for (const [p, us] of ours.slice(0, TOP)) {
        const theirs = perf.find(([q]) => q === p)![1];
        assert.ok(us <= theirs * FACTOR && theirs <= us * FACTOR, `${p}: totals within ${FACTOR}x\n${both}`);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test.run();
