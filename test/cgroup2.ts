#!/usr/bin/env node
// npm run test:cgroup2: the engine's suites on a cgroup v2-only machine. This machine is a v1/v2
// hybrid, where the engine takes v1; most machines our users have are v2 only. So this boots a
// guest with `sockbench kernels --cgroups v2` (Debian's kernel, cached; this machine's files
// shared read-only; cgroup2 alone at /sys/fs/cgroup with no controller enabled, as a fresh v2
// machine boots) and runs the suites there, then prints one line:
//   test:cgroup2: N passed, N failed, N skipped on cgroup v2 (guest kernel R, accel A)
// Exit status: 0 all passed; 1 a test failed or the guest did not finish; 2 bad input; 3 no
// root, qemu or kernel package; 130 interrupted.
//
// The suites: the engine through its API and its CLI worker, zygotes, the handler and import
// caches, cgroups, storage, the channel and the attack suites (user namespaces of zygotes,
// network namespace pools, seccomp), and cgroupV2 (delegation, cgroup.kill, freeze, OOM through
// memory.events, clone3 into a cgroup). Left out: what has no cgroup in it or needs what a guest
// lacks: a network (workerCaches and installCache fetch from Debian's mirror), Docker, the
// traced studies, the figures' browser, the kernels harness itself. They run on the host in
// npm test.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SUITES = [
  'engine',
  'worker',
  'zygote',
  'handlerCache',
  'cgroups',
  'cgroupV2',
  'storage',
  'channel',
  'attacks',
  'attacks-seccomp',
  'attacks-channel',
  'attacks-registry',
];
const DEFAULT_KERNEL = 'linux-image-6.1.0-50-amd64';
const GUEST_TIMEOUT_S = 1500;
const MARK = 'sockbench-cgroup2:';

const USAGE = `usage: npm run test:cgroup2 [-- --kernel PACKAGE] [--suites a,b,...]

Boots a cgroup v2-only guest (npm run kernels --cgroups v2) and runs these suites in it:
${SUITES.join(', ')}.
--kernel: a Debian kernel package, as npm run kernels takes it [default: ${DEFAULT_KERNEL}]
--suites: a subset of the suites above [default: all]`;

/** In the guest: refuse anything but a v2-only layout, say what it is, run uvu on the suites. */
async function inGuest(pattern: string): Promise<number> {
  const mounts = fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '));
  const v1 = mounts.filter((m) => m[2] === 'cgroup').map((m) => m[1]);
  const v2 = mounts.find((m) => m[2] === 'cgroup2');
  if (v1.length > 0 || !v2) {
    console.error(
      `${MARK} error: not a cgroup v2-only layout (v1 at ${v1.join(', ') || 'none'}; cgroup2 at ${v2?.[1] ?? 'none'})`,
    );
    return 3;
  }
  const controllers = fs.readFileSync(path.join(v2[1]!, 'cgroup.controllers'), 'utf8').trim();
  const own = fs.readFileSync('/proc/self/cgroup', 'utf8').trim();
  console.log(
    `${MARK} cgroup v2 only: cgroup2 at ${v2[1]} (${v2[3]}), controllers ${controllers}; this process ${own}`,
  );
  // SOCKBENCH_GUEST tells a test it runs here, under emulation, should it have to say so.
  const uvu = spawn(
    process.execPath,
    [path.join(REPO, 'node_modules/uvu/bin.js'), path.join(REPO, 'dist/test'), pattern],
    { stdio: 'inherit', cwd: REPO, env: { ...process.env, SOCKBENCH_GUEST: '1' } },
  );
  return new Promise((resolve) => uvu.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
}

interface Summary {
  passed: number;
  failed: number;
  skipped: number;
}

/** uvu's totals, as the guest printed them (colours and the kernels harness's "[release] " prefix removed). */
export function summarize(output: string): Summary | undefined {
  const plain = output
    .replace(/\x1b\[[0-9;]*m/g, '')
    .split('\n')
    .map((l) => l.replace(/^\[[^\]]+\] /, ''));
  const value = (label: string) => {
    const line = plain.filter((l) => l.startsWith(`  ${label}:`)).pop();
    return line === undefined ? undefined : Number(line.split(/\s+/)[2]);
  };
  const total = value('Total');
  const passed = value('Passed');
  if (total === undefined || passed === undefined) return undefined;
  return { passed, failed: total - passed, skipped: value('Skipped') ?? 0 };
}

async function onHost(args: string[]): Promise<number> {
  let kernel = DEFAULT_KERNEL;
  let suites = SUITES;
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i]!.split('=', 2) as [string, string | undefined];
    const value = inline ?? args[++i];
    if (flag === '--help' || flag === '-h') {
      console.log(USAGE);
      return 0;
    }
    if (value === undefined) return usage(`${flag}: needs a value`);
    if (flag === '--kernel') kernel = value;
    else if (flag === '--suites') {
      suites = value.split(',').map((s) => s.trim());
      const unknown = suites.find((s) => !SUITES.includes(s));
      if (unknown !== undefined) return usage(`--suites: '${unknown}' is not one of ${SUITES.join(', ')}`);
    } else return usage(`unknown flag ${flag}`);
  }
  // Suites are named by file, wherever under test/ their layer puts them.
  const pattern = `(^|/)(${suites.join('|')})\\.test\\.js$`;
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sockbench-cgroup2-'));
  const exec = `${process.execPath} dist/test/cgroup2.js --guest '${pattern}'`;
  const kernels = spawn(
    process.execPath,
    [
      path.join(REPO, 'dist/app/cli.js'),
      'kernels',
      '--kernel',
      kernel,
      '--cgroups',
      'v2',
      '--timeout',
      String(GUEST_TIMEOUT_S),
      '--out',
      out,
      '--exec',
      exec,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO },
  );
  let output = '';
  kernels.stdout.on('data', (d: Buffer) => {
    output += d;
    process.stdout.write(d);
  });
  kernels.stderr.on('data', (d: Buffer) => {
    output += d;
    process.stderr.write(d);
  });
  // Ctrl-C reaches the kernels harness too (same process group); it powers the guest off and cleans up.
  const onSignal = () => {};
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', () => kernels.kill('SIGTERM'));
  const code = await new Promise<number>((resolve) =>
    kernels.on('exit', (c, signal) => resolve(c ?? (signal === 'SIGINT' ? 130 : 1))),
  );
  fs.rmSync(out, { recursive: true, force: true });
  if (code === 2 || code === 3 || code === 130) return code;
  const summary = summarize(output);
  const release = /sockbench-guest: kernel ([^\s,]+)/.exec(output)?.[1] ?? kernel;
  const accel = /emulated \(TCG\)/.test(output) ? 'tcg' : 'kvm';
  const layout = output.includes(`${MARK} cgroup v2 only`);
  if (!summary || !layout) {
    console.error(
      `test:cgroup2: the guest ${!layout ? 'did not confirm a cgroup v2-only layout' : 'printed no test totals'} (kernels exit ${code})`,
    );
    console.log(`test:cgroup2: 0 passed, 1 failed, 0 skipped on cgroup v2 (guest kernel ${release}, accel ${accel})`);
    return 1;
  }
  console.log(
    `test:cgroup2: ${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped on cgroup v2 (guest kernel ${release}, accel ${accel})`,
  );
  return summary.failed === 0 && code === 0 ? 0 : 1;
}

function usage(message: string): number {
  console.error(`test:cgroup2: ${message} (npm run test:cgroup2 -- --help)`);
  return 2;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const run = args[0] === '--guest' ? inGuest(args[1] ?? '\\.test\\.js$') : onHost(args);
  run.then((code) => process.exit(code));
}
