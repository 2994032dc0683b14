// What tracing this machine allows, found by attaching real probes (bpf/capabilities/*.bt)
// rather than by reading versions: kernels differ in config (no CONFIG_KPROBES here) and in
// policy (fentry refused with EPERM here) in ways no version number tells.
import { execFile } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { firstOutputLine } from './environment.js';
import { ensureTracefs } from './tracefs.js';

export const PROBE_TYPES = ['tracepoint', 'lockTracepoints', 'kprobe', 'fentry'] as const;
export type ProbeType = (typeof PROBE_TYPES)[number];

export interface ProbeResult {
  ok: boolean;
  /** Why not, in bpftrace's words where it gave any. */
  why?: string;
}

export interface TracingCapabilities {
  root: boolean;
  /** bpftrace's version, e.g. "v0.17.0"; null where it is not installed. */
  bpftrace: string | null;
  tracefs: { path: string; mountedNow: boolean } | { error: string };
  /** /sys/kernel/btf/vmlinux is readable: bpftrace can resolve kernel struct fields. */
  btf: boolean;
  tracepoint: ProbeResult;
  lockTracepoints: ProbeResult;
  kprobe: ProbeResult;
  fentry: ProbeResult;
}

/** What each trace family's program needs from the machine. */
export const TRACE_FAMILY_NEEDS: Record<'locks' | 'syscalls', ('tracepoint' | 'lockTracepoints' | 'btf')[]> = {
  // The lock tracepoints, plus a syscall tracepoint for the harness's point markers.
  locks: ['lockTracepoints', 'tracepoint'],
  // It reads curtask->real_parent, which bpftrace can only resolve from BTF.
  syscalls: ['tracepoint', 'btf'],
};

const PROGRAM_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bpf/capabilities');
const PROGRAM_OF: Record<ProbeType, string> = {
  tracepoint: 'tracepoint.bt',
  lockTracepoints: 'lock-tracepoints.bt',
  kprobe: 'kprobe.bt',
  fentry: 'fentry.bt',
};
// Attaching takes well under a second here, but the four probes compile at once, and in a
// kernels guest under TCG emulation that took over 10 s (bpftrace's LLVM runs emulated too).
// This bounds a bpftrace that hangs compiling or loading, not one that is merely slow.
const PROBE_TIMEOUT_MS = 60_000;

let memo: Promise<TracingCapabilities> | undefined;

/** Probed once per process: the answer does not change while it runs, and each probe takes a moment. */
export function probeTracing(): Promise<TracingCapabilities> {
  return (memo ??= probe());
}

async function probe(): Promise<TracingCapabilities> {
  const root = process.geteuid?.() === 0;
  const version = await firstOutputLine('bpftrace', ['--version']);
  const bpftrace = version ? version.replace(/^bpftrace\s+/, '') : null;
  // Before any probe: without tracefs every tracepoint reads as "not found".
  const tracefs = tracefsState();
  const blocked = !bpftrace ? 'bpftrace not installed' : !root ? 'needs root' : null;
  const results = await Promise.all(
    PROBE_TYPES.map((type): Promise<ProbeResult> =>
      blocked ? Promise.resolve({ ok: false, why: blocked }) : attach(PROGRAM_OF[type]),
    ),
  );
  const [tracepoint, lockTracepoints, kprobe, fentry] = results as [ProbeResult, ProbeResult, ProbeResult, ProbeResult];
  return {
    root,
    bpftrace,
    tracefs,
    btf: readable('/sys/kernel/btf/vmlinux'),
    tracepoint,
    lockTracepoints,
    kprobe,
    fentry,
  };
}

function tracefsState(): TracingCapabilities['tracefs'] {
  try {
    return ensureTracefs();
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function readable(file: string): boolean {
  try {
    accessSync(file, fsConstants.R_OK);
    return true;
  } catch {
    return false;
  }
}

function attach(program: string): Promise<ProbeResult> {
  return new Promise((resolve) => {
    execFile(
      'bpftrace',
      ['-B', 'none', path.join(PROGRAM_DIR, program)],
      { timeout: PROBE_TIMEOUT_MS },
      (err, _stdout, stderr) => {
        if (!err) return resolve({ ok: true });
        const timedOut = err.killed && err.signal !== null;
        const why = timedOut
          ? `did not exit within ${PROBE_TIMEOUT_MS / 1000} s`
          : (bpftraceComplaint(stderr) ?? `bpftrace exited with status ${err.code}`);
        resolve({ ok: false, why });
      },
    );
  });
}

/**
 * The line of bpftrace's stderr that says what went wrong, or null where it said nothing.
 * Skipped: the RLIMIT_MEMLOCK line (harmless: kernels since 5.11 charge BPF memory to the
 * memory cgroup, not to the rlimit), "Attaching N probes...", and the echoed source line with
 * its ~~~ underline. A WARNING is taken only when no other line is left: for a kprobe on a
 * kernel without CONFIG_KPROBES it says "not traceable", while the line after names the cause.
 */
export function bpftraceComplaint(stderr: string): string | null {
  const lines = stderr.split('\n').map((l) => l.trim());
  const kept = lines.filter(
    (l, i) =>
      l !== '' &&
      !l.includes("couldn't set RLIMIT_MEMLOCK") &&
      !/^Attaching \d+ probes?/.test(l) &&
      !/^~+$/.test(l) &&
      !/^~+$/.test(lines[i + 1] ?? ''),
  );
  // "file.bt:1-7: " or "stdin:1:1-20: " locates the complaint in the program; the reader wants the complaint.
  const bare = kept.map((l) => l.replace(/^[^\s:]+(?::\d+(?:-\d+)?)+:\s*/, '').replace(/^ERROR:\s*/, ''));
  return bare.find((l) => !l.startsWith('WARNING:')) ?? bare[0] ?? null;
}
