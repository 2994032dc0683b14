// npm run bench:churn: the addon's churn loop against bare_churn, the same loop in plain C,
// side by side at the same namespace set and concurrency, alternating which goes first.
// The addon should add almost nothing: its ops/s within 10% of the bare loop's.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { parseConcurrency, REPO_ROOT, runIfMain } from '../flags.js';
import { writeCsv } from '../../harness/csv.js';
import { captureEnvironment } from '../../harness/environment.js';
import { createRunDir, writeMeta } from '../../harness/runDirs.js';
import { UsageError } from '../../harness/errors.js';
import { median } from 'simple-statistics';
import { ChurnRun, namespaceFlags, type Namespace } from '../../native/index.js';
import { normalizeSet } from '../../experiments/namespaceSets.js';
import { NetnsTeardownProbe } from '../../experiments/netns/teardown.js';

const run = promisify(execFile);
const BARE = path.join(REPO_ROOT, 'build/Release/bare_churn');

interface Sample {
  config: string;
  concurrency: number;
  repeat: number;
  impl: 'addon' | 'bare';
  ops: number;
  seconds: number;
  ops_per_sec: number;
}

async function measure(impl: 'addon' | 'bare', flags: number, concurrency: number, seconds: number) {
  if (impl === 'addon') {
    const r = await new ChurnRun({ flags, concurrency, durationSeconds: seconds }).start();
    return { ops: r.ops, seconds: r.seconds };
  }
  const { stdout } = await run(BARE, [String(flags), String(concurrency), String(seconds)]);
  return JSON.parse(stdout) as { ops: number; seconds: number };
}

async function main(): Promise<number> {
  const started = new Date();
  const args = yargs(hideBin(process.argv))
    .scriptName('bench:churn')
    .option('namespaces', {
      type: 'string',
      default: 'none,ipc+mnt+pid+uts,ipc+mnt+net+pid+uts',
      describe: 'comma-separated namespace sets',
    })
    .option('concurrency', { type: 'string', default: '1,16,64', describe: 'comma-separated concurrencies' })
    .option('duration', { type: 'number', default: 2, describe: 'seconds per measurement' })
    .option('repeat', { type: 'number', default: 3, describe: 'pairs per point' })
    .option('out', { type: 'string', describe: 'directory that receives results/ [default: the repository root]' })
    .strict()
    .fail((msg, err) => {
      throw new UsageError(msg ?? err?.message);
    })
    .parseSync();
  if (!(args.duration > 0) || !(args.repeat >= 1)) throw new UsageError('--duration and --repeat must be > 0');
  if (!fs.existsSync(BARE)) throw new Error(`${BARE} is missing: run npm install (node-gyp builds it)`);
  const sets = args.namespaces.split(',').map(normalizeSet);
  const concurrencies = parseConcurrency(args.concurrency);
  const environment = await captureEnvironment(process.argv.slice(1));
  const probe = new NetnsTeardownProbe();
  const samples: Sample[] = [];

  for (let repeat = 1; repeat <= args.repeat; repeat++) {
    for (const config of sets) {
      const namespaces = config === 'none' ? [] : (config.split('+') as Namespace[]);
      const flags = namespaceFlags(namespaces);
      for (const concurrency of concurrencies) {
        // Alternate the order so neither side always runs on a machine the other just warmed.
        const order: ('addon' | 'bare')[] = repeat % 2 ? ['addon', 'bare'] : ['bare', 'addon'];
        for (const impl of order) {
          if (namespaces.includes('net')) await probe.arm();
          const m = await measure(impl, flags, concurrency, args.duration);
          // Let the kernel finish freeing this run's namespaces before the next one starts.
          if (namespaces.includes('net')) await probe.wait();
          samples.push({ config, concurrency, repeat, impl, ...m, ops_per_sec: m.ops / m.seconds });
          process.stderr.write(
            `${config} c=${concurrency} rep ${repeat} ${impl}: ${Math.round(m.ops / m.seconds)} ops/s\n`,
          );
        }
      }
    }
  }

  const rows = sets.flatMap((config) =>
    concurrencies.map((concurrency) => {
      const of = (impl: string) =>
        samples.filter((s) => s.config === config && s.concurrency === concurrency && s.impl === impl);
      const addon = of('addon');
      const bare = of('bare');
      const ratios = addon.map((a, i) => a.ops_per_sec / bare[i]!.ops_per_sec);
      return {
        config,
        concurrency,
        addon_ops_per_sec: median(addon.map((s) => s.ops_per_sec)),
        bare_ops_per_sec: median(bare.map((s) => s.ops_per_sec)),
        ratio_median: median(ratios),
        ratio_min: Math.min(...ratios),
        ratio_max: Math.max(...ratios),
      };
    }),
  );

  const out = path.resolve(args.out ?? REPO_ROOT);
  const dir = createRunDir(out, 'churn-overhead', started);
  writeCsv(path.join(dir, 'samples.csv'), samples as unknown as Record<string, unknown>[]);
  writeCsv(path.join(dir, 'summary.csv'), rows);
  writeMeta(dir, {
    experiment: 'churn-overhead',
    status: 'complete',
    started: started.toISOString(),
    finished: new Date().toISOString(),
    options: { ...args, $0: undefined, _: undefined },
    environment,
  });

  const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
  process.stdout.write(
    '| config | concurrency | addon ops/s | bare C ops/s | addon / bare (median, min–max) |\n|---|---|---|---|---|\n',
  );
  for (const r of rows) {
    process.stdout.write(
      `| ${r.config} | ${r.concurrency} | ${fmt(r.addon_ops_per_sec)} | ${fmt(r.bare_ops_per_sec)} | ${r.ratio_median.toFixed(3)} (${r.ratio_min.toFixed(3)}–${r.ratio_max.toFixed(3)}) |\n`,
    );
  }
  process.stdout.write(`\nsamples: ${path.relative(process.cwd(), dir)}/samples.csv\n`);
  return 0;
}

runIfMain(import.meta.url, 'bench:churn', main);
