// The status of each row of paper-repro.md's claims table, computed from its claims' checks as
// the "ours" cell is from their numbers: an overall verdict, then every check with its
// tolerance, what the run gave and whether it held, then the claims' caveats. So a user's own
// run says whether it reproduced the paper, in words nobody typed.
import type { ClaimCheck } from '../types.js';
import type { StudyClaim } from './claims.js';
import type { StudyOutcome } from './regenerate.js';
import { MissingData } from './runData.js';

/** A check as a run answered it: within its tolerance or not, or why the run could not say. */
export type Judged = { check: ClaimCheck } & ({ ours: string; holds: boolean } | { missing: string });

export interface RowVerdict {
  /** "reproduced", "reproduced in direction, not in size", "not reproduced", "not run", ... */
  word: string;
  /** The status cell: the verdict, each check, the caveats. */
  cell: string;
}

function judge(check: ClaimCheck, study: string, outcome: StudyOutcome): Judged {
  if ('skipped' in outcome) return { check, missing: `${study} not run` };
  try {
    return { check, ...check.judge(outcome.run) };
  } catch (e) {
    if (!(e instanceof MissingData)) throw e;
    return { check, missing: e.message };
  }
}

/** "a", "a and b", "a, b and c". */
function and(names: string[]): string {
  return names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/**
 * The overall verdict, by what the checks judge: a name held only if every check of that name
 * held; one that failed anywhere failed; the rest could not be measured.
 */
export function verdictWord(judged: readonly Judged[]): string {
  const names = (pick: (j: Judged) => boolean) => [...new Set(judged.filter(pick).map((j) => j.check.judges))];
  const failed = names((j) => 'holds' in j && !j.holds);
  const unmeasured = names((j) => 'missing' in j).filter((n) => !failed.includes(n));
  const held = names((j) => 'holds' in j && j.holds).filter((n) => !failed.includes(n) && !unmeasured.includes(n));
  if (held.length + failed.length === 0) return 'not measured';
  const missing = unmeasured.length > 0 ? `, ${and(unmeasured)} not measured` : '';
  if (held.length === 0) return `not reproduced${missing ? ` in ${and(failed)}${missing}` : ''}`;
  if (failed.length === 0 && !missing) return 'reproduced';
  return `reproduced in ${and(held)}${failed.length > 0 ? `, not in ${and(failed)}` : ''}${missing}`;
}

function checkText(j: Judged): string {
  const verdict = 'missing' in j ? `not measured: ${j.missing}` : `${j.ours}, ${j.holds ? 'holds' : 'does not hold'}`;
  return `${j.check.judges}, ${j.check.tolerance}: ${verdict}`;
}

/** Each row's verdict, from its claims' checks against the run of each claim's study. */
export function rowVerdicts(
  claims: readonly StudyClaim[],
  outcomes: Map<string, StudyOutcome>,
): Map<number, RowVerdict> {
  const rows = new Map<number, StudyClaim[]>();
  for (const claim of claims) rows.set(claim.row, [...(rows.get(claim.row) ?? []), claim]);
  const verdicts = new Map<number, RowVerdict>();
  for (const [row, rowClaims] of rows) {
    const outcomeOf = (c: StudyClaim) => outcomes.get(c.study) ?? { skipped: 'no complete run' };
    // The "ours" cell says why a study did not run; the status only that it did not.
    if (rowClaims.every((c) => 'skipped' in outcomeOf(c))) {
      verdicts.set(row, { word: 'not run', cell: '**not run**' });
      continue;
    }
    const judged = rowClaims.flatMap((c) => c.checks.map((check) => judge(check, c.study, outcomeOf(c))));
    const word = verdictWord(judged);
    const caveats = [...new Set(rowClaims.flatMap((c) => (c.caveat ? [c.caveat] : [])))];
    verdicts.set(row, { word, cell: [`**${word}**: ${judged.map(checkText).join('; ')}`, ...caveats].join('; ') });
  }
  return verdicts;
}
