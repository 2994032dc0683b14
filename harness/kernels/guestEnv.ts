// What the guest's init is told (sockbench.env): where things are, what to run, and the
// host's cgroup layout to copy, so the studies find cgroups where they find them here.
import fs from 'node:fs';
import os from 'node:os';
import { readMounts } from '../../engine/state/mountinfo.js';

export interface GuestPlan {
  repo: string;
  node: string;
  out: string;
  /** 9p tags and the host paths the guest mounts them at, writable. */
  shares: { tag: string; path: string }[];
  /** The kernel's directory in the kernels run (status, release, dmesg go there). */
  runDir: string;
  studies: string[];
  studyArgs: string[];
  exec?: string;
  /** lib/modules/<release> on the host, seen by the guest through the shared root. */
  modulesDir?: string;
  memoryMb: number;
  /** Size cap of the tmpfs under the writable overlay. */
  overlayMb: number;
  /** host: this machine's cgroup mounts, copied; v2: cgroup2 alone at /sys/fs/cgroup. */
  cgroups: 'host' | 'v2';
}

/** A cgroup v2-only machine as it boots: one cgroup2 mount (with nsdelegate, as systemd mounts it), no controller enabled. */
const V2_ONLY_MOUNTS = 'cgroup2|nsdelegate|/sys/fs/cgroup';

/**
 * Modules the guest loads after boot: veth (netns's teardown sentinels), fuse (storage's
 * fuse-overlayfs), overlay, tun (slirp4netns, the engine's outbound network, opens /dev/net/tun).
 */
const PRELOAD_MODULES = ['veth', 'fuse', 'overlay', 'tun'];
/** 9p message size: larger means fewer round trips per read. */
const MSIZE = 262144;

// Mount flags that are not options for the guest's own mount, and would be wrong there.
const SKIP_OPTIONS = new Set(['rw', 'ro', 'relatime', 'noatime', 'nosuid', 'nodev', 'noexec', 'seclabel']);

/**
 * The host's cgroup mounts (the tmpfs that holds v1 hierarchies, each v1 hierarchy with its
 * controllers, cgroup2), as "type|options|mount point" lines, parents first.
 */
export function cgroupMounts(): string {
  const mounts = readMounts().filter(
    (m) =>
      m.fsType === 'cgroup' || m.fsType === 'cgroup2' || (m.fsType === 'tmpfs' && m.mountPoint === '/sys/fs/cgroup'),
  );
  return mounts
    .sort((a, b) => a.mountPoint.split('/').length - b.mountPoint.split('/').length)
    .map((m) => {
      const opts = m.superOptions.filter(
        (o) =>
          !SKIP_OPTIONS.has(o) && !o.startsWith('size=') && !o.startsWith('nr_inodes=') && !o.startsWith('inode64'),
      );
      // A named v1 hierarchy without controllers (name=systemd) must say none, or the kernel refuses it.
      if (m.fsType === 'cgroup' && opts.every((o) => o.includes('='))) opts.unshift('none');
      return `${m.fsType}|${opts.join(',') || 'defaults'}|${m.mountPoint}`;
    })
    .join('\n');
}

/**
 * The host's namespace limits (/proc/sys/user/max_*_namespaces), as "file=value" lines. A
 * kernel sizes them from its memory, so a 2 GiB guest gets a twelfth of what this machine has
 * (7,815 against 96,365), and a churn whose namespaces are freed late (IPC and PID namespaces
 * go through RCU, slow under emulation) runs into the guest's limit (ENOSPC) and not the host's.
 */
function namespaceLimits(): string {
  const dir = '/proc/sys/user';
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => /^max_[a-z]+_namespaces$/.test(n));
  } catch {
    return '';
  }
  return names
    .flatMap((n) => {
      try {
        return [`${dir}/${n}=${fs.readFileSync(`${dir}/${n}`, 'utf8').trim()}`];
      } catch {
        return [];
      }
    })
    .join('\n');
}

export function guestEnv(plan: GuestPlan): Record<string, string> {
  return {
    SB_MSIZE: String(MSIZE),
    SB_RW_MB: String(plan.overlayMb),
    SB_OUT: plan.out,
    SB_SHARES: plan.shares.map((s) => `${s.tag}|${s.path}`).join('\n'),
    SB_RUN_DIR: plan.runDir,
    SB_REPO: plan.repo,
    SB_NODE: plan.node,
    SB_STUDIES: plan.studies.join(' '),
    SB_STUDY_ARGS: plan.studyArgs.join(' '),
    SB_EXEC: plan.exec ?? '',
    // The same machine, so the same name: compare then names only what really differs.
    SB_HOSTNAME: os.hostname(),
    SB_MODULES_DIR: plan.modulesDir ?? '',
    SB_PRELOAD: PRELOAD_MODULES.join(' '),
    SB_MOUNTS: plan.cgroups === 'v2' ? V2_ONLY_MOUNTS : cgroupMounts(),
    SB_LIMITS: namespaceLimits(),
  };
}

/** The guest kernel's command line. */
export const KERNEL_APPEND = 'console=ttyS0 panic=-1 loglevel=4 rdinit=/init';
