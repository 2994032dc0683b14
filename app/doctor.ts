#!/usr/bin/env node
// sockbench doctor: what this machine offers the harness and the engine, one row per piece,
// each missing one with what to do about it. It reports and does not judge: exit status 0.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { promisify } from 'node:util';
import {
  probeTracing,
  TRACE_FAMILY_NEEDS,
  type ProbeResult,
  type ProbeType,
  type TracingCapabilities,
} from '../harness/capabilities.js';
import { pingDocker, type DockerPing } from '../engine/sandbox/dockerPing.js';
import type { Hierarchy } from '../engine/cgroups/cgroupHierarchy.js';
import { planDelegation, refusal, SELF_LEAF } from '../engine/cgroups/cgroupDelegation.js';
import { chooseHierarchy } from '../engine/cgroups/cgroupPool.js';
import { runIfMain } from './flags.js';
import { cgroupLayout, firstOutputLine, type Environment } from '../harness/environment.js';
import { markdownTable } from '../harness/markdown.js';

const execFileAsync = promisify(execFile);

export type Status = 'ok' | 'missing' | 'refused' | 'partial';
export interface DoctorRow {
  feature: string;
  status: Status;
  detail: string;
}

const row = (feature: string, status: Status, detail = ''): DoctorRow => ({ feature, status, detail });

// The config option behind each namespace, for the hint when one is absent.
const NAMESPACE_CONFIG: Record<string, string> = {
  cgroup: 'CONFIG_CGROUPS',
  ipc: 'CONFIG_IPC_NS',
  mnt: 'CONFIG_NAMESPACES',
  net: 'CONFIG_NET_NS',
  pid: 'CONFIG_PID_NS',
  uts: 'CONFIG_UTS_NS',
  user: 'CONFIG_USER_NS',
};
const ENGINE_CONTROLLERS = ['memory', 'cpu', 'pids', 'freezer'];

/** Every check, run concurrently: the slowest (bpftrace attaching, a silent docker socket) bound the total. */
async function checkMachine(): Promise<DoctorRow[]> {
  const [tracing, docker, dockerd, dockerClient, overlayModule, fuseOverlayfs, debootstrap, python3] =
    await Promise.all([
      probeTracing(),
      pingDocker(),
      firstOutputLine('dockerd', ['--version']),
      firstOutputLine('docker', ['--version']),
      succeeds('modprobe', ['-n', 'overlay']),
      firstOutputLine('fuse-overlayfs', ['--version']),
      firstOutputLine('debootstrap', ['--version']),
      firstOutputLine('python3', ['--version']),
    ]);
  return [
    tracing.root ? row('root', 'ok') : row('root', 'missing', 'run as root: namespaces, mounts and tracing need it'),
    ...Object.keys(NAMESPACE_CONFIG).map(namespaceRow),
    ...cgroupRows(cgroupLayout()),
    overlayRow(overlayModule),
    fuseOverlayfs
      ? row('fuse-overlayfs', 'ok', fuseOverlayfs)
      : row('fuse-overlayfs', 'missing', 'apt-get install fuse-overlayfs (needed only where kernel overlayfs is not)'),
    ...tracingRows(tracing),
    dockerdRow(docker, dockerd),
    dockerClient
      ? row('docker client', 'ok', dockerClient)
      : row('docker client', 'missing', 'apt-get install docker.io'),
    debootstrap
      ? row('debootstrap', 'ok', debootstrap)
      : row('debootstrap', 'missing', 'apt-get install debootstrap (builds root file systems to docker import)'),
    python3 ? row('python3', 'ok', python3) : row('python3', 'missing', 'apt-get install python3'),
  ];
}

async function succeeds(file: string, args: string[]): Promise<boolean> {
  try {
    await execFileAsync(file, args, { timeout: 3000 });
    return true;
  } catch {
    return false;
  }
}

function namespaceRow(ns: string): DoctorRow {
  const feature = `${ns} namespace`;
  if (!fs.existsSync(`/proc/self/ns/${ns}`))
    return row(feature, 'missing', `kernel built without ${NAMESPACE_CONFIG[ns]}`);
  // A limit of 0 is how distributions and admins switch a namespace type off without a new kernel.
  const max = readText(`/proc/sys/user/max_${ns}_namespaces`);
  if (max === '0')
    return row(feature, 'refused', `user.max_${ns}_namespaces is 0: sysctl -w user.max_${ns}_namespaces=10000`);
  return row(feature, 'ok');
}

function cgroupRows(cgroup: Environment['cgroup']): DoctorRow[] {
  const v1 = ENGINE_CONTROLLERS.map((c) => {
    const feature = `cgroup v1 ${c}`;
    if (cgroup.v1Controllers.includes(c)) return row(feature, 'ok');
    // cgroup v2 has no freezer controller: every cgroup has a cgroup.freeze file instead.
    const inV2 = c === 'freezer' ? cgroup.v2Mount !== null : cgroup.v2Controllers.includes(c);
    return inV2
      ? row(feature, 'missing', 'not mounted as v1; cgroup v2 has it, which the engine uses instead')
      : row(feature, 'missing', `mkdir -p /sys/fs/cgroup/${c} && mount -t cgroup -o ${c} cgroup /sys/fs/cgroup/${c}`);
  });
  if (!cgroup.v2Mount)
    return [
      ...v1,
      row('cgroup v2', 'missing', 'mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 none /sys/fs/cgroup/unified'),
    ];
  const controllers = cgroup.v2Controllers.join(' ') || 'none';
  const lacking = ENGINE_CONTROLLERS.filter((c) => c !== 'freezer' && !cgroup.v2Controllers.includes(c));
  const v2 =
    lacking.length === 0
      ? row('cgroup v2', 'ok', `at ${cgroup.v2Mount}; controllers: ${controllers}`)
      : row(
          'cgroup v2',
          'partial',
          `at ${cgroup.v2Mount}; controllers: ${controllers}; ${lacking.join(', ')} ${lacking.length === 1 ? 'is' : 'are'} bound to v1 or absent`,
        );
  return [...v1, v2, layoutRow(cgroup), engineCgroupRow()];
}

function layoutRow(cgroup: Environment['cgroup']): DoctorRow {
  const layouts: Record<string, string> = {
    hybrid: `hybrid: v1 hierarchies and cgroup2 at ${cgroup.v2Mount}`,
    v1: 'v1 only',
    v2: `v2 only (unified) at ${cgroup.v2Mount}`,
  };
  return cgroup.version === 'none'
    ? row('cgroup layout', 'missing', 'no cgroup file system mounted')
    : row('cgroup layout', 'ok', layouts[cgroup.version]);
}

/** Which hierarchy the engine would take here and, on v2, where its pool would go (delegation), or why it would refuse. */
export function engineCgroupRow(): DoctorRow {
  let chosen: Hierarchy;
  try {
    chosen = chooseHierarchy();
  } catch (e) {
    return row('engine cgroups', 'missing', (e as Error).message);
  }
  if (chosen.version === 1)
    return row(
      'engine cgroups',
      'ok',
      `v1 (${chosen.controllers.join(', ')}); pool under each controller's root; the v2 paths are tested by npm run test:cgroup2`,
    );
  const plan = planDelegation(chosen);
  const refused = refusal(plan);
  if (refused) return row('engine cgroups', 'refused', refused);
  return row(
    'engine cgroups',
    'ok',
    plan.where === 'root'
      ? `v2; pool under the root ${plan.base}, controllers enabled there; sandboxes born in their cgroup (CLONE_INTO_CGROUP)`
      : `v2; delegated: the worker moves into ${plan.base}/${SELF_LEAF} and makes its pool beside it; sandboxes born in their cgroup (CLONE_INTO_CGROUP)`,
  );
}

function overlayRow(moduleLoadable: boolean): DoctorRow {
  if (/\toverlay$/m.test(readText('/proc/filesystems') ?? '')) return row('overlayfs', 'ok');
  if (moduleLoadable) return row('overlayfs', 'ok', 'module overlay loads on first mount');
  return row('overlayfs', 'missing', 'kernel built without CONFIG_OVERLAY_FS: fuse-overlayfs can stand in');
}

// Each probe type's row name, and what it is for: said beside a refusal, so the user knows whether it matters.
const PROBE_ROWS: [ProbeType, string, string][] = [
  ['tracepoint', 'tracepoints', '--trace syscalls and --trace locks need them'],
  ['lockTracepoints', 'lock tracepoints', 'need Linux 5.19+; without them lock waits cannot be traced'],
  ['kprobe', 'kprobe', 'not needed: lock waits are attributed by tracepoint stacks instead'],
  ['fentry', 'fentry', 'not needed: the tracer uses tracepoints'],
];
const NEED_NAMES: Record<string, string> = {
  tracepoint: 'tracepoints',
  lockTracepoints: 'lock tracepoints',
  btf: 'BTF',
};

function tracingRows(t: TracingCapabilities): DoctorRow[] {
  const tracefs =
    'error' in t.tracefs
      ? row('tracefs', t.root ? 'missing' : 'refused', t.tracefs.error)
      : row(
          'tracefs',
          'ok',
          t.tracefs.mountedNow ? `was not mounted; mounted it now at ${t.tracefs.path}` : `at ${t.tracefs.path}`,
        );
  const families = Object.entries(TRACE_FAMILY_NEEDS).map(([family, needs]) => {
    const unmet = needs.filter((n) => (n === 'btf' ? !t.btf : !t[n].ok)).map((n) => NEED_NAMES[n]);
    return unmet.length === 0
      ? row(`--trace ${family}`, 'ok')
      : row(`--trace ${family}`, 'missing', `needs ${unmet.join(' and ')} (see above)`);
  });
  return [
    t.bpftrace ? row('bpftrace', 'ok', t.bpftrace) : row('bpftrace', 'missing', 'apt-get install bpftrace'),
    tracefs,
    ...PROBE_ROWS.map(([type, feature, use]) => probeRow(type, feature, t[type], use)),
    t.btf
      ? row('BTF', 'ok', '/sys/kernel/btf/vmlinux')
      : row('BTF', 'missing', 'kernel built without CONFIG_DEBUG_INFO_BTF: --trace syscalls cannot read task structs'),
    ...families,
  ];
}

function probeRow(type: ProbeType, feature: string, result: ProbeResult, use: string): DoctorRow {
  if (result.ok) return row(feature, 'ok');
  if (result.why === 'bpftrace not installed') return row(feature, 'missing', 'apt-get install bpftrace');
  if (result.why === 'needs root') return row(feature, 'refused', 'run as root');
  // No kprobe_events file in a mounted tracefs is the mark of a kernel without kprobes.
  if (type === 'kprobe' && /kprobe_events\): No such file/.test(result.why ?? '')) {
    return row(
      feature,
      'refused',
      'kernel built without CONFIG_KPROBES: lock waits are attributed by tracepoint stacks instead',
    );
  }
  return row(feature, 'refused', `${(result.why ?? 'refused').replace(/\.$/, '')} (${use})`);
}

function dockerdRow(ping: DockerPing, dockerd: string | null): DoctorRow {
  if (ping.ok)
    return row(
      'dockerd',
      'ok',
      `answering on /var/run/docker.sock${ping.apiVersion ? ` (API ${ping.apiVersion})` : ''}`,
    );
  if (dockerd) return row('dockerd', 'partial', `${dockerd}, but ${ping.why}: start it: dockerd &`);
  return row('dockerd', 'missing', 'apt-get install docker.io, then start it: dockerd &');
}

function readText(path: string): string | null {
  try {
    return fs.readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

async function main(): Promise<number> {
  const rows = await checkMachine();
  process.stdout.write(`sockbench doctor: ${os.hostname()}, Linux ${os.release()}\n\n`);
  process.stdout.write(
    markdownTable(
      ['feature', 'status', 'detail / hint'],
      rows.map((r) => [r.feature, r.status, r.detail]),
    ) + '\n',
  );
  return 0;
}

runIfMain(import.meta.url, 'sockbench doctor', main);
