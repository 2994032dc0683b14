// `--trace`: decides which probe families this machine allows, runs the tracer across a
// sweep, keeps each point's lock and syscall rows, and writes them with their figure.
// Tracing never fails an experiment: what cannot be traced is said once and recorded.
import path from 'node:path';
import { probeTracing, TRACE_FAMILY_NEEDS } from './capabilities.js';
import { writeCsv } from './csv.js';
import { renderFigure } from './figures.js';
import { lockFigure } from './lockFigure.js';
import type { Progress } from './progress.js';
import { Tracer, type LockRow, type SyscallRow, type TraceFamily } from './tracer.js';

export interface TraceInfo {
  requested: TraceFamily[];
  active: TraceFamily[];
  /** family -> why it was not traced */
  unavailable: Record<string, string>;
}

interface PointKey {
  config: string;
  concurrency: number;
  repeat: number;
}

export const LOCK_COLUMNS = ['config', 'concurrency', 'repeat', 'lock', 'kind', 'call_path', 'operation', 'contentions', 'wait_total_us', 'wait_max_us'];
export const SYSCALL_COLUMNS = ['config', 'concurrency', 'repeat', 'syscall', 'calls', 'p50_us', 'p99_us', 'total_us'];

export class TraceSession {
  readonly lockRows: (PointKey & LockRow)[] = [];
  readonly syscallRows: (PointKey & SyscallRow)[] = [];

  private constructor(readonly info: TraceInfo, private tracer: Tracer | undefined) {}

  static async open(requested: TraceFamily[], progress: Progress): Promise<TraceSession> {
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
    let tracer: Tracer | undefined;
    if (info.active.length > 0) {
      try {
        tracer = await Tracer.start(info.active);
      } catch (e) {
        for (const f of info.active) info.unavailable[f] = e instanceof Error ? e.message : String(e);
        info.active = [];
      }
    }
    for (const [family, why] of Object.entries(info.unavailable)) progress.note(`sockbench: not tracing ${family}: ${why}`);
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
  }

  async close(): Promise<void> {
    const tracer = this.tracer;
    this.tracer = undefined;
    await tracer?.stop();
  }

  /** locks.csv and syscalls.csv (".partial" before ".csv" when the run did not complete), and the lock figure. */
  async write(runDir: string, complete: boolean, out: string, experiment: string): Promise<void> {
    const suffix = complete ? '.csv' : '.partial.csv';
    if (this.info.active.includes('locks')) {
      writeCsv(path.join(runDir, `locks${suffix}`), this.lockRows, LOCK_COLUMNS);
      if (complete) await renderFigure(lockFigure(experiment, this.lockRows), out, `${experiment}-locks`);
    }
    if (this.info.active.includes('syscalls')) writeCsv(path.join(runDir, `syscalls${suffix}`), this.syscallRows, SYSCALL_COLUMNS);
  }
}
