// npm run bench:isolation: what each protection of a SOCK sandbox costs. In one run, with the
// rounds interleaved in a shuffled order so every variant sees the same machine, it times three
// starts on engines that differ in one protection each:
//   lean    - a new lean container answering a no-op handler (create, then the first invoke),
//   zygote  - a fork of the root zygote moved into a new container, answering the same,
//   warm    - a frozen instance thawed and invoked (what the handler cache does for a hit),
// for the variants
//   full         - every protection on (what `sock worker up` runs),
//   no-<p>       - every protection but p (terminal, network, userns, seccomp),
//   none         - none of them: the engine as it was before it was a sandbox,
// and, for the network namespace, the kernel-level choice behind the pool: a child cloned into a
// new network namespace, against one that joins a ready one with setns, against one that does
// neither (each runs /bin/true). Each protection's cost is the median of full over no-<p>,
// with a bootstrap interval; the whole cost is full over none.
import fs from 'node:fs';
import path from 'node:path';
import { median, quantile } from 'simple-statistics';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { constants, makeNetns, spawn, watchExit } from '../../native/index.js';
import { Registry } from '../../engine/worker/registry.js';
import type { Sandbox } from '../../engine/sandbox/sandbox.js';
import { FULL_ISOLATION, type Isolation, SockEngine } from '../../engine/sandbox/sockEngine.js';
import type { Zygote } from '../../engine/sandbox/zygote.js';
import { REPO_ROOT, runIfMain } from '../flags.js';
import { writeCsv } from '../../harness/csv.js';
import { captureEnvironment } from '../../harness/environment.js';
import { createRunDir, writeMeta } from '../../harness/runDirs.js';
import { InterruptedError, PrivilegeError } from '../../harness/errors.js';
import { interruptions, noopRegistry, roundOptions, roundsOf, shuffled } from '../../harness/interleavedBench.js';
import { markdownTable } from '../../harness/markdown.js';
import { bootstrapMedianRatio } from '../../harness/stats.js';

const PROTECTIONS = Object.keys(FULL_ISOLATION) as (keyof Isolation)[];
const STARTS = ['lean', 'zygote', 'warm'] as const;
type Start = (typeof STARTS)[number];
const NETNS_MODES = ['plain', 'clone-newnet', 'setns-pooled'] as const;

interface Variant {
  name: string;
  isolation: Isolation;
}

const VARIANTS: Variant[] = [
  { name: 'full', isolation: FULL_ISOLATION },
  ...PROTECTIONS.map((p) => ({ name: `no-${p}`, isolation: { ...FULL_ISOLATION, [p]: false } })),
  { name: 'none', isolation: Object.fromEntries(PROTECTIONS.map((p) => [p, false])) as unknown as Isolation },
];

interface Sample {
  variant: string;
  start: string;
  round: number;
  ms: number;
}

/** One variant's engine, its root zygote and the frozen instance its warm hits thaw. */
interface Bench {
  variant: Variant;
  engine: SockEngine;
  zygote: Zygote;
  warm: Sandbox;
}

/** Times a child that runs /bin/true after joining (or making) a network namespace, or neither. */
async function netnsStart(mode: (typeof NETNS_MODES)[number]): Promise<number> {
  const fd = mode === 'setns-pooled' ? (await makeNetns(1))[0]! : undefined;
  try {
    const t0 = performance.now();
    const pid = spawn({
      cloneFlags: mode === 'clone-newnet' ? constants.CLONE_NEWNET : 0,
      steps: [
        ...(fd !== undefined ? [{ op: 'setns' as const, fd, flags: constants.CLONE_NEWNET }] : []),
        { op: 'exec', argv: ['/bin/true'], env: [] },
      ],
    });
    const status = await watchExit(pid);
    const ms = performance.now() - t0;
    if (status.exitCode !== 0) throw new Error(`/bin/true failed (${JSON.stringify(status)})`);
    return ms;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Times makeNetns(1): what refilling the pool costs per namespace, off the request's path. */
async function netnsCreate(): Promise<number> {
  const t0 = performance.now();
  const [fd] = await makeNetns(1);
  const ms = performance.now() - t0;
  fs.closeSync(fd!);
  return ms;
}

async function main(): Promise<number> {
  const started = new Date();
  const args = roundOptions(
    yargs(hideBin(process.argv))
      .scriptName('bench:isolation')
      .usage(
        '$0 [options]\n\nWhat each protection of a SOCK sandbox costs: lean, zygote and warm starts on engines that differ in one protection each, interleaved in one run.',
      ),
    {
      rounds: 30,
      warmup: 3,
      gap: 40,
      quickRounds: 8,
      gapWhy: 'a zygote forks its spare child after 20 ms idle, as it would between requests',
    },
  )
    .option('starts', {
      type: 'array',
      string: true,
      choices: [...STARTS, 'netns'],
      default: [...STARTS, 'netns'],
      describe: 'which starts to time (netns: the kernel-level choices behind the network namespace pool)',
    })
    .option('variants', {
      type: 'array',
      string: true,
      choices: VARIANTS.map((v) => v.name),
      default: VARIANTS.map((v) => v.name),
      describe: 'which engines to start; full is always among them (every cost is relative to it)',
    })
    .parseSync();
  const starts = STARTS.filter((s) => args.starts.includes(s));
  const variants = VARIANTS.filter((v) => v.name === 'full' || args.variants.includes(v.name));
  const { rounds, warmup } = roundsOf(args, 8);
  if (process.getuid?.() !== 0) throw new PrivilegeError('run as root: it starts SOCK engines');
  const base = path.resolve(args.base);

  const { scratch, registryDir } = noopRegistry('sockbench-isolation-');
  const signals = interruptions();
  const samples: Sample[] = [];
  const benches: Bench[] = [];
  try {
    for (const variant of starts.length > 0 ? variants : []) {
      const engine = await SockEngine.start({
        stateDir: path.join(scratch, variant.name),
        base,
        capacity: 2,
        reserve: 2,
        isolation: variant.isolation,
      });
      const code = new Registry(registryDir, engine.state.code).lookup('noop')!.code;
      try {
        const zygote = await engine.startZygote({}, []);
        const warm = await engine.create({ code, packages: {} });
        await warm.invoke(null, 30_000);
        await warm.pause();
        benches.push({ variant, engine, zygote, warm });
      } catch (e) {
        await engine.shutdown();
        throw e;
      }
    }
    const code = (b: Bench) => new Registry(registryDir, b.engine.state.code).lookup('noop')!.code;
    /** From asking for a sandbox to its first answer; its destruction is not timed. */
    const coldStart = async (make: () => Promise<Sandbox>) => {
      const t0 = performance.now();
      const sandbox = await make();
      await sandbox.invoke(null, 30_000);
      const ms = performance.now() - t0;
      await sandbox.destroy();
      return ms;
    };
    const measure: Record<Start, (b: Bench) => Promise<number>> = {
      lean: (b) => coldStart(() => b.engine.create({ code: code(b), packages: {} })),
      zygote: (b) => coldStart(() => b.engine.createFrom(b.zygote, { code: code(b), packages: {} })),
      warm: async (b) => {
        const t0 = performance.now();
        await b.warm.unpause();
        await b.warm.invoke(null, 30_000);
        const ms = performance.now() - t0;
        await b.warm.pause();
        return ms;
      },
    };
    type Task = { variant: string; start: string; run: () => Promise<number> };
    const tasks: Task[] = [
      ...benches.flatMap((b) =>
        starts.map((start) => ({ variant: b.variant.name, start, run: () => measure[start](b) })),
      ),
      ...(args.starts.includes('netns')
        ? [
            ...NETNS_MODES.map((mode) => ({ variant: 'kernel', start: `netns:${mode}`, run: () => netnsStart(mode) })),
            { variant: 'kernel', start: 'netns:create', run: netnsCreate },
          ]
        : []),
    ];
    for (let round = 1 - warmup; round <= rounds; round++) {
      if (signals.interrupted) throw new InterruptedError('interrupted: nothing was written');
      for (const task of shuffled(tasks)) {
        await new Promise((r) => setTimeout(r, args.gap));
        const ms = await task.run();
        if (round > 0) samples.push({ variant: task.variant, start: task.start, round, ms });
      }
      if (round > 0 && (round % 5 === 0 || round === rounds))
        process.stderr.write(`bench:isolation: ${round}/${rounds} rounds\n`);
    }
  } finally {
    signals.stop();
    for (const b of benches)
      await b.engine
        .shutdown()
        .catch((e) =>
          process.stderr.write(`bench:isolation: shutting down ${b.variant.name}: ${(e as Error).message}\n`),
        );
    fs.rmSync(scratch, { recursive: true, force: true });
  }

  const of = (variant: string, start: string) =>
    samples.filter((s) => s.variant === variant && s.start === start).map((s) => s.ms);
  const summary = [...new Set(samples.map((s) => `${s.variant}\0${s.start}`))].map((key) => {
    const [variant, start] = key.split('\0') as [string, string];
    const xs = of(variant, start);
    // A protection's cost: full over the variant without it (for none: the whole cost).
    const against =
      variant === 'full' || variant === 'kernel' ? undefined : bootstrapMedianRatio(of('full', start), xs);
    return {
      variant,
      start,
      n: xs.length,
      median_ms: median(xs),
      p95_ms: quantile(xs, 0.95),
      full_over_this: against?.ratio ?? NaN,
      ci_low: against?.low ?? NaN,
      ci_high: against?.high ?? NaN,
    };
  });
  const dir = createRunDir(path.resolve(args.out ?? REPO_ROOT), 'isolation-overhead', started);
  writeCsv(path.join(dir, 'data.csv'), samples, ['variant', 'start', 'round', 'ms']);
  writeCsv(path.join(dir, 'summary.csv'), summary);
  const environment = await captureEnvironment(process.argv.slice(1));
  writeMeta(dir, {
    experiment: 'isolation-overhead',
    status: 'complete',
    started: started.toISOString(),
    finished: new Date().toISOString(),
    options: { quick: args.quick },
    environment,
    rounds,
    warmup,
    gap_ms: args.gap,
    base,
    variants,
    starts: args.starts,
    summary,
  });
  const ms = (x: number) => x.toFixed(2);
  const order = (variant: string) => VARIANTS.findIndex((v) => v.name === variant);
  const ci = (s: (typeof summary)[number]) =>
    Number.isNaN(s.full_over_this)
      ? ''
      : `${s.full_over_this.toFixed(3)} [${s.ci_low.toFixed(3)}, ${s.ci_high.toFixed(3)}]`;
  process.stdout.write(
    markdownTable(
      ['start', 'variant', 'n', 'median ms', 'p95 ms', 'full / this [95% CI]'],
      summary
        .sort((a, b) => a.start.localeCompare(b.start) || order(a.variant) - order(b.variant))
        .map((s) => [s.start, s.variant, String(s.n), ms(s.median_ms), ms(s.p95_ms), ci(s)]),
    ) +
      `\n\nfull / no-<p> is what protection p costs; full / none is what all of them cost.\ndata: ${path.relative(process.cwd(), dir)}\n`,
  );
  return 0;
}

runIfMain(import.meta.url, 'bench:isolation', main);
