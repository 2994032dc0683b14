// npm run bench:engine: what the SOCK engine adds to Python's own start. In one run, with the
// rounds interleaved in a shuffled order so every mode sees the same machine, it times
//   bare     - chroot <base> python3 -c pass (the same native spawn, nothing else),
//   cgroup   - the same, the child first joining a pooled cgroup as a sandbox's does (the
//              cgroup.procs writes: on cgroup v1 each migration waits for an RCU grace period),
//   sandbox  - a lean container made through the engine's API, answering a no-op handler,
//   http     - POST /run/noop through the worker (HTTP, fresh sandbox per request, caches off),
// and reports each mode's median beside the bare start, as a ratio with a bootstrap interval.
import fs from 'node:fs';
import path from 'node:path';
import { median, quantile } from 'simple-statistics';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { Registry } from '../../engine/worker/registry.js';
import { startWorkerStack } from '../../engine/worker/stack.js';
import { SockEngine } from '../../engine/sandbox/sockEngine.js';
import { Worker } from '../../engine/worker/worker.js';
import { spawn, watchExit } from '../../native/index.js';
import { REPO_ROOT, runIfMain } from '../flags.js';
import { writeCsv } from '../../harness/csv.js';
import { captureEnvironment } from '../../harness/environment.js';
import { createRunDir, writeMeta } from '../../harness/runDirs.js';
import type { PaperSource } from '../../harness/paperRepro/claims.js';
import { sig } from '../../harness/paperRepro/format.js';
import { MissingData, type RunData } from '../../harness/paperRepro/runData.js';
import { InterruptedError } from '../../harness/errors.js';
import { interruptions, noopRegistry, roundOptions, roundsOf, shuffled } from '../../harness/interleavedBench.js';
import { markdownTable } from '../../harness/markdown.js';
import { bootstrapMedianRatio } from '../../harness/stats.js';

const MODES = ['bare', 'cgroup', 'sandbox', 'http'] as const;
type Mode = (typeof MODES)[number];

interface Sample {
  mode: Mode;
  round: number;
  ms: number;
  stitch_ms?: number;
  spawn_ms?: number;
  ready_ms?: number;
  invoke_ms?: number;
  destroy_ms?: number;
}

async function bareStart(base: string, cgroupProcs: string[] = []): Promise<number> {
  const t0 = performance.now();
  const pid = spawn({
    steps: [
      ...cgroupProcs.map((path) => ({ op: 'write' as const, path, value: '0' })),
      { op: 'chroot', path: base },
      { op: 'chdir', path: '/' },
      { op: 'exec', argv: ['/usr/bin/python3', '-c', 'pass'], env: ['PATH=/usr/bin:/bin'] },
    ],
  });
  const status = await watchExit(pid);
  if (status.exitCode !== 0) throw new Error(`chroot ${base} python3 -c pass failed (${JSON.stringify(status)})`);
  return performance.now() - t0;
}

/** Row 16 of paper-repro.md's claims table: what the worker adds to a bare start. */
function engineOverhead(run: RunData): string {
  const mode = (m: string) => {
    const row = run.summary.find((r) => r.mode === m);
    if (!row) throw new MissingData(`no ${m} mode in ${run.rel}`);
    return row;
  };
  const http = mode('http');
  const bare = mode('bare');
  return `no-op handler through the worker, fresh sandbox, caches off: **${sig(Number(http.median_ms))} ms** median against **${sig(Number(bare.median_ms))} ms** for bare \`chroot <base> python3 -c pass\` (${Number(http.ratio_to_bare).toFixed(2)}x [${Number(http.ratio_ci_low).toFixed(2)}, ${Number(http.ratio_ci_high).toFixed(2)}]); of the ${sig(Number(mode('sandbox').overhead_ms))} ms a sandbox adds, **${sig(Number(mode('cgroup').overhead_ms))} ms** is the cgroup join`;
}

/** What this bench puts beside the paper (its runs land in results/engine-overhead). */
export const ENGINE_OVERHEAD: PaperSource = {
  name: 'engine-overhead',
  paper: { claims: [{ row: 16, ours: engineOverhead }] },
};

async function main(): Promise<number> {
  const started = new Date();
  const args = roundOptions(yargs(hideBin(process.argv)).scriptName('bench:engine'), {
    rounds: 40,
    warmup: 3,
    gap: 50,
    quickRounds: 10,
    gapWhy:
      'so each is an isolated cold start: the kernel state one leaves behind, such as an RCU sync in progress, would speed or slow the next',
  }).parseSync();
  const { rounds, warmup } = roundsOf(args, 10);
  const base = path.resolve(args.base);

  const { scratch, registryDir } = noopRegistry('sockbench-engine-');
  const signals = interruptions();
  const samples: Sample[] = [];
  let engine: SockEngine | undefined;
  let worker: Worker | undefined;
  try {
    const stack = await startWorkerStack({
      backend: 'sock',
      stateDir: path.join(scratch, 'state'),
      base,
      registry: registryDir,
      capacity: 2,
      timeoutMs: 30_000,
      queueLimit: 0,
    });
    engine = stack.engine as SockEngine;
    worker = stack.worker;
    const noop = new Registry(registryDir, engine.state.code).lookup('noop')!;
    const { port } = await worker.listen(0, '127.0.0.1');
    const measure: Record<Mode, (round: number) => Promise<Sample>> = {
      bare: async (round) => ({ mode: 'bare', round, ms: await bareStart(base) }),
      cgroup: async (round) => {
        const cgroup = engine!.pool.take();
        try {
          return { mode: 'cgroup', round, ms: await bareStart(base, cgroup.procsFiles) };
        } finally {
          await engine!.pool.give(cgroup, 5000);
        }
      },
      sandbox: async (round) => {
        const t0 = performance.now();
        const sandbox = await engine!.create({ code: noop.code, packages: {} });
        const t1 = performance.now();
        await sandbox.invoke(null, 30_000);
        const t2 = performance.now();
        await sandbox.destroy();
        const t3 = performance.now();
        const t = sandbox.timings;
        return {
          mode: 'sandbox',
          round,
          ms: t2 - t0,
          stitch_ms: t.stitchMs,
          spawn_ms: t.spawnMs,
          ready_ms: t.readyMs,
          invoke_ms: t2 - t1,
          destroy_ms: t3 - t2,
        };
      },
      http: async (round) => {
        const t0 = performance.now();
        const res = await fetch(`http://127.0.0.1:${port}/run/noop`, { method: 'POST', body: 'null' });
        const body = await res.text();
        const ms = performance.now() - t0;
        if (res.status !== 200) throw new Error(`the worker answered ${res.status}: ${body}`);
        // The worker destroys the sandbox after answering; wait so it does not overlap the next mode.
        while (engine!.status().alive > 0) await new Promise((r) => setTimeout(r, 1));
        return { mode: 'http', round, ms };
      },
    };
    for (let round = 1 - warmup; round <= rounds; round++) {
      if (signals.interrupted) throw new InterruptedError('interrupted: nothing was written');
      for (const mode of shuffled(MODES)) {
        await new Promise((r) => setTimeout(r, args.gap));
        const sample = await measure[mode](round);
        if (round > 0) samples.push(sample);
      }
      if (round > 0 && (round % 10 === 0 || round === rounds))
        process.stderr.write(`bench:engine: ${round}/${rounds} rounds\n`);
    }
  } finally {
    signals.stop();
    if (worker) await worker.close();
    else await engine?.shutdown();
    fs.rmSync(scratch, { recursive: true, force: true });
  }

  const of = (mode: Mode, col: keyof Sample = 'ms') =>
    samples.filter((s) => s.mode === mode).map((s) => Number(s[col]));
  const summary = MODES.map((mode) => {
    const ratio = bootstrapMedianRatio(of(mode), of('bare'));
    return {
      mode,
      n: of(mode).length,
      median_ms: median(of(mode)),
      p95_ms: quantile(of(mode), 0.95),
      ratio_to_bare: ratio.ratio,
      ratio_ci_low: ratio.low,
      ratio_ci_high: ratio.high,
      overhead_ms: median(of(mode)) - median(of('bare')),
    };
  });
  const breakdown = (['stitch_ms', 'spawn_ms', 'ready_ms', 'invoke_ms', 'destroy_ms'] as const).map((col) => ({
    part: col.replace('_ms', ''),
    median_ms: median(of('sandbox', col)),
  }));
  const dir = createRunDir(path.resolve(args.out ?? REPO_ROOT), 'engine-overhead', started);
  writeCsv(path.join(dir, 'data.csv'), samples, [
    'mode',
    'round',
    'ms',
    'stitch_ms',
    'spawn_ms',
    'ready_ms',
    'invoke_ms',
    'destroy_ms',
  ]);
  writeCsv(path.join(dir, 'summary.csv'), summary);
  writeCsv(path.join(dir, 'breakdown.csv'), breakdown);
  const environment = await captureEnvironment(process.argv.slice(1));
  writeMeta(dir, {
    experiment: 'engine-overhead',
    status: 'complete',
    started: started.toISOString(),
    finished: new Date().toISOString(),
    options: { quick: args.quick },
    environment,
    rounds,
    warmup,
    gap_ms: args.gap,
    base,
    summary,
    breakdown,
  });
  const ms = (x: number) => x.toFixed(2);
  process.stdout.write(
    markdownTable(
      ['mode', 'n', 'median ms', 'p95 ms', 'median / bare [95% CI]', 'overhead ms'],
      summary.map((s) => [
        s.mode,
        String(s.n),
        ms(s.median_ms),
        ms(s.p95_ms),
        `${s.ratio_to_bare.toFixed(2)} [${s.ratio_ci_low.toFixed(2)}, ${s.ratio_ci_high.toFixed(2)}]`,
        ms(s.overhead_ms),
      ]),
    ) +
      `\n\nsandbox, median per part (ms): ${breakdown.map((b) => `${b.part} ${ms(b.median_ms)}`).join(', ')}\ndata: ${path.relative(process.cwd(), dir)}\n`,
  );
  return 0;
}

runIfMain(import.meta.url, 'bench:engine', main);
