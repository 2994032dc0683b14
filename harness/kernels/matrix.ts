// `sockbench kernels`: the kernel studies on other kernel versions. Each kernel is booted in
// qemu with the host's root shared read-only and results/ and figures/ of the output directory
// writable, runs the studies with --quick inside, and powers off; `host` runs them on this
// machine. Then each kernel is compared with the first one given, study by study.
import fs from 'node:fs';
import path from 'node:path';
import { captureEnvironment } from '../environment.js';
import { InterruptedError, UsageError } from '../errors.js';
import { compareKernels, importKernelsRun, type PlainConfigs } from './compareKernels.js';
import { markdownTable } from '../markdown.js';
import { orphansIn, ownedDir, reclaimLeftovers, removeOwnedDir, RUN_ROOT } from '../ownedDirs.js';
import { createRunDir, RESULTS_DIR, writeMeta } from '../runDirs.js';
import { BUSYBOX, builtIn, prepareKernels, type Kernel } from './kernelSource.js';
import { BOOT_CONFIG, BOOT_MODULES, buildInitramfs, moduleClosure } from './initramfs.js';
import { guestEnv, KERNEL_APPEND } from './guestEnv.js';
import { boot, guestCpus, stopOrphanQemu, type AccelMemory, type BootResult } from './qemu.js';
import { newRuns, snapshotRuns } from '../runDirs.js';
import { readStatus, readText, runStatus, stampVm, type KernelOutcome } from './results.js';
import { runOnHost } from './hostRun.js';
import { parsePlan, preflight, type KernelsPlan, type KernelStudies } from './plan.js';

export { kernelsOptions, kernelStudies } from './plan.js';

/** The command: returns the exit status (0 all well, 1 a kernel or study failed or a comparison regressed). */
export async function kernelsCommand(
  args: Record<string, unknown>,
  repoRoot: string,
  studies: KernelStudies,
): Promise<number> {
  const plan = parsePlan(args, repoRoot, studies);
  const note = (s: string) => process.stderr.write(`${s}\n`);
  if (plan.from.length > 0) return compareImported(plan, studies, note);
  await preflight(plan, repoRoot);

  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      note(`\nkernels: second ${signal}, exiting`);
      process.exit(130);
    }
    note(`kernels: ${signal}: stopping the guest and cleaning up (press again to force)`);
    controller.abort(new InterruptedError(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  for (const dir of orphansIn(RUN_ROOT, 'kernels'))
    if (stopOrphanQemu(dir)) note(`kernels: stopped the qemu of a run that is gone (${dir})`);
  for (const gone of reclaimLeftovers('kernels')) note(`kernels: removed ${gone}, left by a run that is gone`);
  const scratch = ownedDir('kernels');
  try {
    let kernels: Kernel[];
    try {
      kernels = await prepareKernels(plan.kernels, { modules: plan.modules, note });
    } catch (e) {
      // Ctrl-C reaches apt-get and dpkg-deb too: their failure is the interruption, not a missing package.
      throw controller.signal.aborted ? controller.signal.reason : e;
    }
    if (controller.signal.aborted) throw controller.signal.reason;
    for (const k of kernels) checkBootable(k);
    return await runMatrix(plan, kernels, scratch, controller.signal, repoRoot, studies.plain, note);
  } finally {
    removeOwnedDir(scratch);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** A bare vmlinuz must have 9p, virtio and overlay built in when it comes without modules. */
function checkBootable(k: Kernel): void {
  if (k.spec.kind !== 'vmlinuz') return;
  if (k.modulesDir) {
    const { missing } = moduleClosure(k.modulesDir, BOOT_MODULES);
    if (missing.length > 0)
      throw new UsageError(
        `--kernel: ${k.spec.arg}: its modules (${k.modulesDir}) have neither as module nor built in: ${missing.join(', ')}`,
      );
    return;
  }
  const y = builtIn(k.config);
  if (k.config) {
    const lacking = BOOT_CONFIG.filter((c) => !y.has(c));
    if (lacking.length > 0)
      throw new UsageError(
        `--kernel: ${k.spec.arg}: no modules found and not built in (${k.config}): ${lacking.join(', ')}; give --modules lib/modules/${k.release || '<release>'}`,
      );
  } else {
    process.stderr.write(
      `kernels: ${k.spec.arg}: no modules and no config-${k.release} beside it: assuming ${BOOT_CONFIG.join(', ')} are built in (the guest says so if not)\n`,
    );
  }
}

async function runMatrix(
  plan: KernelsPlan,
  kernels: Kernel[],
  scratch: string,
  signal: AbortSignal,
  repoRoot: string,
  plain: PlainConfigs,
  note: (s: string) => void,
): Promise<number> {
  const started = new Date();
  const stampDir = createRunDir(plan.out, 'kernels', started);
  const outcomes: KernelOutcome[] = kernels.map((k, i) => {
    const label = `${i + 1}-${k.name.replace(/[^A-Za-z0-9.+_-]/g, '_')}`;
    return {
      arg: k.spec.arg,
      label,
      name: k.name,
      package: k.package ?? null,
      version: k.version ?? null,
      params: k.spec.params ?? null,
      release: null,
      accel: null,
      emulated: false,
      status: 'pending',
      seconds: 0,
      console: path.join(stampDir, label, 'console.log'),
      studies: {},
    };
  });
  const meta = await kernelsMeta(plan, plan.studies, outcomes, started, {
    exec: plan.exec ?? null,
    cgroups: plan.cgroups,
    study_args: plan.studyArgs,
    accel_requested: plan.accel,
  });
  writeMeta(stampDir, meta);
  const memory: AccelMemory = {};
  let exitCode = 0;
  try {
    for (const [i, k] of kernels.entries()) {
      if (signal.aborted) throw signal.reason;
      const o = outcomes[i]!;
      note(
        `\nkernels: [${i + 1}/${kernels.length}] ${k.name}${k.spec.kind === 'host' ? ' (this machine, no VM)' : ` (${k.release || 'release unknown'})`}`,
      );
      const t0 = Date.now();
      fs.mkdirSync(path.join(stampDir, o.label), { recursive: true });
      const before = snapshotRuns(plan.out, plan.studies);
      try {
        if (k.spec.kind === 'host') await runOnHost(plan, o, stampDir, signal, repoRoot);
        else await runInGuest(plan, k, o, stampDir, scratch, signal, memory, repoRoot, note);
      } finally {
        // Also after Ctrl-C: what the kernel left is recorded, and its runs say which VM made them.
        o.seconds = Math.round((Date.now() - t0) / 100) / 10;
        const made = newRuns(plan.out, before);
        const status = readStatus(path.join(stampDir, o.label, 'status'));
        for (const study of plan.exec === undefined ? plan.studies : ['exec']) {
          const runDir = made.get(study) ?? null;
          o.studies[study] = {
            exitStatus: status.get(study) ?? null,
            runDir,
            runStatus: runDir ? (runStatus(runDir) ?? null) : null,
          };
          if (runDir && o.accel && o.accel !== 'host') {
            stampVm(runDir, {
              kernel: o.release ?? k.release,
              source: k.spec.arg,
              package: k.package ?? null,
              version: k.version ?? null,
              params: o.params,
              accel: o.accel,
              emulated: o.emulated,
            });
          }
        }
      }
      if (o.status === 'pending') {
        const bad = Object.entries(o.studies).filter(([, s]) => s.exitStatus !== 0);
        o.status = bad.length === 0 ? 'complete' : 'failed';
        if (bad.length > 0)
          o.reason = bad
            .map(([name, s]) => `${name}: ${s.exitStatus === null ? 'did not finish' : `exit status ${s.exitStatus}`}`)
            .join(', ');
      }
      note(
        `kernels: ${k.name}: ${o.status}${o.reason ? ` (${o.reason})` : ''} in ${o.seconds} s${o.emulated ? ', emulated (TCG)' : ''}`,
      );
      writeMeta(stampDir, meta);
    }
    if (signal.aborted) throw signal.reason;
    if (outcomes.some((o) => o.status !== 'complete')) exitCode = 1;
    if (plan.exec === undefined) {
      const failed = await compareKernels(plan.studies, outcomes, stampDir, meta.comparisons, {
        failOnRegressionPct: plan.failOnRegressionPct,
        plain,
        note,
      });
      if (failed) exitCode = 1;
      if (signal.aborted) throw signal.reason;
    }
    meta.status = outcomes.every((o) => o.status === 'complete') ? 'complete' : 'failed';
  } catch (e) {
    meta.status = e instanceof InterruptedError ? 'interrupted' : 'failed';
    for (const o of outcomes) if (o.status === 'pending') o.status = 'interrupted';
    throw e;
  } finally {
    meta.finished = new Date().toISOString();
    writeMeta(stampDir, meta);
  }
  process.stdout.write(
    `\n${summaryTable(outcomes, plan)}\n\nkernels run: ${path.relative(process.cwd(), stampDir) || '.'}\n`,
  );
  return exitCode;
}

async function runInGuest(
  plan: KernelsPlan,
  k: Kernel,
  o: KernelOutcome,
  stampDir: string,
  scratch: string,
  signal: AbortSignal,
  memory: AccelMemory,
  repoRoot: string,
  note: (s: string) => void,
): Promise<void> {
  const kernelDir = path.join(stampDir, o.label);
  const modules = k.modulesDir ? moduleClosure(k.modulesDir, BOOT_MODULES).ordered : [];
  const init = fs.readFileSync(path.join(repoRoot, 'harness/kernels/guest-init.sh'), 'utf8');
  // Writable for the guest: results/ and figures/ of the output directory, nothing else. (Sharing
  // the output directory itself would, with the default --out, put the whole checkout behind an
  // uncached writable share: each study's Node then takes twice as long to load the harness.)
  const writable = [RESULTS_DIR, 'figures'].map((d, i) => ({ tag: `sbout${i}`, path: path.join(plan.out, d) }));
  for (const w of writable) fs.mkdirSync(w.path, { recursive: true });
  const env = guestEnv({
    repo: repoRoot,
    node: process.execPath,
    out: plan.out,
    shares: writable,
    runDir: kernelDir,
    studies: plan.studies,
    studyArgs: plan.studyArgs,
    exec: plan.exec,
    modulesDir: k.modulesDir,
    memoryMb: plan.memoryMb,
    overlayMb: Math.floor(plan.memoryMb / 2),
    cgroups: plan.cgroups,
  });
  const initrd = path.join(scratch, `${o.label}.cpio`);
  fs.writeFileSync(initrd, buildInitramfs({ busybox: BUSYBOX, init, env, modulesDir: k.modulesDir, modules }));
  const log = fs.openSync(o.console, 'a');
  const prefix = `[${k.release || k.name}] `;
  const t0 = Date.now();
  // The log keeps when each line came, seconds since qemu started: what took the time is then plain.
  const write = (line: string) => {
    fs.writeSync(log, `+${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s ${line}\n`);
    process.stderr.write(`${prefix}${line}\n`);
  };
  let result: BootResult & { fallback?: string };
  try {
    note(
      `kernels: booting ${k.vmlinuz} (${plan.accel === 'tcg' ? 'TCG software emulation' : plan.accel === 'kvm' ? 'KVM' : 'KVM if it works, else TCG'}), timeout ${plan.timeoutS} s; console in ${path.relative(process.cwd(), o.console)}`,
    );
    result = await boot(
      {
        vmlinuz: k.vmlinuz!,
        initrd,
        append: k.spec.params ? `${KERNEL_APPEND} ${k.spec.params}` : KERNEL_APPEND,
        memoryMb: plan.memoryMb,
        cpus: guestCpus(),
        shares: [{ tag: 'sbroot', path: '/', readonly: true }, ...writable.map((w) => ({ ...w, readonly: false }))],
        timeoutMs: plan.timeoutS * 1000,
        onLine: write,
        signal,
        pidFile: path.join(scratch, 'qemu.pid'),
      },
      plan.accel,
      memory,
      (s) => {
        fs.writeSync(log, `${s}\n`);
        note(s);
      },
    );
  } finally {
    fs.closeSync(log);
    fs.rmSync(initrd, { force: true });
  }
  o.accel = result.accel;
  o.emulated = result.accel === 'tcg';
  if (result.fallback) o.fallback = result.fallback;
  o.release = readText(path.join(kernelDir, 'release')) ?? result.release ?? null;
  if (result.outcome === 'aborted') {
    o.status = 'interrupted';
    throw signal.reason;
  }
  const guestError = result.errors[0] ?? readText(path.join(kernelDir, 'guest-error'));
  if (result.outcome === 'timeout') {
    o.status = 'failed';
    o.reason = `timed out after ${plan.timeoutS} s: qemu killed${guestError ? `; guest: ${guestError}` : ''}`;
  } else if (result.outcome === 'no-init') {
    o.status = 'failed';
    o.reason = `the guest never reached its init (${result.accel}${result.qemuErrors.length ? `; qemu: ${result.qemuErrors.at(-1)}` : ''})`;
  } else if (guestError) {
    o.status = 'failed';
    o.reason = `guest: ${guestError}`;
  } else if (result.exit !== 0) {
    o.status = 'failed';
    o.reason = `qemu exited with ${result.exit}${result.qemuErrors.length ? `: ${result.qemuErrors.at(-1)}` : ''}`;
  }
}

/** A kernels run's meta.json, booted or --from: what it compares, and how its own mode ran (own). */
async function kernelsMeta(
  plan: KernelsPlan,
  studies: string[],
  outcomes: KernelOutcome[],
  started: Date,
  own: Record<string, unknown>,
) {
  return {
    command: 'kernels',
    status: 'running' as string,
    pid: process.pid,
    started: started.toISOString(),
    finished: undefined as string | undefined,
    studies,
    ...own,
    fail_on_regression_pct: plan.failOnRegressionPct ?? null,
    out: plan.out,
    kernels: outcomes,
    comparisons: [] as Record<string, unknown>[],
    environment: await captureEnvironment([...process.argv.slice(1)]),
  };
}

/**
 * --from: the kernels runs of other machines (a CI matrix's jobs, one kernel each) compared as
 * if one run had booted them all, in the order given; nothing is booted. The comparison is a
 * kernels run of its own under --out, naming the runs it read.
 */
async function compareImported(plan: KernelsPlan, known: KernelStudies, note: (s: string) => void): Promise<number> {
  const imported = plan.from.map(importKernelsRun);
  const outcomes = imported
    .flatMap((r) => r.outcomes)
    .map((o, i) => ({ ...o, label: `${i + 1}-${o.name.replace(/[^A-Za-z0-9.+_-]/g, '_')}` }));
  if (outcomes.length < 2)
    throw new UsageError(`--from: the runs given hold ${outcomes.length} kernel; a comparison needs two or more`);
  const studies = [...new Set(imported.flatMap((r) => r.studies))];
  const started = new Date();
  const stampDir = createRunDir(plan.out, 'kernels', started);
  const meta = await kernelsMeta(plan, studies, outcomes, started, { from: imported.map((r) => r.stampDir) });
  writeMeta(stampDir, meta);
  for (const r of imported) note(`kernels: from ${r.stampDir}: ${r.outcomes.map((o) => o.name).join(', ')}`);
  const failed = await compareKernels(studies, outcomes, stampDir, meta.comparisons, {
    failOnRegressionPct: plan.failOnRegressionPct,
    plain: known.plain,
    note,
  });
  const complete = outcomes.every((o) => o.status === 'complete');
  meta.status = complete ? 'complete' : 'failed';
  meta.finished = new Date().toISOString();
  writeMeta(stampDir, meta);
  process.stdout.write(
    `\n${summaryTable(outcomes, { ...plan, studies })}\n\nkernels run: ${path.relative(process.cwd(), stampDir) || '.'}\n`,
  );
  return failed || !complete ? 1 : 0;
}

function summaryTable(outcomes: KernelOutcome[], plan: KernelsPlan): string {
  const studies = plan.exec === undefined ? plan.studies : ['exec'];
  return markdownTable(
    ['kernel', 'release', 'accel', ...studies, 'seconds', 'status'],
    outcomes.map((o) => [
      o.name,
      o.release ?? '?',
      o.accel === 'tcg' ? 'tcg (emulated)' : (o.accel ?? '-'),
      ...studies.map((s) => {
        const st = o.studies[s];
        if (!st || st.exitStatus === null) return 'not finished';
        return st.exitStatus === 0 ? (st.runStatus ?? 'ok') : `exit ${st.exitStatus}`;
      }),
      String(o.seconds),
      o.status + (o.reason ? `: ${o.reason}` : ''),
    ]),
  );
}
