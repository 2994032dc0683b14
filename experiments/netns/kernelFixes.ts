// Row 2 of paper-repro.md: "with kernel fixes (IPv6 off, no broadcast) about 400/s", against
// ~200/s without. The paper's fixes were patches to a 2018 kernel; the one of them a stock
// kernel still offers is booting without IPv6. So the experiment is one Debian kernel booted
// with and without `ipv6.disable=1` by `kernels`, under one accelerator, the boots interleaved
// (A B B A) so that a drift of the machine weighs on both alike; the netns study runs in each.
// Its numbers come from the kernels run's summary.csv. Under TCG emulation absolute rates say
// nothing about a kernel, so only the ratio between the two settings is judged.
import { median } from 'simple-statistics';
import type { PaperClaim } from '../../harness/types.js';
import { rate, ratio, range } from '../../harness/paperRepro/format.js';
import { loadRunData, MissingData, type Cells, type RunData } from '../../harness/paperRepro/runData.js';
import { sameDirection, withinFactor } from '../../harness/paperRepro/tolerances.js';
import type { PaperSource } from '../../harness/paperRepro/claims.js';
import { listRuns } from '../../harness/runDirs.js';

export const FIX_KERNEL = 'linux-image-6.1.0-50-amd64';
export const FIX_PARAMS = 'ipv6.disable=1';
const FIVE = 'ipc+mnt+net+pid+uts';

/** The kernels command that measures row 2; --quick boots each setting once with the quick sweep. */
export function kernelFixesArgs(quick: boolean): string[] {
  const withFix = `${FIX_KERNEL}:${FIX_PARAMS}`;
  const boots = quick ? [FIX_KERNEL, withFix] : [FIX_KERNEL, withFix, withFix, FIX_KERNEL];
  return [
    'kernels',
    ...boots.flatMap((k) => ['--kernel', k]),
    '--studies',
    'netns',
    ...(quick
      ? []
      : [
          '--study-args=--namespaces none,ipc+mnt+pid+uts,ipc+mnt+net+pid+uts --concurrency 1,4,16 --duration 2 --repeat 3 --warmup 0.5',
        ]),
  ];
}

/** The five-namespace rates of the boots with and without the fix, by concurrency: medians over boots. */
function arms(run: RunData): { c: number; off: number; on: number; offRel: number; onRel: number }[] {
  const rows = run.summary.filter((r) => r.study === 'netns' && r.config === FIVE);
  const fixed = (r: Cells) => String(r.params ?? '') === FIX_PARAMS;
  const cs = [...new Set(rows.map((r) => Number(r.concurrency)))].sort((a, b) => a - b);
  const out = cs.flatMap((c) => {
    const at = rows.filter((r) => Number(r.concurrency) === c);
    const off = at.filter(fixed);
    const on = at.filter((r) => String(r.params ?? '') === '');
    if (off.length === 0 || on.length === 0) return [];
    return [
      {
        c,
        off: median(off.map((r) => Number(r.ops_per_sec))),
        on: median(on.map((r) => Number(r.ops_per_sec))),
        offRel: median(off.map((r) => Number(r.relative_to_plain))),
        onRel: median(on.map((r) => Number(r.relative_to_plain))),
      },
    ];
  });
  if (out.length === 0)
    throw new MissingData(`no ${FIVE} netns rates both with and without ${FIX_PARAMS} in ${run.rel}`);
  return out;
}

/** How many boots of each setting the run holds, and under which accelerator. */
function boots(run: RunData): { off: number; on: number; accel: string; release: string } {
  const kernels = new Map(run.summary.filter((r) => r.study === 'netns').map((r) => [String(r.kernel), r]));
  const all = [...kernels.values()];
  return {
    off: all.filter((r) => String(r.params ?? '') === FIX_PARAMS).length,
    on: all.filter((r) => String(r.params ?? '') === '').length,
    accel: [...new Set(all.map((r) => String(r.accel)))].join(', '),
    release: [...new Set(all.map((r) => String(r.release)))].join(', '),
  };
}

function ours(run: RunData): string {
  const a = arms(run);
  const b = boots(run);
  const peakOff = a.reduce((x, y) => (y.off > x.off ? y : x));
  const peakOn = a.reduce((x, y) => (y.on > x.on ? y : x));
  const cs = a.map((x) => x.c);
  return (
    `five namespaces, teardown waited, one kernel (${b.release}) booted both ways under ${b.accel === 'tcg' ? 'TCG emulation' : b.accel}: ` +
    `**${rate(peakOff.off)}/s** peak (c=${peakOff.c}) with \`${FIX_PARAMS}\` against **${rate(peakOn.on)}/s** (c=${peakOn.c}) without; ` +
    `**${range(
      a.map((x) => x.off / x.on),
      ratio,
    )}** at c=${cs.join(', ')}, ` +
    `${range(
      a.map((x) => x.offRel / x.onRel),
      ratio,
    )} over each boot's plain clone; medians of ${b.off} and ${b.on} boots, interleaved`
  );
}

const ratios = (run: RunData) => arms(run).map((x) => x.off / x.on);

const claim: PaperClaim = {
  row: 2,
  ours,
  checks: [
    sameDirection({
      paper: '~400/s against ~200/s',
      ratio: `the five-namespace rate with ${FIX_PARAMS} over without, same kernel and accelerator, at each concurrency`,
      ratios,
    }),
    withinFactor({
      paper: '2x (~400/s over ~200/s)',
      value: 2,
      unit: 'x',
      what: 'that ratio',
      measure: ratios,
    }),
  ],
  caveat: "the paper's other fix, a broadcast patched out, has no boot parameter (see below)",
};

/** A kernels run with boots both with and without the fix: the only kind that speaks for row 2. */
function measuresTheFix(run: RunData): boolean {
  try {
    return arms(run).length > 0;
  } catch (e) {
    if (e instanceof MissingData) return false;
    throw e;
  }
}

/**
 * Row 2's source: the kernels runs of results/kernels. Its reference run is the newest complete
 * untraced one that booted the kernel both ways, emulated or not (the study rule, which never reads an
 * emulated run, is for absolute numbers; this row judges a ratio between boots of one run).
 */
export const KERNEL_FIXES: PaperSource = {
  name: 'kernels',
  paper: { claims: [claim] },
  referenceRun: (out) => {
    const runs = listRuns(out, 'kernels')
      .map((dir) => loadRunData(out, dir))
      .filter((r): r is RunData => r !== undefined && measuresTheFix(r));
    // Probes cost throughput: a traced run (for the lock waits) speaks for the rates only when alone.
    return runs.find((r) => !r.traced) ?? runs[0];
  },
};
