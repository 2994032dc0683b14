import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readMounts } from '../engine/state/mountinfo.js';

const execFileAsync = promisify(execFile);

export type CgroupVersion = 'v1' | 'v2' | 'hybrid' | 'none';

/** The state of the machine that moves the numbers, recorded beside every run's data. */
export interface Environment {
  timestamp: string;
  hostname: string;
  kernel: {
    release: string;
    /** uname -v: build number and date, which tell two builds of one release apart. */
    version: string;
    /** /proc/version also names the compiler the kernel was built with. */
    procVersion: string | null;
  };
  cpu: {
    model: string | null;
    count: number;
    /** cpufreq governor of cpu0; null where cpufreq is absent (many VMs). */
    governor: string | null;
  };
  memoryBytes: number;
  loadavg: [number, number, number];
  cgroup: {
    version: CgroupVersion;
    v1Controllers: string[];
    v2Mount: string | null;
    v2Controllers: string[];
  };
  /** Version line of each tool, null where it is missing or fails. */
  tools: Record<string, string | null>;
  /** null outside a git checkout; commit is null in a repository with no commits yet. */
  git: { commit: string | null; dirty: boolean } | null;
  commandLine: { argv: string[]; cwd: string };
  user: { uid: number | null; euid: number | null };
}

export async function captureEnvironment(commandLine: string[]): Promise<Environment> {
  // Time and load first: the tool probes below take a moment and spawn processes that would
  // raise the load average.
  const timestamp = new Date().toISOString();
  const loadavg = os.loadavg() as [number, number, number];
  const [tools, git] = await Promise.all([toolVersions(), gitState()]);
  return {
    timestamp,
    hostname: os.hostname(),
    kernel: { release: os.release(), version: os.version(), procVersion: readText('/proc/version') },
    cpu: {
      model: os.cpus()[0]?.model ?? null,
      count: onlineCpuCount(),
      governor: readText('/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor'),
    },
    memoryBytes: os.totalmem(),
    loadavg,
    cgroup: cgroupLayout(),
    tools,
    git,
    commandLine: { argv: commandLine, cwd: process.cwd() },
    user: { uid: process.getuid?.() ?? null, euid: process.geteuid?.() ?? null },
  };
}

/** Trimmed contents, or null for a file this kernel or machine does not have. */
function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

// /sys/devices/system/cpu/online is a range list such as "0-3,8-11"; offlined CPUs are gaps.
function onlineCpuCount(): number {
  const online = readText('/sys/devices/system/cpu/online');
  if (!online) return os.cpus().length;
  return online.split(',').reduce((count, range) => {
    const [first, last = first] = range.split('-').map(Number);
    return count + last - first + 1;
  }, 0);
}

// Super options of a v1 cgroup mount that are flags, not controllers (see the kernel's
// cgroup1_show_options); "name=..." and "release_agent=..." are caught by their "=".
const CGROUP_V1_FLAGS = new Set(['rw', 'ro', 'noprefix', 'xattr', 'clone_children', 'cpuset_v2_mode', 'favordynmods']);

/**
 * Reads the mount table rather than guessing from paths: hosts differ (v1 hierarchies plus
 * cgroup2 at /sys/fs/cgroup/unified on one machine here, cgroup2 only at /sys/fs/cgroup on
 * Ubuntu 24.04), and which layout is present decides how the engine places containers.
 */
export function cgroupLayout(): Environment['cgroup'] {
  const mounts = readMounts();
  const v1Controllers = new Set<string>();
  for (const m of mounts) {
    if (m.fsType !== 'cgroup') continue;
    for (const option of m.superOptions) {
      if (!CGROUP_V1_FLAGS.has(option) && !option.includes('=')) v1Controllers.add(option);
    }
  }
  const hasV1 = mounts.some((m) => m.fsType === 'cgroup');
  const v2Mount = mounts.find((m) => m.fsType === 'cgroup2')?.mountPoint ?? null;
  const v2Controllers = v2Mount ? (readText(`${v2Mount}/cgroup.controllers`) ?? '').split(/\s+/).filter(Boolean) : [];
  const version: CgroupVersion = hasV1 ? (v2Mount ? 'hybrid' : 'v1') : v2Mount ? 'v2' : 'none';
  return { version, v1Controllers: [...v1Controllers].sort(), v2Mount, v2Controllers };
}

const TOOLS: Record<string, [string, string[]]> = {
  gcc: ['gcc', ['--version']],
  bpftrace: ['bpftrace', ['--version']],
  perf: ['perf', ['--version']],
  python3: ['python3', ['--version']],
  docker: ['docker', ['--version']],
  debootstrap: ['debootstrap', ['--version']],
  'util-linux': ['unshare', ['--version']],
  iproute2: ['ip', ['-V']],
  git: ['git', ['--version']],
};

async function toolVersions(): Promise<Record<string, string | null>> {
  const entries = await Promise.all(
    Object.entries(TOOLS).map(async ([name, [file, args]]) => [name, await firstOutputLine(file, args)] as const),
  );
  return { node: process.version, ...Object.fromEntries(entries) };
}

/**
 * First line a command prints (stdout, else stderr: older tools print versions there), or
 * null when it is missing, fails or hangs. The timeout bounds a wrapper that stalls, such as
 * one probing a daemon, so capturing the environment never delays or fails a run.
 */
export async function firstOutputLine(file: string, args: string[], cwd?: string): Promise<string | null> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, { timeout: 3000, cwd });
    const line = (stdout.trim() || stderr.trim()).split('\n')[0];
    return line || null;
  } catch {
    return null;
  }
}

async function gitState(): Promise<Environment['git']> {
  // The checkout that matters is the one holding this code, wherever the user runs it from.
  const here = dirname(fileURLToPath(import.meta.url));
  if ((await firstOutputLine('git', ['rev-parse', '--is-inside-work-tree'], here)) !== 'true') return null;
  const [commit, dirty] = await Promise.all([
    // Fails, hence null, in a repository with no commits yet.
    firstOutputLine('git', ['rev-parse', '--verify', '--quiet', 'HEAD'], here),
    gitDirty(here),
  ]);
  return { commit, dirty };
}

// Untracked files count: a new experiment not yet added changes what ran. A status that cannot
// be read counts too, since claiming a clean tree is the worse error.
async function gitDirty(cwd: string): Promise<boolean> {
  try {
    return (await execFileAsync('git', ['status', '--porcelain'], { timeout: 3000, cwd })).stdout.trim() !== '';
  } catch {
    return true;
  }
}
