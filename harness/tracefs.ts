// Tracepoints need tracefs: bpftrace reads each tracepoint's format from it, and without it
// answers "tracepoint not found" even for tracepoints the kernel has. Fresh machines here boot
// with neither tracefs nor debugfs mounted, so the harness mounts it itself.
import { readFileSync } from 'node:fs';
import { mount } from '../native/index.js';
import { PrivilegeError } from './errors.js';
import { readMounts } from '../engine/state/mountinfo.js';

const TRACEFS = '/sys/kernel/tracing';
// Where debugfs exposes it on older setups; bpftrace looks there too.
const DEBUGFS_TRACEFS = '/sys/kernel/debug/tracing';

/** Where tracefs is mounted, mounting it at /sys/kernel/tracing first when it is nowhere. */
export function ensureTracefs(): { path: string; mountedNow: boolean } {
  const mounted = readMounts().find(
    (m) => m.fsType === 'tracefs' && (m.mountPoint === TRACEFS || m.mountPoint === DEBUGFS_TRACEFS),
  );
  if (mounted) return { path: mounted.mountPoint, mountedNow: false };
  if (!kernelHasTracefs())
    throw new PrivilegeError('tracefs is not in this kernel (CONFIG_TRACING off): no tracepoints to attach to');
  try {
    mount('nodev', TRACEFS, 'tracefs', 0);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'EPERM' || code === 'EACCES')
      throw new PrivilegeError(`tracefs is not mounted and mounting it on ${TRACEFS} needs root`);
    throw new PrivilegeError(`cannot mount tracefs on ${TRACEFS}: ${(e as Error).message}`);
  }
  return { path: TRACEFS, mountedNow: true };
}

function kernelHasTracefs(): boolean {
  try {
    return /\ttracefs$/m.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    // No /proc: let the mount itself say what is wrong.
    return true;
  }
}
