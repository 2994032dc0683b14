// The contract between the runner and the experiments it drives.
import type { Argv } from 'yargs';
import type { RunData } from './paperRepro/runData.js';
import type { Progress } from './progress.js';
import type { TraceFamily } from './tracer.js';

/** One measured repetition of one point of a sweep, as an experiment reports it. */
export interface Measurement {
  ops: number;
  seconds: number;
  /** Per-operation latency in microseconds, one entry per operation. */
  latenciesUs: Float64Array;
  /** Extra columns this experiment adds to every row (e.g. ops_per_sec_with_teardown); numeric ones are summarised. */
  extra?: Record<string, number | string>;
  /**
   * For a measurement made of timed phases (setup, teardown): the phase this one is. measure()
   * then returns one Measurement per phase and each becomes its own row with a `phase` column.
   */
  phase?: string;
}

/** One point of a sweep: a configuration at one concurrency. */
export interface Point {
  config: string;
  concurrency: number;
  /** Measurement length in seconds, or undefined when the run is bounded by `ops`. */
  duration?: number;
  ops?: number;
  /** A sweep dimension beyond config and concurrency (e.g. host_mounts): each becomes a column. */
  params?: Record<string, number>;
}

/** A row of data.csv. The first nine columns are the contract every experiment keeps. */
export interface Row {
  experiment: string;
  config: string;
  concurrency: number;
  repeat: number;
  ops: number;
  seconds: number;
  ops_per_sec: number;
  p50_us: number;
  p99_us: number;
  [column: string]: string | number;
}

export interface SweepDefaults {
  concurrency: number[];
  duration: number;
  repeat: number;
  /** Seconds of warm-up run (and discarded) before the first repetition of each point. */
  warmup: number;
}

export interface RunContext {
  /** Aborted on Ctrl-C (SIGINT) or SIGTERM; a measurement should stop promptly and reject. */
  signal: AbortSignal;
  progress: Progress;
  /** The experiment's own parsed options (whatever its `options()` declared). */
  options: Record<string, unknown>;
  /** Facts about this run worth keeping (a probe's calibration, a degraded feature): meta.json `notes`. */
  notes: Record<string, unknown>;
}

/** What a check read from a run: its numbers as the status prints them, and whether they are within the tolerance. */
export interface CheckResult {
  ours: string;
  holds: boolean;
}

/**
 * One test of a claim against a run, built from the standard tolerances of
 * paperRepro/tolerances.ts, so that a user's own run says whether it reproduced the paper.
 */
export interface ClaimCheck {
  /** What it judges, as the verdict names it: 'direction', 'size', 'shape', or the part of a claim ('download'). */
  judges: string;
  /** The paper's number (or words, where it gave none) that the tolerance quotes: '~200/s', '4.5x'. */
  paper: string;
  /** The tolerance in words, the paper's number in it: "within 2x of the paper's ~200/s (the peak rate with all five: 100–400/s)". */
  tolerance: string;
  /** Throws MissingData (paperRepro/runData.ts) when the run lacks what it needs. */
  judge(run: RunData): CheckResult;
}

/** One sentence of paper-repro.md's claims table: fixed words around numbers read from a run, and its checks. */
export interface PaperClaim {
  /** The row of the claims table it fills; two claims for one row are joined with "; ". */
  row: number;
  /** Throws MissingData (paperRepro/runData.ts) when the run lacks what it needs. */
  ours(run: RunData): string;
  /** What the row's status judges; its verdict is computed from these. */
  checks: ClaimCheck[];
  /**
   * Words the status ends with, true of any run, so without numbers: "against overlayfs: AUFS is
   * not in mainline", "see below" (the discussion below the table, which names its runs).
   */
  caveat?: string;
}

/** What a study (or a bench) puts beside the paper: its figure's caption and its claims. */
export interface PaperFacts {
  /** The figures page's caption: the figure's title, what the paper found, and what it blamed in the kernel. */
  figure?: { title: string; paper: string; locks?: string };
  claims: PaperClaim[];
  /**
   * A section of paper-repro.md generated whole from the run (tables, not sentences): written
   * between two markers named after the study, or appended under this title the first time.
   */
  section?: { title: string; render(run: RunData): string };
}

export interface Experiment {
  name: string;
  /** One line for `--help` and the registry listing. */
  summary: string;
  /** Its figure's caption and its rows of paper-repro.md's claims table. */
  paper: PaperFacts;
  /** `npm run repro` also runs a --quick sweep traced with these probe families, for its lock figure. */
  reproTrace?: TraceFamily[];
  /** `npm run kernels` can run it in a guest; 'default' ones run when --studies is not given. */
  kernelMatrix?: 'default' | 'on request';
  /**
   * The config with no namespace at all (a plain clone), where the study has one: `kernels`
   * divides every other config's rate by it, so guests slowed alike by an emulator compare in shape.
   */
  plainConfig?: string;
  defaults: SweepDefaults;
  /** The small sweep `--quick` runs: it must finish in well under a minute. */
  quick: SweepDefaults;
  /** Declares the experiment's own flags on top of the common ones. */
  options(argv: Argv): Argv;
  /** The configurations to sweep, from the parsed options; throws UsageError on bad values. */
  configs(options: Record<string, unknown>): string[];
  /** Checks privileges and kernel features before anything is written; throws PrivilegeError. */
  preflight(options: Record<string, unknown>): Promise<void>;
  /** Called once before the sweep and once after it (also after an error or Ctrl-C). */
  setup?(ctx: RunContext): Promise<void>;
  teardown?(ctx: RunContext): Promise<void>;
  /**
   * The points of the sweep, when it has dimensions beyond config x concurrency (each point's
   * params); without it, every config at every concurrency. Order is the order measured.
   */
  points?(
    configs: string[],
    concurrency: number[],
    options: Record<string, unknown>,
  ): Pick<Point, 'config' | 'concurrency' | 'params'>[];
  measure(point: Point, ctx: RunContext): Promise<Measurement | Measurement[]>;
  /** The Vega-Lite spec of this experiment's figure, drawn from all rows of the run. */
  figure(rows: Row[]): object;
}
