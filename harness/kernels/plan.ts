// `sockbench kernels`: its flags, checked before anything is fetched or booted, and what must be
// there before it starts (root, qemu, busybox-static, a built checkout).
import fs from 'node:fs';
import path from 'node:path';
import type { Argv } from 'yargs';
import { PrivilegeError, UsageError } from '../errors.js';
import { BUSYBOX, parseKernelArg, type KernelSpec } from './kernelSource.js';
import { isStaticElf } from './initramfs.js';
import { QEMU } from './qemu.js';
import type { Experiment } from '../types.js';
import type { PlainConfigs } from './compareKernels.js';

/**
 * The studies a guest can run (each study says so itself: Experiment.kernelMatrix), those run
 * by default, and the plain config of those that have one (Experiment.plainConfig).
 */
export interface KernelStudies {
  all: string[];
  byDefault: string[];
  plain: PlainConfigs;
}

export function kernelStudies(experiments: readonly Experiment[]): KernelStudies {
  const all = experiments.filter((e) => e.kernelMatrix !== undefined);
  return {
    all: all.map((e) => e.name),
    byDefault: all.filter((e) => e.kernelMatrix === 'default').map((e) => e.name),
    plain: Object.fromEntries(all.flatMap((e) => (e.plainConfig ? [[e.name, e.plainConfig]] : []))),
  };
}
const DEFAULT_TIMEOUT_S = 1200;
const DEFAULT_MEMORY_MB = 2048;

export function kernelsOptions(y: Argv, repoRoot: string, studies: KernelStudies): Argv {
  return y
    .usage(
      [
        '$0 kernels (--kernel K | --from DIR) [...] [options]\n\nRuns the kernel studies (with --quick) on each kernel,',
        "booted in qemu with this machine's root file system shared read-only and <out>/results and <out>/figures",
        'writable, then compares each kernel with the first one given: with compare (and its gate) when both ran under',
        'the same accelerator, and refused as "not a kernel comparison" when not; and, for the namespace studies, as',
        "shapes: each rate over the same guest's plain clone. Each study run lands in",
        '<out>/results/<study>/<run-id>/ (its meta.json gets a vm object: kernel, boot parameters, accel, emulated); the kernels run',
        "itself, with console logs, comparisons and summary.csv (every kernel's rates), in <out>/results/kernels/<stamp>/.",
        'With --from, nothing is booted: kernels runs made elsewhere (one per CI matrix job) are compared instead.',
        'Exit status: 0 all well;',
        '1 a kernel or study failed, a comparison regressed beyond --fail-on-regression, or a gated comparison was refused; 2 bad input;',
        '3 missing root, qemu or kernel package; 130 interrupted.',
      ].join(' '),
    )
    .option('kernel', {
      type: 'string',
      array: true,
      describe:
        "a kernel: a Debian package (linux-image-6.1.0-50-amd64 or 6.1.0-50-amd64, fetched with apt-get download and cached in /var/cache/sockbench/kernels), a .deb, a vmlinuz path, or 'host' (this machine, no VM); K:PARAMS boots K with PARAMS added to its command line (6.1.0-50-amd64:ipv6.disable=1); repeat for each kernel, the first is the baseline",
    })
    .option('from', {
      type: 'string',
      array: true,
      describe:
        'compare kernels runs made elsewhere instead of booting: the --out of a kernels run (or its results/kernels/<stamp>); repeat, the first holds the baseline',
    })
    .option('studies', {
      type: 'string',
      describe: `comma-separated studies, of ${studies.all.join(', ')} [default: ${studies.byDefault.join(',')}]`,
    })
    .option('accel', {
      type: 'string',
      describe:
        'auto: KVM where /dev/kvm works, else (or if the guest hangs) TCG software emulation, marked emulated; kvm; tcg [default: auto]',
    })
    .option('fail-on-regression', {
      type: 'string',
      describe: 'exit 1 if any comparison with the first kernel finds a metric worse by more than PCT %',
    })
    .option('out', {
      type: 'string',
      describe: 'directory that receives results/ and figures/ [default: the repository root]',
    })
    .option('modules', {
      type: 'string',
      describe:
        'lib/modules/<release> (with modules.dep) of the one kernel given as a vmlinuz path, when it is not beside it',
    })
    .option('timeout', {
      type: 'string',
      describe: `seconds each kernel may take, boot and studies; a kernel past it is killed and failed [default: ${DEFAULT_TIMEOUT_S}]`,
    })
    .option('memory', { type: 'string', describe: `guest memory in MiB [default: ${DEFAULT_MEMORY_MB}]` })
    .option('study-args', {
      type: 'string',
      describe:
        "extra flags for every study run, with = because they start with --: --study-args='--concurrency 1,4 --repeat 3' [default: none; --quick is always given]",
    })
    .option('cgroups', {
      type: 'string',
      describe:
        "the guest's cgroup layout: host (the same hierarchies as this machine, so the studies find cgroups where they find them here) or v2 (cgroup2 alone at /sys/fs/cgroup, nothing enabled: a fresh cgroup v2-only machine, as npm run test:cgroup2 boots) [default: host]",
    })
    .option('exec', {
      type: 'string',
      describe:
        "run this shell command in each guest (as root, in the repository) instead of the studies; nothing is compared. $SOCKBENCH_OUT is --out, $SOCKBENCH_RUN_DIR the kernel's directory in the kernels run; of the host, only <out>/results and <out>/figures are writable",
    })
    .example(
      '$0 kernels --kernel 6.1.0-47-amd64 --kernel 6.1.0-50-amd64 --studies netns',
      `the netns study on two of Debian's 6.1 kernels, each in a guest (${repoRoot}/results/kernels/<stamp>/)`,
    )
    .example(
      "$0 kernels --kernel 6.1.0-50-amd64 --kernel '6.1.0-50-amd64:ipv6.disable=1' --study-args='--trace locks'",
      'one kernel booted with IPv6 and without, under one accelerator, with the lock waits of each',
    )
    .example(
      '$0 kernels --from job1/kernels-out --from job2/kernels-out --fail-on-regression 25',
      "two CI matrix jobs' runs compared and gated",
    );
}

export interface KernelsPlan {
  kernels: KernelSpec[];
  /** --from: kernels runs made elsewhere, compared without booting anything. */
  from: string[];
  studies: string[];
  accel: 'auto' | 'kvm' | 'tcg';
  failOnRegressionPct?: number;
  out: string;
  modules?: string;
  timeoutS: number;
  memoryMb: number;
  studyArgs: string[];
  exec?: string;
  cgroups: 'host' | 'v2';
}

function numberFlag(flag: string, value: unknown, min: number, integer = false): number {
  const n = Number(value);
  if (
    typeof value !== 'string' ||
    value.trim() === '' ||
    !Number.isFinite(n) ||
    n < min ||
    (integer && !Number.isInteger(n))
  ) {
    throw new UsageError(`--${flag}: '${String(value)}' is not ${integer ? 'a whole number' : 'a number'} >= ${min}`);
  }
  return n;
}

/** Checks every flag (UsageError naming the first wrong one) before anything is fetched or booted. */
export function parsePlan(args: Record<string, unknown>, repoRoot: string, known: KernelStudies): KernelsPlan {
  const given = ([] as unknown[]).concat(args.kernel ?? []).map(String);
  const from = ([] as unknown[]).concat(args.from ?? []).map(String);
  if (from.length > 0) {
    const booting = ['kernel', 'exec', 'studies', 'accel', 'study-args', 'modules', 'cgroups'].find(
      (f) => args[f] !== undefined,
    );
    if (booting) throw new UsageError(`--from compares runs already made: --${booting} has nothing to do with it`);
    if (from.some((f) => f.trim() === '')) throw new UsageError('--from: empty directory name');
  } else if (given.length === 0)
    throw new UsageError(
      "--kernel: name at least one kernel (a Debian package such as linux-image-6.1.0-50-amd64, a .deb, a vmlinuz path, or 'host'), or --from runs to compare",
    );
  const studies =
    args.studies === undefined
      ? known.byDefault
      : String(args.studies)
          .split(',')
          .map((s) => s.trim());
  if (studies.length === 0 || studies.some((s) => s === ''))
    throw new UsageError(`--studies: '${String(args.studies)}' is not a comma-separated list`);
  for (const s of studies) {
    if (!known.all.includes(s))
      throw new UsageError(
        `--studies: unknown or unsupported study '${s}' (these run in a guest: ${known.all.join(', ')})`,
      );
  }
  const accel = String(args.accel ?? 'auto');
  if (!['auto', 'kvm', 'tcg'].includes(accel)) throw new UsageError(`--accel: '${accel}' is not auto, kvm or tcg`);
  const studyArgs = args['study-args'] === undefined ? [] : String(args['study-args']).split(/\s+/).filter(Boolean);
  for (const a of studyArgs) {
    if (!/^[A-Za-z0-9,.=+_:-]+$/.test(a))
      throw new UsageError(`--study-args: '${a}' has characters other than letters, digits and , . = + _ : -`);
    if (a === '--out' || a.startsWith('--out='))
      throw new UsageError('--study-args: --out is set by kernels itself (give --out to kernels)');
  }
  const exec = args.exec === undefined ? undefined : String(args.exec);
  if (exec !== undefined && exec.trim() === '') throw new UsageError('--exec: empty command');
  if (exec !== undefined && args.studies !== undefined)
    throw new UsageError('--exec and --studies: give one, not both');
  const cgroups = String(args.cgroups ?? 'host');
  if (cgroups !== 'host' && cgroups !== 'v2') throw new UsageError(`--cgroups: '${cgroups}' is not host or v2`);
  const kernels = given.map(parseKernelArg);
  return {
    kernels,
    from,
    studies: exec === undefined ? [...new Set(studies)] : [],
    accel: accel as KernelsPlan['accel'],
    failOnRegressionPct:
      args['fail-on-regression'] === undefined
        ? undefined
        : numberFlag('fail-on-regression', args['fail-on-regression'], 0),
    out: path.resolve(String(args.out ?? repoRoot)),
    modules: args.modules === undefined ? undefined : String(args.modules),
    timeoutS: args.timeout === undefined ? DEFAULT_TIMEOUT_S : numberFlag('timeout', args.timeout, 10),
    memoryMb: args.memory === undefined ? DEFAULT_MEMORY_MB : numberFlag('memory', args.memory, 256, true),
    studyArgs: exec === undefined ? ['--quick', ...studyArgs] : [],
    exec,
    cgroups,
  };
}

/** What is needed before anything is fetched: root, qemu, a static busybox, a built checkout. */
export async function preflight(plan: KernelsPlan, repoRoot: string): Promise<void> {
  if (process.geteuid?.() !== 0)
    throw new PrivilegeError(
      "kernels needs root: it boots guests with the host's root file system shared, and the studies create namespaces and mounts (run it with sudo)",
    );
  if (!fs.existsSync(path.join(repoRoot, 'dist/app/cli.js')))
    throw new PrivilegeError(`no built checkout at ${repoRoot} (run npm run build)`);
  if (plan.kernels.every((k) => k.kind === 'host')) return;
  if (!onPath(QEMU))
    throw new PrivilegeError(`${QEMU} not found: install Debian's qemu-system-x86 (scripts/setup.sh does)`);
  if (!isStaticElf(BUSYBOX))
    throw new PrivilegeError(
      `${BUSYBOX} is missing or not statically linked: install Debian's busybox-static (scripts/setup.sh does)`,
    );
  if (!onPath('dpkg-deb') && plan.kernels.some((k) => k.kind === 'package' || k.kind === 'deb'))
    throw new PrivilegeError('dpkg-deb not found: Debian kernel packages need it to be unpacked');
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => {
    try {
      fs.accessSync(path.join(d, tool), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
