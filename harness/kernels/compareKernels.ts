// What a kernels run says across kernels: each kernel against the first, study by study,
// through `compare` (and its regression gate); each guest's rates relative to its own plain
// clone, so kernels compare in shape whatever slowed every operation alike; and one
// summary.csv of every kernel's rates, which paper-repro's row 2 reads. The same code serves
// a run just made and `--from`, which compares kernels runs made elsewhere (a CI matrix's jobs).
import fs from 'node:fs';
import path from 'node:path';
import { compareCommand } from '../compare.js';
import { readCsv, writeCsv } from '../csv.js';
import { UsageError } from '../errors.js';
import { markdownTable } from '../markdown.js';
import { readMeta, RESULTS_DIR } from '../runDirs.js';
import type { KernelOutcome, StudyOutcome } from './results.js';

/** For each study that has one, the config without namespaces every other is divided by (Experiment.plainConfig). */
export type PlainConfigs = Record<string, string>;

/** One kernel's rate at one point of one study: a row of the kernels run's summary.csv. */
export interface KernelRate {
  kernel: string;
  name: string;
  release: string;
  params: string;
  accel: string;
  study: string;
  config: string;
  concurrency: number;
  /** Creations per second, counted once the kernel freed what was made when the study waited for that. */
  ops_per_sec: number;
  /** ops_per_sec over the plain config's at the same concurrency in the same run; empty for studies without one. */
  relative_to_plain: number | '';
}

/** The rate column of a summary row: with teardown waited when the study measured it (netns). */
function rateOf(row: Record<string, string | number>): number {
  const withTeardown = row.ops_per_sec_with_teardown_median;
  return typeof withTeardown === 'number' ? withTeardown : Number(row.ops_per_sec_median);
}

/** Every rate of one kernel's run of a study, each relative to that run's plain config. */
function ratesOf(o: KernelOutcome, study: string, runDir: string, plain?: string): KernelRate[] {
  const file = path.join(runDir, 'summary.csv');
  if (!fs.existsSync(file)) return [];
  const rows = readCsv(file);
  const plainAt = new Map(
    rows.filter((r) => r.config === plain).map((r) => [Number(r.concurrency), Number(r.ops_per_sec_median)]),
  );
  return rows.map((r) => {
    const c = Number(r.concurrency);
    const base = plainAt.get(c);
    return {
      kernel: o.label,
      name: o.name,
      release: o.release ?? '',
      params: o.params ?? '',
      accel: o.accel ?? '',
      study,
      config: String(r.config),
      concurrency: c,
      ops_per_sec: rateOf(r),
      relative_to_plain: base ? rateOf(r) / base : '',
    };
  });
}

/** Writes <stampDir>/summary.csv: every kernel's rates, study by study. */
export function writeKernelRates(
  stampDir: string,
  outcomes: readonly KernelOutcome[],
  studies: readonly string[],
  plain: PlainConfigs,
): KernelRate[] {
  const rates = outcomes.flatMap((o) =>
    studies.flatMap((s) => {
      const st = o.studies[s];
      return st?.runDir && st.runStatus === 'complete' ? ratesOf(o, s, st.runDir, plain[s]) : [];
    }),
  );
  if (rates.length > 0) writeCsv(path.join(stampDir, 'summary.csv'), rates);
  return rates;
}

function accelWords(o: KernelOutcome): string {
  if (o.accel === 'tcg') return 'TCG software emulation';
  if (o.accel === 'kvm') return 'KVM';
  if (o.accel === 'host') return 'this machine, no VM';
  return 'no recorded accelerator';
}

/** The shape table: each config's rate relative to the plain config, per kernel, and B's over A's. */
function shapeTable(a: KernelRate[], b: KernelRate[], plain: string): string {
  const key = (r: KernelRate) => `${r.config}\0${r.concurrency}`;
  const bAt = new Map(b.map((r) => [key(r), r]));
  const rows = a
    .filter((r) => r.config !== plain && typeof r.relative_to_plain === 'number' && bAt.has(key(r)))
    .map((r) => {
      const rb = bAt.get(key(r))!;
      const ra = r.relative_to_plain as number;
      const rbRel = rb.relative_to_plain;
      return [
        r.config,
        String(r.concurrency),
        ra.toFixed(3),
        typeof rbRel === 'number' ? rbRel.toFixed(3) : '-',
        typeof rbRel === 'number' ? (rbRel / ra).toFixed(2) : '-',
      ];
    });
  return rows.length === 0
    ? ''
    : markdownTable(['config', 'c', `A / A's ${plain}`, `B / B's ${plain}`, 'B over A (shape)'], rows);
}

/**
 * Each kernel against the first, study by study: absolute numbers through compare (gated by
 * failOnRegressionPct) only when both ran under the same accelerator; the shape table always.
 * Returns true when the gate must fail: a regression, or a gated comparison refused.
 */
export async function compareKernels(
  studies: readonly string[],
  outcomes: readonly KernelOutcome[],
  stampDir: string,
  record: Record<string, unknown>[],
  opts: { failOnRegressionPct?: number; plain: PlainConfigs; note: (s: string) => void },
): Promise<boolean> {
  const [base, ...rest] = outcomes;
  const rates = writeKernelRates(stampDir, outcomes, studies, opts.plain);
  let failed = false;
  for (const study of studies) {
    for (const o of rest) {
      const a = base!.studies[study];
      const b = o.studies[study];
      const entry: Record<string, unknown> = {
        study,
        a: base!.label,
        b: o.label,
        a_run: a?.runDir ?? null,
        b_run: b?.runDir ?? null,
      };
      record.push(entry);
      const missing = [
        [base!, a],
        [o, b],
      ]
        .filter(([, s]) => !s || (s as StudyOutcome).runStatus !== 'complete')
        .map(([k]) => (k as KernelOutcome).name);
      if (missing.length > 0) {
        entry.result = `not compared: no complete ${study} run on ${missing.join(' and ')}`;
        opts.note(`kernels: ${study}: ${o.name} against ${base!.name}: ${entry.result}`);
        continue;
      }
      const heading = (k: KernelOutcome) => `${k.name} (${k.release}, ${accelWords(k)})`;
      process.stdout.write(`\n## ${study}: ${heading(o)} against ${heading(base!)}\n\n`);
      if (o.accel !== base!.accel) {
        // Emulation slows every operation by a factor that has nothing to do with the kernel.
        entry.result = `not a kernel comparison: A ran under ${accelWords(base!)}, B under ${accelWords(o)}, so their absolute numbers differ by the accelerator as much as by the kernel`;
        process.stdout.write(`${entry.result}; only the shape below compares.\n`);
        if (opts.failOnRegressionPct !== undefined) failed = true;
      } else {
        try {
          const rc = await compareCommand(a!.runDir!, b!.runDir!, {
            failOnRegressionPct: opts.failOnRegressionPct,
            outDir: path.join(stampDir, 'compare'),
          });
          entry.result = rc === 0 ? 'ok' : 'regression';
          entry.dir = path.join(
            stampDir,
            'compare',
            `${study}-${path.basename(a!.runDir!)}-vs-${path.basename(b!.runDir!)}`,
          );
          if (rc !== 0) failed = true;
        } catch (e) {
          if (!(e instanceof UsageError)) throw e;
          entry.result = `not comparable: ${e.message}`;
          opts.note(`kernels: ${study}: ${o.name} against ${base!.name}: ${entry.result}`);
          if (opts.failOnRegressionPct !== undefined) failed = true;
        }
      }
      const plain = opts.plain[study];
      if (plain) {
        const of = (k: KernelOutcome) => rates.filter((r) => r.kernel === k.label && r.study === study);
        const table = shapeTable(of(base!), of(o), plain);
        if (table)
          process.stdout.write(
            `\nShape: each rate over the same kernel's ${plain} (plain clone) at the same concurrency. Whatever slows every operation alike (an emulator, a slower machine) cancels out; what is left is the kernel's.\n\n${table}\n`,
          );
      }
    }
  }
  return failed;
}

/** A kernels run made elsewhere, as --from names it, with its runs found where they now lie. */
export interface ImportedKernels {
  stampDir: string;
  studies: string[];
  outcomes: KernelOutcome[];
}

/**
 * Reads the kernels run in dir (the --out of a kernels run, holding results/kernels/<stamp>/
 * and its study runs; or that stamp directory itself). Its meta.json names its runs by the
 * paths they had where it ran: each is found again relative to the --out it recorded.
 */
export function importKernelsRun(dir: string): ImportedKernels {
  const abs = path.resolve(dir);
  if (!fs.existsSync(abs)) throw new UsageError(`--from: ${dir}: no such directory`);
  let stampDir = abs;
  if (!fs.existsSync(path.join(abs, 'meta.json'))) {
    const runs = path.join(abs, RESULTS_DIR, 'kernels');
    const stamps = fs.existsSync(runs)
      ? fs.readdirSync(runs).filter((n) => fs.existsSync(path.join(runs, n, 'meta.json')))
      : [];
    if (stamps.length !== 1)
      throw new UsageError(
        `--from: ${dir}: ${stamps.length === 0 ? 'no kernels run in it' : `${stamps.length} kernels runs in it (${stamps.join(', ')})`}: give the --out of one kernels run, or its results/kernels/<stamp>`,
      );
    stampDir = path.join(runs, stamps[0]!);
  }
  const meta = readMeta(stampDir) as
    { command?: string; status?: string; out?: string; studies?: string[]; kernels?: KernelOutcome[] } | undefined;
  if (meta?.command !== 'kernels' || !Array.isArray(meta.kernels) || typeof meta.out !== 'string')
    throw new UsageError(`--from: ${dir}: ${stampDir}/meta.json is not a kernels run's`);
  // <out>/results/kernels/<stamp>: the recorded --out maps to three levels up, wherever it lies now.
  const outNow = path.resolve(stampDir, '..', '..', '..');
  const moved = (p: string | null) => (p === null ? null : path.join(outNow, path.relative(meta.out!, p)));
  const outcomes = meta.kernels.map((k) => ({
    ...k,
    params: k.params ?? null,
    console: moved(k.console)!,
    studies: Object.fromEntries(
      Object.entries(k.studies).map(([s, st]) => {
        const runDir = moved(st.runDir);
        const there = runDir !== null && fs.existsSync(runDir);
        return [s, { ...st, runDir: there ? runDir : null, runStatus: there ? st.runStatus : null }];
      }),
    ),
  }));
  return { stampDir, studies: meta.studies ?? [], outcomes };
}
