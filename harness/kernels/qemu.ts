// Boots one guest with qemu-system-x86_64: the kernel, our initramfs, the host's root shared
// read-only over 9p and the output directory shared writable. The serial console is streamed
// line by line (to the user, with a prefix, and to a log file). KVM is tried first where
// /dev/kvm exists, with a short deadline for the guest's init to speak; a guest that hangs
// there, or a qemu that dies, falls back to TCG software emulation.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import readline from 'node:readline';

export const QEMU = 'qemu-system-x86_64';
/** What the guest's init prints first (harness/kernels/guest-init.sh). */
const INIT_MARKER = 'sockbench-guest: init on ';

export type Accel = 'kvm' | 'tcg';

export interface Share {
  tag: string;
  path: string;
  readonly: boolean;
}

export interface BootSpec {
  vmlinuz: string;
  initrd: string;
  append: string;
  memoryMb: number;
  cpus: number;
  shares: Share[];
  /** Whole boot, studies included. */
  timeoutMs: number;
  /** Each console line (ANSI and carriage returns removed), as it arrives; stderr lines of qemu itself start with "qemu: ". */
  onLine: (line: string) => void;
  signal: AbortSignal;
  /** Where qemu's pid is written, so that the next run can stop a qemu whose owner was killed. */
  pidFile: string;
}

export interface BootResult {
  accel: Accel;
  outcome: 'exited' | 'timeout' | 'no-init' | 'aborted';
  /** qemu's exit code, or the signal that ended it. */
  exit: number | string | null;
  /** The release the guest's init reported, when it got that far. */
  release?: string;
  /** Lines of the guest that start with "sockbench-guest: error:". */
  errors: string[];
  /** qemu's own complaints (stderr). */
  qemuErrors: string[];
  seconds: number;
}

function qemuArgs(spec: BootSpec, accel: Accel): string[] {
  return [
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-monitor',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
    '-m',
    String(spec.memoryMb),
    '-smp',
    String(spec.cpus),
    '-kernel',
    spec.vmlinuz,
    '-initrd',
    spec.initrd,
    '-append',
    spec.append,
    // qemu's option syntax: a comma inside a value is written twice.
    ...spec.shares.flatMap((s) => [
      '-virtfs',
      `local,path=${s.path.replaceAll(',', ',,')},mount_tag=${s.tag},security_model=passthrough,multidevs=remap${s.readonly ? ',readonly=on' : ''}`,
    ]),
  ];
}

/** Boots once with the given accelerator; with initDeadlineMs, gives up when the init has not spoken by then. */
function bootOnce(spec: BootSpec, accel: Accel, initDeadlineMs?: number): Promise<BootResult> {
  const started = Date.now();
  // Its own process group: the terminal's Ctrl-C goes to us, and we stop qemu (and say so).
  const child = spawn(QEMU, qemuArgs(spec, accel), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (child.pid !== undefined) fs.writeFileSync(spec.pidFile, `${child.pid}\n`);
  const result: BootResult = { accel, outcome: 'exited', exit: null, errors: [], qemuErrors: [], seconds: 0 };
  let ended = false;
  const stop = (outcome: BootResult['outcome']) => {
    if (ended) return;
    result.outcome = outcome;
    killGroup(child);
  };
  const lines = (stream: NodeJS.ReadableStream, onLine: (l: string) => void) => {
    readline.createInterface({ input: stream, crlfDelay: Infinity }).on('line', (l) => onLine(clean(l)));
  };
  lines(child.stdout!, (line) => {
    const at = line.indexOf(INIT_MARKER);
    if (at >= 0 && result.release === undefined) {
      result.release = line.slice(at + INIT_MARKER.length).trim();
      clearTimeout(initTimer);
    }
    const err = line.indexOf('sockbench-guest: error:');
    if (err >= 0) result.errors.push(line.slice(err + 'sockbench-guest: error:'.length).trim());
    spec.onLine(line);
  });
  lines(child.stderr!, (line) => {
    if (!line.trim()) return;
    result.qemuErrors.push(line);
    spec.onLine(`qemu: ${line}`);
  });
  const initTimer = initDeadlineMs === undefined ? undefined : setTimeout(() => stop('no-init'), initDeadlineMs);
  const timer = setTimeout(() => stop('timeout'), spec.timeoutMs);
  const onAbort = () => stop('aborted');
  spec.signal.addEventListener('abort', onAbort);
  if (spec.signal.aborted) onAbort();
  return new Promise((resolve) => {
    const finish = (exit: number | string | null) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      clearTimeout(initTimer);
      spec.signal.removeEventListener('abort', onAbort);
      result.exit = exit;
      // A qemu that died before the init spoke (e.g. KVM refusing the CPU model) counts as not booting.
      if (result.outcome === 'exited' && result.release === undefined && initDeadlineMs !== undefined)
        result.outcome = 'no-init';
      result.seconds = (Date.now() - started) / 1000;
      resolve(result);
    };
    child.on('error', (e) => {
      result.qemuErrors.push(String(e));
      finish(null);
    });
    child.on('close', (code, sig) => finish(code ?? sig));
  });
}

/** SIGTERM to qemu's process group, SIGKILL two seconds later if it is still there. */
function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    return;
  }
  setTimeout(() => {
    try {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }, 2000).unref();
}

/** Removes ANSI escapes and carriage returns, which a serial console is full of. */
function clean(line: string): string {
  /* eslint-disable no-control-regex -- these are the escapes to remove */
  return line
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .replace(/\r/g, '')
    .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
  /* eslint-enable no-control-regex */
}

/** Whether this process may use KVM at all. */
function kvmUsable(): boolean {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** vCPUs for a guest: this machine's, up to 4 (the quick studies go to concurrency 16 at most). */
export function guestCpus(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()));
}

/** How long a KVM guest gets to reach its init before it is taken as hung. */
const KVM_INIT_DEADLINE_MS = 20_000;
/** The same under emulation, only to fail a kernel that cannot boot long before the whole timeout. */
const TCG_INIT_DEADLINE_MS = 180_000;

/** Remembers across kernels of one run that KVM did not work here, so each kernel does not wait for it again. */
export interface AccelMemory {
  kvmFailure?: string;
}

/**
 * Boots with the accelerator asked for. `auto`: KVM where /dev/kvm is usable and has not
 * already failed in this run, TCG when KVM does not reach the init in time (said through note).
 */
export async function boot(
  spec: BootSpec,
  choice: 'auto' | Accel,
  memory: AccelMemory,
  note: (s: string) => void,
): Promise<BootResult & { fallback?: string }> {
  if (choice === 'tcg') return bootOnce(spec, 'tcg', TCG_INIT_DEADLINE_MS);
  if (choice === 'kvm') return bootOnce(spec, 'kvm', KVM_INIT_DEADLINE_MS);
  if (!kvmUsable()) {
    memory.kvmFailure ??= '/dev/kvm is absent or not usable';
    return { ...(await bootOnce(spec, 'tcg', TCG_INIT_DEADLINE_MS)), fallback: memory.kvmFailure };
  }
  if (memory.kvmFailure) {
    note(`kernels: KVM did not work earlier in this run (${memory.kvmFailure}): software emulation (TCG)`);
    return { ...(await bootOnce(spec, 'tcg', TCG_INIT_DEADLINE_MS)), fallback: memory.kvmFailure };
  }
  const kvm = await bootOnce(spec, 'kvm', KVM_INIT_DEADLINE_MS);
  if (kvm.outcome !== 'no-init') return kvm;
  const why =
    kvm.exit !== null && kvm.seconds * 1000 < KVM_INIT_DEADLINE_MS
      ? `qemu with KVM exited (${kvm.exit}) before the guest's init ran${kvm.qemuErrors.length ? `: ${kvm.qemuErrors.at(-1)}` : ''}`
      : `the KVM guest did not reach its init within ${KVM_INIT_DEADLINE_MS / 1000} s (hung)`;
  memory.kvmFailure = why;
  note(
    `kernels: ${why}; falling back to software emulation (TCG): these results are marked emulated, and far slower than the hardware`,
  );
  return { ...(await bootOnce(spec, 'tcg', TCG_INIT_DEADLINE_MS)), fallback: why };
}

/**
 * Stops the qemu of a run that was killed outright (its owned directory is left behind, holding
 * qemu.pid): only a process whose command line names that directory (its initrd is there).
 */
export function stopOrphanQemu(ownedDir: string): boolean {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(`${ownedDir}/qemu.pid`, 'utf8').trim());
  } catch {
    return false;
  }
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(`${ownedDir}/`)) return false;
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}
