// The peers study beside the paper: its figure's caption, and paper-repro.md's section "SOCK
// against today's sandboxes", whose tables are generated from a run like the claims' cells: the
// speed of each peer against bare chroot, SOCK's goals, and what each peer isolates as its probe
// saw it.
import { markdownTable } from '../../harness/markdown.js';
import { ratio, sig } from '../../harness/paperRepro/format.js';
import { concurrencies, MissingData, type RunData, valueAt } from '../../harness/paperRepro/runData.js';
import type { PaperFacts } from '../../harness/types.js';
import { INVOCATION } from './commandPeers.js';
import type { IsolationRow } from './isolationProbe.js';

/** The issue's goals for SOCK, as ratios of the median start at c=1 to bare chroot's. */
const GOALS: Record<string, number> = { 'sock-lean': 1.1, 'sock-zygote': 0.2, 'sock-warm': 0.05 };

const HOW: Record<string, string> = {
  ...INVOCATION,
  'sock-lean': 'POST /run through the worker: a new lean container, caches off',
  'sock-zygote': 'the same, forked from the root zygote, handler cache off',
  'sock-warm': "the same, the handler cache's kept instance (a caller's next request comes before it is frozen)",
};

/** A ratio to as many decimals as a warm start's needs. */
function times(r: number): string {
  return r < 0.1 ? `${r.toFixed(3)}x` : r < 10 ? `${r.toFixed(2)}x` : ratio(r);
}

function goal(peer: string, r: number): string {
  const g = GOALS[peer];
  if (g === undefined) return '';
  return r <= g ? `≤ ${g}x: met` : `≤ ${g}x: missed by ${(r / g).toFixed(1)}x`;
}

function section(run: RunData): string {
  const peers = [...new Set(run.summary.map((r) => String(r.config)))];
  if (!peers.includes('bare')) throw new MissingData(`no bare config in ${run.rel}: every ratio is to it`);
  const cs = concurrencies(run, { config: 'bare' });
  const low = cs[0]!;
  const high = cs[cs.length - 1]!;
  const at = (peer: string, col: string, c = low) => valueAt(run, { config: peer, concurrency: c }, col);
  const bare = at('bare', 'p50_us_median');
  const speed = markdownTable(
    [
      'peer',
      'started as',
      `median start, c=${low}`,
      '/ bare',
      `starts/s, c=${low}`,
      `starts/s, c=${high}`,
      `c=${high} / c=${low}`,
      'goal',
    ],
    peers.map((peer) => {
      const r = at(peer, 'p50_us_median') / bare;
      return [
        peer,
        HOW[peer] ?? '',
        `${sig(at(peer, 'p50_us_median') / 1000)} ms`,
        times(r),
        sig(at(peer, 'ops_per_sec_median')),
        sig(at(peer, 'ops_per_sec_median', high)),
        ratio(at(peer, 'ops_per_sec_median', high) / at(peer, 'ops_per_sec_median')),
        goal(peer, r),
      ];
    }),
  );
  const isolation = (run.notes.isolation ?? {}) as Record<string, IsolationRow>;
  const features = markdownTable(
    ['peer', 'own namespaces', 'user namespace', 'seccomp', 'capabilities', 'network', 'kernel'],
    Object.entries(isolation).map(([peer, f]) => [
      peer,
      f.namespaces,
      f.user_namespace,
      f.seccomp,
      f.capabilities,
      f.network,
      f.kernel,
    ]),
  );
  const skipped = Object.entries((run.notes.skipped ?? {}) as Record<string, string>);
  const skippedText =
    skipped.length > 0
      ? `\n\nNot measured on this host: ${skipped.map(([peer, why]) => `**${peer}**: ${why}`).join('; ')}.`
      : '';
  const asked = peers.filter((p) => at(p, 'as_asked_median') < 1);
  const askedText =
    asked.length > 0
      ? `\n\nNot every start was the kind asked for: ${asked.map((p) => `${p} ${(100 * at(p, 'as_asked_median')).toFixed(0)}% at c=${low}`).join(', ')} (the rest were cold starts).`
      : '';
  return `Speed: the median start of \`python3 -c pass\` (for SOCK, a no-op handler answered over a kept-alive connection) at c=${low}, its ratio to bare \`chroot\`, and the starts per second at c=${low} and c=${high}; medians of the repetitions.

${speed}${askedText}${skippedText}

What each peer isolates, as a probe run inside it saw (\`experiments/peers/isolationProbe.ts\`: its namespaces against the harness's own, \`/proc/self/status\`, \`/proc/self/net/dev\`, \`uname\`):

${features}`;
}

export const paper: PaperFacts = {
  figure: {
    title: 'SOCK against today’s sandboxes (not in the paper)',
    paper:
      'The paper compares SOCK with Docker only (Figure 6). Here the same no-op Python start runs in SOCK, bubblewrap, runc, crun, gVisor and Docker, on one base, interleaved.',
  },
  claims: [],
  section: { title: 'SOCK against today’s sandboxes', render: section },
};
