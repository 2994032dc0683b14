// npm run bench:trace-overhead: what tracing costs the measurement it explains. The same
// netns sweep runs with and without `--trace`, alternating passes in one invocation so both
// see the same machine, and the traced/untraced ratio of every point is reported.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from 'simple-statistics';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DEFAULT_SETS, netns } from '../experiments/netns/index.js';
import { parseConcurrency, parseTrace, REPO_ROOT } from './cli.js';
import { writeCsv } from './csv.js';
import { captureEnvironment } from './environment.js';
import { isUserError, UsageError } from './errors.js';
import { markdownTable } from './markdown.js';
import { runExperiment, runId } from './runner.js';
import type { Row } from './types.js';

async function main(): Promise<number> {
  const args = yargs(hideBin(process.argv))
    .scriptName('bench:trace-overhead')
    .parserConfiguration({ 'boolean-negation': false, 'camel-case-expansion': false })
    .option('namespaces', { type: 'string', default: DEFAULT_SETS.join(','), describe: 'netns namespace sets' })
    .option('concurrency', { type: 'string', default: '1,4,16', describe: 'comma-separated concurrencies' })
    .option('duration', { type: 'number', default: 1, describe: 'seconds per measurement' })
    .option('repeat', { type: 'number', default: 3, describe: 'passes of each kind (untraced, traced)' })
    .option('trace', { type: 'string', default: 'locks', describe: 'probe families of the traced passes' })
    .option('out', { type: 'string', describe: 'directory that receives results/ [default: the repository root]' })
    .strict()
    .fail((msg, err) => {
      throw new UsageError(msg ?? err?.message);
    })
    .parseSync();
  if (!(args.duration > 0) || !Number.isInteger(args.repeat) || args.repeat < 1) throw new UsageError('--duration must be > 0 and --repeat a whole number >= 1');
  const families = parseTrace(args.trace);
  const options = { namespaces: args.namespaces, method: 'unshare' };
  const configs = netns.configs(options);
  await netns.preflight(options);
  const concurrency = parseConcurrency(args.concurrency);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sockbench-overhead-'));
  const rows: (Row & { traced: number })[] = [];
  try {
    for (let pass = 1; pass <= args.repeat; pass++) {
      // Alternate which kind goes first, so neither always follows the other's teardown.
      for (const traced of pass % 2 ? [false, true] : [true, false]) {
        process.stderr.write(`pass ${pass}/${args.repeat}, ${traced ? `traced (${families.join(',')})` : 'untraced'}\n`);
        const outcome = await runExperiment(
          netns, configs,
          { concurrency, duration: args.duration, repeat: 1, warmup: 0.2, out: scratch, trace: traced ? families : [] },
          options, process.argv.slice(1),
        );
        if (outcome.status !== 'complete') throw outcome.error;
        if (traced && (outcome.trace?.active.length ?? 0) === 0) throw new Error(`tracing was not possible: ${JSON.stringify(outcome.trace?.unavailable)}`);
        for (const r of outcome.rows) rows.push({ ...r, repeat: pass, traced: traced ? 1 : 0 });
      }
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }

  const points = configs.flatMap((config) => concurrency.map((c) => ({ config, concurrency: c })));
  const summary = points.map(({ config, concurrency: c }) => {
    const of = (traced: number, col: string) => median(rows.filter((r) => r.config === config && r.concurrency === c && r.traced === traced).map((r) => Number(r[col])));
    const untraced = of(0, 'ops_per_sec');
    const traced = of(1, 'ops_per_sec');
    return {
      config, concurrency: c,
      untraced_ops_per_sec: untraced, traced_ops_per_sec: traced, ratio: traced / untraced,
      ratio_with_teardown: of(1, 'ops_per_sec_with_teardown') / of(0, 'ops_per_sec_with_teardown'),
    };
  });
  const dir = path.join(path.resolve(args.out ?? REPO_ROOT), 'results', 'trace-overhead', runId(new Date()));
  fs.mkdirSync(dir, { recursive: true });
  writeCsv(path.join(dir, 'data.csv'), rows);
  writeCsv(path.join(dir, 'summary.csv'), summary);
  const environment = await captureEnvironment(process.argv.slice(1));
  const worst = Math.min(...summary.map((s) => s.ratio));
  fs.writeFileSync(
    path.join(dir, 'meta.json'),
    JSON.stringify({ status: 'complete', trace: families, args: { ...args, _: undefined, $0: undefined }, overhead: summary, worst_ratio: worst, environment }, null, 2) + '\n',
  );
  const fmt = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
  process.stdout.write(
    markdownTable(
      ['config', 'concurrency', 'untraced ops/s', `traced (${families.join(',')}) ops/s`, 'traced / untraced', 'with teardown'],
      summary.map((s) => [s.config, String(s.concurrency), fmt(s.untraced_ops_per_sec), fmt(s.traced_ops_per_sec), s.ratio.toFixed(3), Number.isFinite(s.ratio_with_teardown) ? s.ratio_with_teardown.toFixed(3) : '–']),
    ) + `\n\nworst ratio ${worst.toFixed(3)}; data: ${path.relative(process.cwd(), dir)}\n`,
  );
  return 0;
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => (process.exitCode = code),
    (e) => {
      process.stderr.write(`bench:trace-overhead: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = isUserError(e) ? e.exitCode : 1;
    },
  );
}
