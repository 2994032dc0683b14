// Runs the bpf/ programs beside an experiment and cuts their output at sweep points.
//
// One bpftrace child per probe family, with JSON output. The programs keep their maps until
// the harness calls close(MARK + n), a syscall they watch for from this process only: then
// they print and clear the maps between "sockbench-mark n" and "sockbench-end n" lines. So a
// point's numbers are exactly what happened between two marks, with no restart of bpftrace.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { attribute, Kallsyms, LOCK_FLAG_MUTEX, LOCK_FLAG_SPIN, lockKind } from './attribution.js';
import { bpftraceComplaint } from './capabilities.js';

export const TRACE_FAMILIES = ['locks', 'syscalls'] as const;
export type TraceFamily = (typeof TRACE_FAMILIES)[number];

/** close() of an fd this high is a mark, never a real file; the programs get it as their $2. */
const MARK_BASE = 0x7f000000;
const BPF_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bpf');
const ATTACH_TIMEOUT_MS = 60_000;
const FLUSH_TIMEOUT_MS = 30_000;
/**
 * Waits shorter than this are counted and summed by lock kind without a stack: walking the
 * stack of every microsecond spin made tracing cost up to a third of the rate it explains.
 */
const LOCK_STACK_THRESHOLD_US = 10;
/**
 * locks.bt times one spinlock or rwlock contention in this many, at random, and the harness
 * scales their counts and sums back up. Timing all of them cost up to 6% of the CPU and up to a
 * fifth of the netns rate (bench:trace-overhead, paper-repro.md): spins are ~99% of
 * contentions, and each timing is two clock reads, a map insert and a delete. Mutex waits, even
 * those that only spin, and rwsem waits are always all timed: a mutex wait that sleeps begins
 * with a spin, and without it the netns study's heaviest mutex waits read 2-18% below perf
 * lock contention's totals for the same waits.
 */
export const SPIN_SAMPLE_EVERY = 8;

/**
 * The maps each program prints at every mark, by family: the only ones the harness reads, and
 * the contract with bpf/*.bt (which cannot import this and spells the names itself).
 */
export const BPF_MAPS = {
  locks: {
    count: '@count',
    waitNs: '@wait_ns',
    maxNs: '@max_ns',
    lockHi: '@lock_hi',
    lockLo: '@lock_lo',
    shortCount: '@short_count',
    shortWaitNs: '@short_wait_ns',
    shortMaxNs: '@short_max_ns',
  },
  syscalls: {
    latencyNs: '@latency_ns',
    calls: '@calls',
    totalNs: '@total_ns',
  },
} as const satisfies Record<TraceFamily, Record<string, `@${string}`>>;

/** What one family's maps held at one mark: map name -> key -> value (a number, or hist buckets). */
export type Snapshot = Record<string, Record<string, unknown>>;

interface BpftraceEvent {
  type: string;
  data: unknown;
}

/**
 * Reads a program's JSON lines and cuts them into snapshots: the maps printed between
 * "sockbench-mark n" and "sockbench-end n" belong to mark n.
 */
export class MarkStream {
  private readonly done = new Map<number, Snapshot>();
  private current: { mark: number; maps: Snapshot } | undefined;

  /** 'attached' for bpftrace's attach line, the mark number when one completes, else undefined. */
  feed(line: string): 'attached' | number | undefined {
    if (!line.trim()) return undefined;
    let event: BpftraceEvent;
    try {
      event = JSON.parse(line) as BpftraceEvent;
    } catch {
      return undefined; // bpftrace's text warnings can land on stdout; they carry no data
    }
    if (event.type === 'attached_probes') return 'attached';
    if (event.type === 'printf' && typeof event.data === 'string') {
      const m = /^sockbench-(mark|end) (\d+)/.exec(event.data);
      if (!m) return undefined;
      const n = Number(m[2]);
      if (m[1] === 'mark') {
        this.current = { mark: n, maps: {} };
      } else if (this.current?.mark === n) {
        this.done.set(n, this.current.maps);
        this.current = undefined;
        return n;
      }
      return undefined;
    }
    if ((event.type === 'map' || event.type === 'hist' || event.type === 'stats') && this.current) {
      Object.assign(this.current.maps, event.data as Snapshot);
    }
    return undefined;
  }

  has(mark: number): boolean {
    return this.done.has(mark);
  }

  take(mark: number): Snapshot {
    const s = this.done.get(mark)!;
    this.done.delete(mark);
    return s;
  }
}

/** One bpftrace process running one program. */
class ProbeProcess {
  private readonly child: ChildProcess;
  private readonly stream = new MarkStream();
  private waiters = new Map<number, () => void>();
  private stderr = '';
  private exited: Promise<void>;

  constructor(
    readonly family: TraceFamily,
    harnessPid: number,
    spinSampleEvery: number,
  ) {
    const program = path.join(BPF_DIR, `${family}.bt`);
    const args = [String(harnessPid), String(MARK_BASE)];
    if (family === 'locks') args.push(String(LOCK_STACK_THRESHOLD_US * 1000), String(spinSampleEvery));
    this.child = spawn('bpftrace', ['-B', 'none', '-f', 'json', program, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: a terminal's Ctrl-C is for the harness, which stops bpftrace
      // itself once the current point is cut. (The program exits with the harness anyway.)
      detached: true,
      // Room for every distinct stack of a busy point; past the limit updates are lost silently.
      env: { ...process.env, BPFTRACE_MAP_KEYS_MAX: '65536' },
    });
    this.exited = new Promise((resolve) => this.child.on('exit', () => resolve()));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    readline.createInterface({ input: this.child.stdout! }).on('line', (line) => this.onLine(line));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get why(): string {
    return bpftraceComplaint(this.stderr) ?? 'bpftrace exited';
  }

  attached(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.family}: bpftrace did not attach within ${ATTACH_TIMEOUT_MS / 1000} s`)),
        ATTACH_TIMEOUT_MS,
      );
      this.waiters.set(-1, () => {
        clearTimeout(timer);
        resolve();
      });
      this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.family}: ${this.why}`));
      });
    });
  }

  private onLine(line: string) {
    const event = this.stream.feed(line);
    if (event === 'attached') this.waiters.get(-1)?.();
    else if (typeof event === 'number') this.waiters.get(event)?.();
  }

  snapshot(mark: number): Promise<Snapshot> {
    if (this.stream.has(mark)) return Promise.resolve(this.stream.take(mark));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.family}: no data for mark ${mark} within ${FLUSH_TIMEOUT_MS / 1000} s`)),
        FLUSH_TIMEOUT_MS,
      );
      this.waiters.set(mark, () => {
        clearTimeout(timer);
        this.waiters.delete(mark);
        resolve(this.stream.take(mark));
      });
      this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.family}: bpftrace exited: ${this.why}`));
      });
    });
  }

  /** True once the program has answered mark 0: it is really attached. */
  answeredPing(): boolean {
    return this.stream.has(0) && this.stream.take(0) !== undefined;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface LockRow {
  lock: string;
  kind: string;
  call_path: string;
  operation: string;
  contentions: number;
  wait_total_us: number;
  wait_max_us: number;
}

/** locks.csv's own columns, in order; any other column of a row is a sweep parameter. */
export const LOCK_COLUMNS = [
  'config',
  'concurrency',
  'repeat',
  'lock',
  'kind',
  'call_path',
  'operation',
  'contentions',
  'wait_total_us',
  'wait_max_us',
];
const LOCK_COLUMN_SET = new Set(LOCK_COLUMNS);

/** The columns of a locks.csv row that are sweep parameters (host_mounts, cgroup_version). */
export function lockParams(row: Record<string, unknown> | undefined): string[] {
  return Object.keys(row ?? {}).filter((k) => !LOCK_COLUMN_SET.has(k));
}

export interface SyscallRow {
  syscall: string;
  calls: number;
  p50_us: number;
  p99_us: number;
  total_us: number;
}

/** CPU time the kernel spent running the programs (zero unless BPF run-time stats are on). */
export interface ProbeCost {
  runs: number;
  runTimeNs: number;
}

export interface PointTrace {
  locks?: LockRow[];
  syscalls?: SyscallRow[];
  /** Summed over every family's programs, for the interval this cut ended. */
  cost: ProbeCost;
}

/** run_cnt and run_time_ns of every BPF program a process holds, from its fdinfo. */
function programCost(pid: number): ProbeCost {
  const cost = { runs: 0, runTimeNs: 0 };
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return cost; // already gone
  }
  for (const fd of fds) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf-prog') continue;
      const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      cost.runs += Number(/^run_cnt:\s*(\d+)/m.exec(info)?.[1] ?? 0);
      cost.runTimeNs += Number(/^run_time_ns:\s*(\d+)/m.exec(info)?.[1] ?? 0);
    } catch {
      // the fd closed between readdir and read
    }
  }
  return cost;
}

/** The syscall the programs watch for: close() of an fd that cannot exist. */
function mark(n: number) {
  try {
    fs.closeSync(MARK_BASE + n);
  } catch {
    // EBADF is the point: the programs saw the call.
  }
}

export class Tracer {
  private nextMark = 1;
  private kallsyms: Kallsyms | undefined;
  private costSoFar: ProbeCost = { runs: 0, runTimeNs: 0 };

  private constructor(
    private readonly probes: ProbeProcess[],
    private readonly spinSampleEvery: number,
  ) {}

  /** Starts one bpftrace per family and waits until all have attached; a failure stops them all. */
  static async start(families: TraceFamily[], spinSampleEvery = SPIN_SAMPLE_EVERY): Promise<Tracer> {
    const probes = families.map((f) => new ProbeProcess(f, process.pid, spinSampleEvery));
    try {
      await Promise.all(probes.map((p) => p.attached()));
      // bpftrace 0.17 announces attached_probes before it has attached them all, so ping with
      // mark 0 until every program answers: only then is nothing of the first point missed.
      const waiting = new Set(probes);
      const deadline = performance.now() + ATTACH_TIMEOUT_MS;
      while (waiting.size > 0) {
        if (performance.now() > deadline)
          throw new Error(`${[...waiting][0]!.family}: bpftrace attached but never saw a mark`);
        mark(0);
        await new Promise((r) => setTimeout(r, 20));
        for (const p of waiting) if (p.answeredPing()) waiting.delete(p);
      }
    } catch (e) {
      await Promise.all(probes.map((p) => p.stop()));
      throw e;
    }
    return new Tracer(probes, spinSampleEvery);
  }

  get families(): TraceFamily[] {
    return this.probes.map((p) => p.family);
  }

  /** Ends the current interval and returns what every family saw during it. */
  async cut(): Promise<PointTrace> {
    const n = this.nextMark++;
    mark(n);
    const total = this.probes
      .map((p) => programCost(p.pid))
      .reduce((a, b) => ({ runs: a.runs + b.runs, runTimeNs: a.runTimeNs + b.runTimeNs }));
    const out: PointTrace = {
      cost: { runs: total.runs - this.costSoFar.runs, runTimeNs: total.runTimeNs - this.costSoFar.runTimeNs },
    };
    this.costSoFar = total;
    for (const p of this.probes) {
      const snap = await p.snapshot(n);
      if (p.family === 'locks') out.locks = lockRows(snap, (this.kallsyms ??= Kallsyms.load()), this.spinSampleEvery);
      else out.syscalls = syscallRows(snap);
    }
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all(this.probes.map((p) => p.stop()));
  }
}

/**
 * A point's lock waits, attributed and summed by (lock, kind, call path), heaviest first.
 * spinSampleEvery is the program's $4: spinlock and rwlock waits' counts and sums are scaled by
 * it, so they are estimates; their maximum is the largest seen among the timed ones.
 */
export function lockRows(snap: Snapshot, kallsyms: Kallsyms, spinSampleEvery: number): LockRow[] {
  const sampled = (flags: number) => (flags & LOCK_FLAG_SPIN) !== 0 && (flags & LOCK_FLAG_MUTEX) === 0;
  const scale = (flags: number) => (sampled(flags) ? spinSampleEvery : 1);
  const maps = BPF_MAPS.locks;
  const count = snap[maps.count] ?? {};
  const waitNs = snap[maps.waitNs] ?? {};
  const maxNs = snap[maps.maxNs] ?? {};
  const hi = snap[maps.lockHi] ?? {};
  const lo = snap[maps.lockLo] ?? {};
  const rows = new Map<string, LockRow>();
  for (const [key, n] of Object.entries(count)) {
    const parsed = parseLockKey(key);
    if (!parsed) continue;
    const lockAddr = (BigInt(Number(hi[key] ?? 0)) << 32n) | BigInt(Number(lo[key] ?? 0));
    const a = attribute(parsed.stack, lockAddr, parsed.flags, kallsyms);
    const id = `${a.lock}\0${a.kind}\0${a.callPath}`;
    const row = rows.get(id) ?? {
      lock: a.lock,
      kind: a.kind,
      call_path: a.callPath,
      operation: a.operation,
      contentions: 0,
      wait_total_us: 0,
      wait_max_us: 0,
    };
    row.contentions += Number(n) * scale(parsed.flags);
    row.wait_total_us += (Number(waitNs[key] ?? 0) * scale(parsed.flags)) / 1000;
    row.wait_max_us = Math.max(row.wait_max_us, Number(maxNs[key] ?? 0) / 1000);
    rows.set(id, row);
  }
  const shortCount = snap[maps.shortCount] ?? {};
  const shortWait = snap[maps.shortWaitNs] ?? {};
  const shortMax = snap[maps.shortMaxNs] ?? {};
  for (const [flags, n] of Object.entries(shortCount)) {
    const kind = lockKind(Number(flags));
    rows.set(`short\0${kind}`, {
      lock: `${kind} (waits under ${LOCK_STACK_THRESHOLD_US} µs)`,
      kind,
      call_path: `(no stack: waits under ${LOCK_STACK_THRESHOLD_US} µs)`,
      operation: '(short waits)',
      contentions: Number(n) * scale(Number(flags)),
      wait_total_us: (Number(shortWait[flags] ?? 0) * scale(Number(flags))) / 1000,
      wait_max_us: Number(shortMax[flags] ?? 0) / 1000,
    });
  }
  return [...rows.values()].sort((a, b) => b.wait_total_us - a.wait_total_us);
}

/** A locks.bt map key: "<stack>,<flags>" (bpftrace joins tuple keys with commas). */
export function parseLockKey(key: string): { stack: string; flags: number } | undefined {
  const m = /^([\s\S]*),(\d+)$/.exec(key);
  if (!m) return undefined;
  return { stack: m[1]!, flags: Number(m[2]) };
}

interface Bucket {
  min?: number;
  max?: number;
  count: number;
}

/** A percentile from log2 histogram buckets, interpolated linearly inside its bucket. */
export function histPercentile(buckets: Bucket[], q: number): number {
  const total = buckets.reduce((s, b) => s + b.count, 0);
  if (total === 0) return NaN;
  const target = q * total;
  let seen = 0;
  for (const b of buckets) {
    if (b.count > 0 && seen + b.count >= target) {
      const lo = b.min ?? 0;
      const hi = (b.max ?? lo) + 1;
      return lo + ((target - seen) / b.count) * (hi - lo);
    }
    seen += b.count;
  }
  const last = buckets[buckets.length - 1]!;
  return last.max ?? last.min ?? NaN;
}

export function syscallRows(snap: Snapshot): SyscallRow[] {
  const maps = BPF_MAPS.syscalls;
  const hists = (snap[maps.latencyNs] ?? {}) as Record<string, Bucket[]>;
  const calls = snap[maps.calls] ?? {};
  const total = snap[maps.totalNs] ?? {};
  return Object.keys(calls)
    .map((probe) => ({
      syscall: probe.replace(/^tracepoint:syscalls:sys_exit_/, ''),
      calls: Number(calls[probe]),
      p50_us: histPercentile(hists[probe] ?? [], 0.5) / 1000,
      p99_us: histPercentile(hists[probe] ?? [], 0.99) / 1000,
      total_us: Number(total[probe] ?? 0) / 1000,
    }))
    .sort((a, b) => a.syscall.localeCompare(b.syscall));
}
