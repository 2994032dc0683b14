// `--trace`: decides which probe families this machine allows, runs the tracer across a
// sweep, keeps each point's lock and syscall rows, and writes them with their figure.
// Tracing never fails an experiment: what cannot be traced is said once and recorded.
import path from 'node:path';
import { probeTracing, TRACE_FAMILY_NEEDS } from './capabilities.js';
import { writeCsv } from './csv.js';
import { renderFigure } from './figures.js';
import { lockFigure } from './lockFigure.js';
import type { Progress } from './progress.js';
import { LOCK_COLUMNS, SPIN_SAMPLE_EVERY, Tracer, type LockRow, type SyscallRow, type TraceFamily } from './tracer.js';

export interface TraceInfo {
  requested: TraceFamily[];
  active: TraceFamily[];
  /** family -> why it was not traced */
  unavailable: Record<string, string>;
  /** locks: one spinlock or rwlock contention in this many is timed; locks.csv scales them back up. */
  spin_sample_every?: number;
}

interface PointKey {
  config: string;
  concurrency: number;
  repeat: number;
  /** The point's params (host_mounts, ...), each a column after concurrency. */
  [param: string]: string | number;
}

const SYSCALL_COLUMNS = ['config', 'concurrency', 'repeat', 'syscall', 'calls', 'p50_us', 'p99_us', 'total_us'];
const PROBE_COST_COLUMNS = ['config', 'concurrency', 'repeat', 'probe_runs', 'probe_cpu_ms'];

export interface ProbeCostRow extends PointKey {
  probe_runs: number;
  probe_cpu_ms: number;
}

export class TraceSession {
  readonly lockRows: (PointKey & LockRow)[] = [];
  readonly syscallRows: (PointKey & SyscallRow)[] = [];
  /** What the probes cost per point; only measured while BPF run-time stats are on (bench:trace-overhead). */
  readonly costRows: ProbeCostRow[] = [];

  private constructor(
    readonly info: TraceInfo,
    private tracer: Tracer | undefined,
  ) {}

  static async open(
    requested: TraceFamily[],
    progress: Progress,
    spinSampleEvery = SPIN_SAMPLE_EVERY,
  ): Promise<TraceSession> {
    const info: TraceInfo = { requested, active: [], unavailable: {} };
    if (requested.length === 0) return new TraceSession(info, undefined);
    const caps = await probeTracing();
    if ('mountedNow' in caps.tracefs && caps.tracefs.mountedNow) {
      progress.note(`sockbench: mounted tracefs at ${caps.tracefs.path} (it was not mounted; tracepoints need it)`);
    }
    for (const family of requested) {
      const missing = TRACE_FAMILY_NEEDS[family].find((need) => (need === 'btf' ? !caps.btf : !caps[need].ok));
      if (missing === undefined) info.active.push(family);
      else if (missing === 'btf') info.unavailable[family] = 'no kernel BTF (/sys/kernel/btf/vmlinux)';
      else info.unavailable[family] = caps[missing].why ?? `${missing} probes refused`;
    }
    if (info.active.includes('locks')) info.spin_sample_every = spinSampleEvery;
    let tracer: Tracer | undefined;
    if (info.active.length > 0) {
      try {
        tracer = await Tracer.start(info.active, spinSampleEvery);
      } catch (e) {
        for (const f of info.active) info.unavailable[f] = e instanceof Error ? e.message : String(e);
        info.active = [];
        delete info.spin_sample_every;
      }
    }
    for (const [family, why] of Object.entries(info.unavailable))
      progress.note(`sockbench: not tracing ${family}: ${why}`);
    return new TraceSession(info, tracer);
  }

  /** Starts a point's interval: whatever was seen since the last cut (warm-up, setup) is dropped. */
  async begin(): Promise<void> {
    await this.tracer?.cut();
  }

  /** Ends a point's interval and keeps its rows. */
  async end(key: PointKey): Promise<void> {
    if (!this.tracer) return;
    const t = await this.tracer.cut();
    for (const r of t.locks ?? []) this.lockRows.push({ ...key, ...r });
    for (const r of t.syscalls ?? []) this.syscallRows.push({ ...key, ...r });
    if (t.cost.runTimeNs > 0)
      this.costRows.push({ ...key, probe_runs: t.cost.runs, probe_cpu_ms: t.cost.runTimeNs / 1e6 });
  }

  async close(): Promise<void> {
    const tracer = this.tracer;
    this.tracer = undefined;
    await tracer?.stop();
  }

  /** locks.csv, syscalls.csv, probe-cost.csv when measured (".partial" before ".csv" when the run did not complete), and the lock figure. */
  async write(
    runDir: string,
    complete: boolean,
    out: string,
    experiment: string,
    params: string[] = [],
  ): Promise<void> {
    const suffix = complete ? '.csv' : '.partial.csv';
    const withParams = (columns: string[]) => [...columns.slice(0, 2), ...params, ...columns.slice(2)];
    if (this.info.active.includes('locks')) {
      writeCsv(path.join(runDir, `locks${suffix}`), this.lockRows, withParams(LOCK_COLUMNS));
      if (complete) await renderFigure(lockFigure(experiment, this.lockRows), out, `${experiment}-locks`);
    }
    if (this.info.active.includes('syscalls'))
      writeCsv(path.join(runDir, `syscalls${suffix}`), this.syscallRows, withParams(SYSCALL_COLUMNS));
    if (this.costRows.length > 0)
      writeCsv(path.join(runDir, `probe-cost${suffix}`), this.costRows, withParams(PROBE_COST_COLUMNS));
  }
}
