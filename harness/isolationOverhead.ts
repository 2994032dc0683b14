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
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, quantile } from 'simple-statistics';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { constants, makeNetns, spawn, watchExit } from '../native/index.js';
import { Registry } from '../engine/registry.js';
import type { Sandbox } from '../engine/sandbox.js';
import { FULL_ISOLATION, type Isolation, SockEngine } from '../engine/sockEngine.js';
import { DEFAULT_STATE_DIR } from '../engine/stateDir.js';
import type { Zygote } from '../engine/zygote.js';
import { REPO_ROOT } from './cli.js';
import { writeCsv } from './csv.js';
import { captureEnvironment } from './environment.js';
import { InterruptedError, isUserError, PrivilegeError, UsageError } from './errors.js';
import { markdownTable } from './markdown.js';
import { runId } from './runner.js';
import { bootstrapMedianRatio } from './stats.js';

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

function shuffled<T>(xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
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
      steps: [...(fd !== undefined ? [{ op: 'setns' as const, fd, flags: constants.CLONE_NEWNET }] : []), { op: 'exec', argv: ['/bin/true'], env: [] }],
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
  const args = yargs(hideBin(process.argv))
    .scriptName('bench:isolation')
    .usage('$0 [options]\n\nWhat each protection of a SOCK sandbox costs: lean, zygote and warm starts on engines that differ in one protection each, interleaved in one run.')
    .option('rounds', { type: 'number', default: 30, describe: 'measured rounds; each round times every variant and start once, in a shuffled order' })
    .option('warmup', { type: 'number', default: 3, describe: 'unmeasured rounds first' })
    .option('gap', { type: 'number', default: 40, describe: 'ms of idleness before each measurement (a zygote forks its spare child after 20 ms idle, as it would between requests)' })
    .option('quick', { type: 'boolean', default: false, describe: '8 rounds, 1 warm-up' })
    .option('base', { type: 'string', default: process.env.SOCK_BASE ?? path.join(DEFAULT_STATE_DIR, 'base'), describe: 'base root file system' })
    .option('out', { type: 'string', describe: 'directory that receives results/ [default: the repository root]' })
    .strict()
    .fail((msg, err) => {
      throw new UsageError(msg ?? err?.message);
    })
    .parseSync();
  const rounds = args.quick ? 8 : args.rounds;
  const warmup = args.quick ? 1 : args.warmup;
  if (!Number.isInteger(rounds) || rounds < 2 || !Number.isInteger(warmup) || warmup < 0) throw new UsageError('--rounds must be a whole number >= 2 and --warmup >= 0');
  if (!(args.gap >= 0)) throw new UsageError('--gap must be a number of ms >= 0');
  if (process.getuid?.() !== 0) throw new PrivilegeError('bench:isolation must run as root (it starts SOCK engines)');
  const base = path.resolve(args.base);

  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sockbench-isolation-'));
  const registryDir = path.join(scratch, 'registry');
  fs.mkdirSync(path.join(registryDir, 'noop'), { recursive: true, mode: 0o755 });
  fs.chmodSync(scratch, 0o755);
  fs.chmodSync(registryDir, 0o755);
  fs.writeFileSync(path.join(registryDir, 'noop', 'f.py'), 'def f(event):\n    return None\n');
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const samples: Sample[] = [];
  const benches: Bench[] = [];
  try {
    for (const variant of VARIANTS) {
      const engine = await SockEngine.start({ stateDir: path.join(scratch, variant.name), base, capacity: 2, reserve: 2, isolation: variant.isolation });
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
    const measure: Record<Start, (b: Bench) => Promise<number>> = {
      lean: async (b) => {
        const t0 = performance.now();
        const sandbox = await b.engine.create({ code: code(b), packages: {} });
        await sandbox.invoke(null, 30_000);
        const ms = performance.now() - t0;
        await sandbox.destroy();
        return ms;
      },
      zygote: async (b) => {
        const t0 = performance.now();
        const sandbox = await b.engine.createFrom(b.zygote, { code: code(b), packages: {} });
        await sandbox.invoke(null, 30_000);
        const ms = performance.now() - t0;
        await sandbox.destroy();
        return ms;
      },
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
      ...benches.flatMap((b) => STARTS.map((start) => ({ variant: b.variant.name, start, run: () => measure[start](b) }))),
      ...NETNS_MODES.map((mode) => ({ variant: 'kernel', start: `netns:${mode}`, run: () => netnsStart(mode) })),
      { variant: 'kernel', start: 'netns:create', run: netnsCreate },
    ];
    for (let round = 1 - warmup; round <= rounds; round++) {
      if (interrupted) throw new InterruptedError('interrupted: nothing was written');
      for (const task of shuffled(tasks)) {
        await new Promise((r) => setTimeout(r, args.gap));
        const ms = await task.run();
        if (round > 0) samples.push({ variant: task.variant, start: task.start, round, ms });
      }
      if (round > 0 && (round % 5 === 0 || round === rounds)) process.stderr.write(`bench:isolation: ${round}/${rounds} rounds\n`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const b of benches) await b.engine.shutdown().catch((e) => process.stderr.write(`bench:isolation: shutting down ${b.variant.name}: ${(e as Error).message}\n`));
    fs.rmSync(scratch, { recursive: true, force: true });
  }

  const of = (variant: string, start: string) => samples.filter((s) => s.variant === variant && s.start === start).map((s) => s.ms);
  const summary = [...new Set(samples.map((s) => `${s.variant}\0${s.start}`))].map((key) => {
    const [variant, start] = key.split('\0') as [string, string];
    const xs = of(variant, start);
    // A protection's cost: full over the variant without it (for none: the whole cost).
    const against = variant === 'full' || variant === 'kernel' ? undefined : bootstrapMedianRatio(of('full', start), xs);
    return {
      variant, start, n: xs.length, median_ms: median(xs), p95_ms: quantile(xs, 0.95),
      full_over_this: against?.ratio ?? NaN, ci_low: against?.low ?? NaN, ci_high: against?.high ?? NaN,
    };
  });
  const dir = path.join(path.resolve(args.out ?? REPO_ROOT), 'results', 'isolation-overhead', runId(new Date()));
  fs.mkdirSync(dir, { recursive: true });
  writeCsv(path.join(dir, 'data.csv'), samples, ['variant', 'start', 'round', 'ms']);
  writeCsv(path.join(dir, 'summary.csv'), summary);
  const environment = await captureEnvironment(process.argv.slice(1));
  fs.writeFileSync(path.join(dir, 'meta.json'), `${JSON.stringify({ status: 'complete', options: { quick: args.quick }, rounds, warmup, gap_ms: args.gap, base, variants: VARIANTS, summary, environment }, null, 2)}\n`);
  const ms = (x: number) => x.toFixed(2);
  const order = (variant: string) => VARIANTS.findIndex((v) => v.name === variant);
  const ci = (s: (typeof summary)[number]) => (Number.isNaN(s.full_over_this) ? '' : `${s.full_over_this.toFixed(3)} [${s.ci_low.toFixed(3)}, ${s.ci_high.toFixed(3)}]`);
  process.stdout.write(
    markdownTable(
      ['start', 'variant', 'n', 'median ms', 'p95 ms', 'full / this [95% CI]'],
      summary.sort((a, b) => a.start.localeCompare(b.start) || order(a.variant) - order(b.variant)).map((s) => [s.start, s.variant, String(s.n), ms(s.median_ms), ms(s.p95_ms), ci(s)]),
    ) + `\n\nfull / no-<p> is what protection p costs; full / none is what all of them cost.\ndata: ${path.relative(process.cwd(), dir)}\n`,
  );
  return 0;
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => (process.exitCode = code),
    (e) => {
      process.stderr.write(`bench:isolation: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = isUserError(e) ? e.exitCode : (e as { exitCode?: number }).exitCode ?? 1;
    },
  );
}
