// `npm run repro`: every study, one after another, each in its own process (a study that
// crashes or is refused takes nothing else with it); then paper-repro.md's "ours" and "status"
// columns and the figures page, regenerated from the runs just made, and each row's verdict.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { EXPERIMENTS } from '../experiments/index.js';
import { PrivilegeError, UsageError } from '../harness/errors.js';
import { writeFiguresPage } from '../harness/figuresPage.js';
import { markdownTable } from '../harness/markdown.js';
import { claimsOf, referenceRuns, sectionsOf, type PaperSource } from '../harness/paperRepro/claims.js';
import { ENGINE_OVERHEAD } from './bench/engine.js';
import { drawFigures } from '../harness/paperRepro/drawFigures.js';
import { figureCaptions } from '../harness/paperRepro/figureCaptions.js';
import { regeneratePaperRepro, type StudyOutcome } from '../harness/paperRepro/regenerate.js';
import { loadRunData } from '../harness/paperRepro/runData.js';
import { FIX_PARAMS, KERNEL_FIXES, kernelFixesArgs } from '../experiments/netns/kernelFixes.js';
import { createRunDir, newRuns, readMeta, snapshotRuns } from '../harness/runDirs.js';

export interface ReproOptions {
  quick: boolean;
  /** Only these studies; undefined for all. */
  studies?: string[];
  /** Run scripts/setup.sh first. */
  setup: boolean;
  /** Also run the traced (--trace locks) sweeps that draw the lock figures. */
  trace: boolean;
  /** Directory holding results/, figures/ and paper-repro.md. */
  out: string;
  repoRoot: string;
}

interface Step {
  label: string;
  study: string;
  argv: string[];
  traced: boolean;
}

type StepResult =
  | { status: 'ran'; runDir: string; seconds: number; note?: string }
  | { status: 'skipped' | 'failed'; reason: string; seconds: number }
  | { status: 'interrupted'; seconds: number };

const ENGINE_BENCH = ENGINE_OVERHEAD.name;
/** What each protection of a sandbox costs: paper-repro's Isolation section. */
const ISOLATION_BENCH = 'isolation-overhead';
/** Whoever fills a row of paper-repro.md's claims table or has a figure on the page, in page order. */
export const PAPER_SOURCES: PaperSource[] = [...EXPERIMENTS, ENGINE_OVERHEAD, KERNEL_FIXES];
const CLAIMS = claimsOf(PAPER_SOURCES);
/** Row 2 (IPv6 off at boot): one kernel booted both ways in qemu by `kernels`. */
const KERNELS_STEP = KERNEL_FIXES.name;

export const REPRO_STUDIES = [...EXPERIMENTS.map((e) => e.name), ENGINE_BENCH, ISOLATION_BENCH, KERNELS_STEP];

export function parseStudies(text: string): string[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new UsageError(`--studies: name some of ${REPRO_STUDIES.join(', ')}`);
  for (const n of names)
    if (!REPRO_STUDIES.includes(n))
      throw new UsageError(`--studies: unknown study '${n}' (known: ${REPRO_STUDIES.join(', ')})`);
  return [...new Set(names)];
}

function steps(o: ReproOptions): Step[] {
  const wanted = (s: string) => !o.studies || o.studies.includes(s);
  const cli = path.join(o.repoRoot, 'dist/app/cli.js');
  const quick = o.quick ? ['--quick'] : [];
  const list: Step[] = EXPERIMENTS.filter((e) => wanted(e.name)).map((e) => ({
    label: `${e.name}${o.quick ? ' --quick' : ''}`,
    study: e.name,
    argv: [cli, 'run', e.name, ...quick, '--out', o.out],
    traced: false,
  }));
  if (wanted(ENGINE_BENCH))
    list.push({
      label: `bench:engine${o.quick ? ' --quick' : ''}`,
      study: ENGINE_BENCH,
      argv: [path.join(o.repoRoot, 'dist/app/bench/engine.js'), ...quick, '--out', o.out],
      traced: false,
    });
  if (wanted(ISOLATION_BENCH))
    list.push({
      label: `bench:isolation${o.quick ? ' --quick' : ''}`,
      study: ISOLATION_BENCH,
      argv: [path.join(o.repoRoot, 'dist/app/bench/isolation.js'), ...quick, '--out', o.out],
      traced: false,
    });
  if (wanted(KERNELS_STEP))
    list.push({
      label: `kernels (row 2: ${FIX_PARAMS} against none)${o.quick ? ' --quick' : ''}`,
      study: KERNELS_STEP,
      argv: [cli, ...kernelFixesArgs(o.quick), '--out', o.out],
      traced: false,
    });
  if (o.trace) {
    // Traced sweeps are always --quick: their job is the lock figure, and tracing costs throughput.
    for (const e of EXPERIMENTS.filter((x) => x.reproTrace && wanted(x.name))) {
      const families = e.reproTrace!.join(',');
      list.push({
        label: `${e.name} --quick --trace ${families}`,
        study: e.name,
        argv: [cli, 'run', e.name, '--quick', '--trace', families, '--out', o.out],
        traced: true,
      });
    }
  }
  return list;
}

/** Why a traced run could not trace, from its meta.json. */
function traceGaps(runDir: string): string | undefined {
  const trace = readMeta(runDir)?.trace as { unavailable?: Record<string, string> } | undefined;
  const gaps = Object.entries(trace?.unavailable ?? {});
  return gaps.length > 0 ? `not traced: ${gaps.map(([f, why]) => `${f} (${why})`).join(', ')}` : undefined;
}

class StepRunner {
  private child: ReturnType<typeof spawn> | undefined;
  interrupted = false;

  constructor(private readonly o: ReproOptions) {}

  /** Ctrl-C reaches the running study once, through us: it finishes cleaning up, then we stop. */
  interrupt(): void {
    this.interrupted = true;
    this.child?.kill('SIGINT');
  }

  killNow(): void {
    this.child?.kill('SIGKILL');
  }

  run(step: Step): Promise<StepResult> {
    const before = snapshotRuns(this.o.out, [step.study]);
    const t0 = performance.now();
    const seconds = () => (performance.now() - t0) / 1000;
    return new Promise((resolve) => {
      // Its own process group, so a terminal's Ctrl-C is not delivered twice (a second one makes a study exit at once).
      const child = spawn(process.execPath, step.argv, {
        cwd: this.o.repoRoot,
        stdio: ['ignore', 'inherit', 'pipe'],
        detached: true,
      });
      this.child = child;
      let tail = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        process.stderr.write(chunk);
        tail = (tail + chunk.toString()).slice(-4096);
      });
      child.on('error', (e) => resolve({ status: 'failed', reason: e.message, seconds: seconds() }));
      child.on('close', (code, signal) => {
        this.child = undefined;
        const last =
          tail
            .split('\n')
            .map((l) => l.trim())
            .filter(Boolean)
            .pop() ?? '';
        const reason = last.replace(/^[\w:-]+: /, '') || (signal ? `killed by ${signal}` : `exit status ${code}`);
        if (this.interrupted || code === 130) return resolve({ status: 'interrupted', seconds: seconds() });
        if (code === 3) return resolve({ status: 'skipped', reason, seconds: seconds() });
        if (code !== 0)
          return resolve({ status: 'failed', reason: `exit status ${code ?? signal}: ${reason}`, seconds: seconds() });
        const made = newRuns(this.o.out, before).get(step.study);
        if (!made || !loadRunData(this.o.out, made))
          return resolve({
            status: 'failed',
            reason: `exited 0 but left no complete run in results/${step.study}`,
            seconds: seconds(),
          });
        resolve({ status: 'ran', runDir: made, seconds: seconds(), note: step.traced ? traceGaps(made) : undefined });
      });
    });
  }
}

function setup(o: ReproOptions): void {
  process.stderr.write('repro: scripts/setup.sh (installs and starts what the studies need)\n');
  const r = spawnSync('bash', [path.join(o.repoRoot, 'scripts/setup.sh')], { cwd: o.repoRoot, stdio: 'inherit' });
  if (r.status !== 0)
    process.stderr.write(
      `repro: setup.sh exited ${r.status ?? r.signal}; going on: a study that lacks what it could not provide will be reported as skipped\n`,
    );
}

/** Runs the studies, regenerates paper-repro.md and the figures page; returns the exit status. */
export async function repro(o: ReproOptions): Promise<number> {
  if (process.geteuid?.() !== 0)
    throw new PrivilegeError('repro needs root: the studies create namespaces, mounts and cgroups');
  if (o.setup) setup(o);
  const plan = steps(o);
  const runner = new StepRunner(o);
  const onSignal = () => {
    if (runner.interrupted) runner.killNow();
    else {
      process.stderr.write('\nrepro: stopping after the running study has cleaned up (Ctrl-C again to kill it)\n');
      runner.interrupt();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const results: { step: Step; result: StepResult }[] = [];
  const started = new Date();
  try {
    for (const [i, step] of plan.entries()) {
      if (runner.interrupted) break;
      process.stderr.write(`\nrepro: [${i + 1}/${plan.length}] ${step.label}\n`);
      const result = await runner.run(step);
      results.push({ step, result });
      process.stderr.write(`repro: [${i + 1}/${plan.length}] ${step.label}: ${describe(o, result)}\n`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  process.stdout.write(
    `\n${markdownTable(
      ['study', 'result', 'seconds', 'run or reason'],
      results.map(({ step, result }) => [step.label, result.status, result.seconds.toFixed(0), detail(o, result)]),
    )}\n`,
  );
  writeRecord(o, started, results);
  if (runner.interrupted) {
    process.stderr.write('repro: interrupted; paper-repro.md and the figures page are left as they were\n');
    return 130;
  }
  await regenerate(o, outcomesOf(o, results));
  const failed = results.filter((r) => r.result.status === 'failed').length;
  const skipped = results.filter((r) => r.result.status === 'skipped').length;
  if (failed + skipped > 0)
    process.stderr.write(`repro: incomplete: ${failed} failed, ${skipped} skipped (their rows say so)\n`);
  return failed > 0 ? 1 : 0;
}

function describe(o: ReproOptions, r: StepResult): string {
  return r.status === 'interrupted' ? 'interrupted' : `${r.status} in ${r.seconds.toFixed(0)} s: ${detail(o, r)}`;
}

function detail(o: ReproOptions, r: StepResult): string {
  if (r.status === 'ran') return `${path.relative(o.out, r.runDir)}${r.note ? ` (${r.note})` : ''}`;
  return r.status === 'interrupted' ? '' : r.reason;
}

/** What the claims read for each study: this repro's untraced run, why there is none, or (for a study not asked for) its reference run. */
function outcomesOf(o: ReproOptions, results: { step: Step; result: StepResult }[]): Map<string, StudyOutcome> {
  const outcomes = new Map<string, StudyOutcome>();
  for (const { step, result } of results) {
    if (step.traced) continue;
    if (result.status === 'ran') outcomes.set(step.study, { run: loadRunData(o.out, result.runDir)! });
    else if (result.status !== 'interrupted')
      outcomes.set(step.study, { skipped: `${result.status}: ${result.reason}` });
  }
  for (const [study, run] of referenceRuns(PAPER_SOURCES, o.out)) {
    if (outcomes.has(study)) continue;
    if (run) outcomes.set(study, { run });
  }
  return outcomes;
}

/**
 * paper-repro.md's "ours" and "status" columns and figures/index.html, from the outcomes given;
 * prints each row's verdict.
 */
export async function regenerate(
  o: Pick<ReproOptions, 'out' | 'repoRoot'>,
  outcomes: Map<string, StudyOutcome>,
): Promise<void> {
  const file = path.join(o.out, 'paper-repro.md');
  fs.mkdirSync(o.out, { recursive: true });
  if (!fs.existsSync(file)) fs.copyFileSync(path.join(o.repoRoot, 'paper-repro.md'), file);
  const verdicts = regeneratePaperRepro(CLAIMS, file, outcomes, o.out, sectionsOf(PAPER_SOURCES));
  const figuresDir = path.join(o.out, 'figures');
  fs.mkdirSync(figuresDir, { recursive: true });
  const page = writeFiguresPage(
    figuresDir,
    figureCaptions(PAPER_SOURCES, figuresDir, outcomes, await drawFigures(EXPERIMENTS, o.out, outcomes)),
    {
      title: "sockbench: the SOCK paper's figures, reproduced",
      generatedFrom:
        'Generated by `npm run repro` (or `npm run sockbench -- paper-repro`) from the runs named under each figure; the same numbers fill the "ours" column of paper-repro.md.',
    },
  );
  process.stdout.write(
    `\npaper-repro: ${path.relative(process.cwd(), file)} (columns "ours" and "status" regenerated)\nfigures:     ${path.relative(process.cwd(), page)}\n`,
  );
  // One line per row, so a user's own run says whether it reproduced without opening the page.
  const lines = [...verdicts].map(([row, v]) => {
    const studies = [...new Set(CLAIMS.filter((c) => c.row === row).map((c) => c.study))].join(', ');
    return `  row ${row} (${studies}): ${v.word}`;
  });
  process.stdout.write(`\nverdicts (the status column; its tolerances are in the page):\n${lines.join('\n')}\n`);
}

/** results/repro/<stamp>/repro.json: which run each study left, or why none. */
function writeRecord(o: ReproOptions, started: Date, results: { step: Step; result: StepResult }[]): void {
  const dir = createRunDir(o.out, 'repro', started);
  const record = {
    started: started.toISOString(),
    finished: new Date().toISOString(),
    quick: o.quick,
    steps: results.map(({ step, result }) => ({
      study: step.study,
      command: step.label,
      traced: step.traced,
      ...result,
      runDir: result.status === 'ran' ? path.relative(o.out, result.runDir) : undefined,
    })),
  };
  fs.writeFileSync(path.join(dir, 'repro.json'), `${JSON.stringify(record, null, 2)}\n`);
}
