// What each row of paper-repro.md's claims table says we measured, computed from a run's
// summary.csv. The words around the numbers are fixed; every number comes from the run, so
// regenerating the table after new runs can never leave a hand-typed figure behind.
import { cRange, fixed, range, rate, ratio, sig } from './format.js';
import { concurrencies, MissingData, rowsWhere, valueAt, type Cells, type RunData } from './runData.js';

export { MissingData };

export interface ClaimPart {
  /** The row of paper-repro.md's claims table. */
  row: number;
  /** The results/<study> directory the numbers come from. */
  study: string;
  ours(run: RunData): string;
}

function need(run: RunData, where: Cells): Cells[] {
  const rows = rowsWhere(run, where);
  if (rows.length === 0)
    throw new MissingData(
      `no ${Object.entries(where)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')} in ${run.rel}`,
    );
  return rows;
}

/** The highest value of column over a config's concurrencies, and where it was. */
function peak(run: RunData, where: Cells, column: string): { c: number; v: number } {
  const best = need(run, where).reduce((a, b) => (Number(b[column]) > Number(a[column]) ? b : a));
  return { c: Number(best.concurrency), v: Number(best[column]) };
}

/** The value of column at the highest concurrency measured. */
function atTop(run: RunData, where: Cells, column: string): { c: number; v: number } {
  const c = Math.max(...concurrencies(run, where));
  return { c, v: valueAt(run, { ...where, concurrency: c }, column) };
}

function columnOf(run: RunData, where: Cells, column: string): number[] {
  return need(run, where).map((r) => Number(r[column]));
}

/** "**1,171/s** peak (c=16), 1,107/s at c=64", or one figure when the peak is at the top. */
function peakAndTop(p: { c: number; v: number }, top: { c: number; v: number }): string {
  return p.c === top.c
    ? `**${rate(p.v)}/s** peak at c=${p.c}, the highest measured`
    : `**${rate(p.v)}/s** peak (c=${p.c}), ${rate(top.v)}/s at c=${top.c}`;
}

const FIVE = 'ipc+mnt+net+pid+uts';
const FOUR = 'ipc+mnt+pid+uts';

/** netns counts a network namespace as made only once the kernel has freed it, when it waited. */
function withTeardown(run: RunData): { column: string; words: string } {
  return run.summary[0]?.ops_per_sec_with_teardown_median !== undefined
    ? { column: 'ops_per_sec_with_teardown_median', words: 'with teardown waited' }
    : { column: 'ops_per_sec_median', words: 'teardown not waited' };
}

function netnsFive(run: RunData): string {
  const t = withTeardown(run);
  const p = peak(run, { config: FIVE }, t.column);
  const top = atTop(run, { config: FIVE }, t.column);
  return `${peakAndTop(p, top)}, ${t.words}`;
}

function netnsFour(run: RunData): string {
  const p = peak(run, { config: FOUR }, 'ops_per_sec_median');
  const top = atTop(run, { config: FOUR }, 'ops_per_sec_median');
  return peakAndTop(p, top);
}

function netnsRatio(run: RunData): string {
  const t = withTeardown(run);
  const four = atTop(run, { config: FOUR }, 'ops_per_sec_median');
  const five = valueAt(run, { config: FIVE, concurrency: four.c }, t.column);
  const p4 = peak(run, { config: FOUR }, 'ops_per_sec_median');
  const p5 = peak(run, { config: FIVE }, t.column);
  return `**${ratio(four.v / five)}** at c=${four.c} (${rate(four.v)} / ${rate(five)}); ${ratio(p4.v / p5.v)} at the peaks (${rate(p4.v)} / ${rate(p5.v)})`;
}

function mntns(run: RunData): string {
  const mounts = [...new Set(need(run, { config: 'mntns' }).map((r) => Number(r.host_mounts)))].sort((a, b) => a - b);
  const parts = mounts.map((m, i) => {
    const span = `${range(columnOf(run, { config: 'mntns', host_mounts: m }, 'ops_per_sec_median'), rate)}/s`;
    const bold = i === 0 || i === mounts.length - 1 ? `**${span}**` : span;
    return `${bold} with ${m === 0 ? 'no extra mounts' : rate(m)}`;
  });
  return `${parts.join(', ')} (${cRange(concurrencies(run, { config: 'mntns' }))})`;
}

function chroot(run: RunData): string {
  const where = { config: 'chroot', phase: 'setup' };
  return `**${range(columnOf(run, where, 'p50_us_median'), (n) => fixed(n, 2))} µs** p50 for \`chroot\` + \`chdir\` (${cRange(concurrencies(run, where))})`;
}

function storage(run: RunData): string {
  const cs = concurrencies(run, { config: 'bind', phase: 'setup' });
  const c1 = cs[0]!;
  const bind = valueAt(run, { config: 'bind', phase: 'setup', concurrency: c1 }, 'p50_us_median');
  const overlay = valueAt(run, { config: 'overlay', phase: 'setup', concurrency: c1 }, 'p50_us_median');
  if (!Number.isFinite(overlay)) throw new MissingData(`no overlay config in ${run.rel}`);
  const cycles = cs.map(
    (c) =>
      valueAt(run, { config: 'bind', phase: 'setup', concurrency: c }, 'ops_per_sec_median') /
      valueAt(run, { config: 'overlay', phase: 'setup', concurrency: c }, 'ops_per_sec_median'),
  );
  const bindSetup = columnOf(run, { config: 'bind', phase: 'setup' }, 'p50_us_median');
  return `bind setup **${ratio(overlay / bind)}** faster than overlayfs (${sig(bind)} against ${sig(overlay)} µs p50 at c=${c1}), whole cycles ${range(cycles, (g) => g.toFixed(1))}x; bind setup p50 ${range(bindSetup, sig)} µs over ${cRange(cs)}`;
}

function cgroups(run: RunData): string {
  const versions = [...new Set(run.summary.map((r) => Number(r.cgroup_version)))].sort();
  const parts = versions.map((v) => {
    const cs = concurrencies(run, { config: 'reuse', cgroup_version: v });
    const gains = cs.map(
      (c) =>
        valueAt(run, { config: 'reuse', cgroup_version: v, concurrency: c }, 'ops_per_sec_median') /
        valueAt(run, { config: 'create', cgroup_version: v, concurrency: c }, 'ops_per_sec_median'),
    );
    const reuse = columnOf(run, { config: 'reuse', cgroup_version: v }, 'ops_per_sec_median');
    const create = columnOf(run, { config: 'create', cgroup_version: v }, 'ops_per_sec_median');
    const gain = `${range(gains, (g) => g.toFixed(1))}x on cgroup v${v}`;
    return `${v === versions[0] ? `**${gain}**` : gain} (reuse ${range(reuse, rate)}/s, create ${range(create, rate)}/s, ${cRange(cs)})`;
  });
  return parts.join('; ');
}

function ipcuts(run: RunData): string {
  const names: [string, string][] = [
    ['none', 'plain clone'],
    ['uts', 'UTS'],
    ['pid', 'PID'],
    ['ipc', 'IPC'],
    ['ipc+pid+uts', 'all three'],
  ];
  const all = concurrencies(run, { config: 'none' });
  // At c=1 the native loop has no parallelism to show flatness with; the paper's claim is about growth.
  const cs = all.length > 1 ? all.filter((c) => c > 1) : all;
  const parts = names.map(([config, label]) => {
    const values = cs.map((c) => valueAt(run, { config, concurrency: c }, 'ops_per_sec_median'));
    if (values.every((v) => !Number.isFinite(v))) throw new MissingData(`no ${config} config in ${run.rel}`);
    return `${label} ${range(values, rate)}/s`;
  });
  return `${parts.join(', ')} (${cRange(cs)})`;
}

function imports(run: RunData): string {
  const rows = run.summary;
  if (rows.length === 0) throw new MissingData(`no packages in ${run.rel}`);
  const mean = (col: string) => rows.reduce((s, r) => s + Number(r[col]), 0) / rows.length;
  const full = rows.map(
    (r) => (Number(r.download_ms_median) + Number(r.install_ms_median) + Number(r.import_ms_median)) / 1000,
  );
  return `averages over ${rows.length} packages from Debian: download **${rate(mean('download_ms_median'))} ms**, install (unpack + byte-compile) **${rate(mean('install_ms_median'))} ms**, import **${rate(mean('import_ms_median'))} ms**; full init ${range(full, (n) => fixed(n, 1))} s`;
}

function sockVsDocker(run: RunData): string {
  const cs = concurrencies(run, { config: 'sock' });
  // The paper's point is c=10; a --quick sweep may stop short of it.
  const c = cs.reduce((a, b) => (Math.abs(b - 10) < Math.abs(a - 10) ? b : a));
  const at = (config: string, col: string, conc = c) => valueAt(run, { config, concurrency: conc }, col);
  const gains = (config: string, conc: number) =>
    `${ratio(at('sock', 'ops_per_sec_median', conc) / at(config, 'ops_per_sec_median', conc))} / ${ratio(at(config, 'mean_us_median', conc) / at('sock', 'mean_us_median', conc))}`;
  if (!Number.isFinite(at('docker', 'ops_per_sec_median'))) throw new MissingData(`no docker config in ${run.rel}`);
  let text = `c=${c}: SOCK **${sig(at('sock', 'ops_per_sec_median'))} req/s at ${sig(at('sock', 'mean_us_median') / 1000)} ms** mean, Docker ${sig(at('docker', 'ops_per_sec_median'))} req/s at ${sig(at('docker', 'mean_us_median') / 1000)} ms: **${ratio(at('sock', 'ops_per_sec_median') / at('docker', 'ops_per_sec_median'))}** throughput, **${ratio(at('docker', 'mean_us_median') / at('sock', 'mean_us_median'))}** lower latency`;
  if (Number.isFinite(at('docker-netnone', 'ops_per_sec_median')))
    text += ` (\`--network none\`: ${gains('docker-netnone', c)})`;
  if (cs[0] !== c) text += `; c=${cs[0]}: ${gains('docker', cs[0]!)}`;
  return text;
}

/** zygote rows are summarised by package-set index; data.csv names the set. */
function zygote(run: RunData): string {
  const names = new Map<number, string>();
  for (const r of run.data()) names.set(Number(r.set), String(r.packages));
  const sets = [...names.entries()].sort((a, b) => a[0] - b[0]);
  const none = sets.find(([, p]) => p === 'none');
  if (!none) throw new MissingData(`no handler without packages in ${run.rel}`);
  const at = (config: string, set: number, col: string) => valueAt(run, { config, set }, col);
  const lean = at('lean', none[0], 'p50_us_median') / 1000;
  const root = at('root-zygote', none[0], 'p50_us_median') / 1000;
  let text = `no-op handler, end to end over the worker: lean **${sig(lean)} ms**, forked from the root zygote **${sig(root)} ms** (**${ratio(lean / root)}**; the worker's own sandbox time ${sig(at('lean', none[0], 'sandbox_ms_median'))} → ${sig(at('root-zygote', none[0], 'sandbox_ms_median'))} ms)`;
  const gains = sets
    .filter(([s, p]) => p !== 'none' && Number.isFinite(at('zygote', s, 'p50_us_median')))
    .map(([s, p]) => ({
      p,
      lean: at('lean', s, 'p50_us_median') / 1000,
      zyg: at('zygote', s, 'p50_us_median') / 1000,
    }));
  if (gains.length > 0) {
    const best = gains.reduce((a, b) => (b.lean / b.zyg > a.lean / a.zyg ? b : a));
    const others = gains.filter((g) => g !== best).map((g) => `${g.p} ${ratio(g.lean / g.zyg)}`);
    text += `; with a zygote that imported the handler's package: ${[...others, `${best.p} **${ratio(best.lean / best.zyg)}** (${sig(best.lean)} → ${sig(best.zyg)} ms)`].join(', ')}`;
  }
  return text;
}

const resizeAt = (run: RunData, config: string, col: string) => {
  const v = valueAt(run, { config }, col);
  if (!Number.isFinite(v)) throw new MissingData(`no ${config} config in ${run.rel}`);
  return v;
};

function resizeTiers(run: RunData): string {
  const cold = resizeAt(run, 'cold', 'platform_ms_median');
  const warm = resizeAt(run, 'warm', 'platform_ms_median');
  const e2e = resizeAt(run, 'cold', 'p50_us_median') / resizeAt(run, 'warm', 'p50_us_median');
  return `all three tiers, image resizing: platform latency **${ratio(cold / warm)}** lower warm than cold (${sig(cold)} → ${sig(warm)} ms; ${ratio(e2e)} end to end)`;
}

function scale(run: RunData): string {
  const lambdas = [...new Set(run.summary.map((r) => Number(r.lambdas)))].sort((a, b) => a - b);
  const budgets = [...new Set(run.summary.map((r) => Number(r.budget_mb)))].filter((b) => b > 0).sort((a, b) => a - b);
  if (budgets.length === 0 || !run.summary.some((r) => Number(r.budget_mb) === 0))
    throw new MissingData(`no budget 0 and budget > 0 pair in ${run.rel}`);
  const at = (budget: number, n: number, col: string) => valueAt(run, { budget_mb: budget, lambdas: n }, col);
  const medianGains = lambdas.flatMap((n) => budgets.map((b) => at(0, n, 'p50_us_median') / at(b, n, 'p50_us_median')));
  const meanGains = lambdas.flatMap((n) =>
    budgets.map((b) => ({ b, g: at(0, n, 'mean_us_median') / at(b, n, 'mean_us_median') })),
  );
  const bestMean = meanGains.reduce((a, b) => (b.g > a.g ? b : a));
  const n0 = lambdas[0]!;
  const b0 = budgets[0]!;
  return `the import cache alone over hundreds of lambdas (handler cache off): median start **${range(medianGains, (g) => g.toFixed(1))}x** lower with a budget (${sig(at(0, n0, 'p50_us_median') / 1000)} → ${sig(at(b0, n0, 'p50_us_median') / 1000)} ms at ${n0} lambdas, ${b0} MiB), mean up to ${ratio(bestMean.g)} (at ${bestMean.b} MiB)`;
}

function resizeStates(run: RunData): string {
  const p = (config: string) => resizeAt(run, config, 'platform_ms_median');
  const compute = ['cold', 'cold+', 'warm'].map((c) => sig(resizeAt(run, c, 'compute_ms_median'))).join(' / ');
  return `platform latency (end to end minus the handler's compute): cold **${sig(p('cold'))} ms**, cold+ **${sig(p('cold+'))} ms** (**${ratio(p('cold') / p('cold+'))}**), warm **${sig(p('warm'))} ms**, of which thawing the frozen instance **${fixed(resizeAt(run, 'warm', 'sandbox_ms_median'), 2)} ms**; compute ${compute} ms`;
}

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

/** In table order; a row with two parts joins them with "; ". Rows 2 and 10 measure nothing. */
export const CLAIMS: ClaimPart[] = [
  { row: 1, study: 'netns', ours: netnsFive },
  { row: 3, study: 'netns', ours: netnsFour },
  { row: 4, study: 'netns', ours: netnsRatio },
  { row: 5, study: 'mntns', ours: mntns },
  { row: 6, study: 'storage', ours: chroot },
  { row: 7, study: 'storage', ours: storage },
  { row: 8, study: 'cgroups', ours: cgroups },
  { row: 9, study: 'ipcuts', ours: ipcuts },
  { row: 11, study: 'imports', ours: imports },
  { row: 12, study: 'sock-vs-docker', ours: sockVsDocker },
  { row: 13, study: 'zygote', ours: zygote },
  { row: 14, study: 'resize', ours: resizeTiers },
  { row: 14, study: 'scale', ours: scale },
  { row: 15, study: 'resize', ours: resizeStates },
  { row: 16, study: 'engine-overhead', ours: engineOverhead },
];

/** Every study a claim reads. */
export const CLAIM_STUDIES = [...new Set(CLAIMS.map((c) => c.study))];
