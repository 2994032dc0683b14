// Rewrites the "ours" and "status" columns of paper-repro.md's claims table from runs: each
// "ours" cell's numbers from the studies' claims, with the run, machine and kernel they came from
// beside them, and each status from the claims' checks (verdict.ts); and the generated sections
// (a study's tables) between their markers. Everything else in the file (the paper's numbers,
// the rows without claims, the discussion) is left as written.
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import type { StudyClaim, StudySection } from './claims.js';
import { MissingData, type RunData } from './runData.js';
import { rowVerdicts, type RowVerdict } from './verdict.js';

/** What a study left for the claims: a run, or why there is none. */
export type StudyOutcome = { run: RunData } | { skipped: string };

/** Where a run's numbers came from, as a cell ends. */
export function sourceOf(run: RunData, from: string): string {
  const link = path.relative(from, run.rel).split(path.sep).join('/');
  const sweep = [run.quick ? '`--quick` sweep' : '', run.emulated ? 'software-emulated guest' : '']
    .filter(Boolean)
    .join(', ');
  return `[run ${run.id}](${link}/) (${run.machine}, Linux ${run.kernel}${sweep ? `, ${sweep}` : ''})`;
}

/**
 * The text of each generated cell, by table row. `from` is the directory of the markdown file,
 * relative to the directory holding results/, for the links.
 */
export function claimCells(
  claims: readonly StudyClaim[],
  outcomes: Map<string, StudyOutcome>,
  from = '.',
): Map<number, string> {
  const parts = new Map<number, string[]>();
  for (const claim of claims) {
    const outcome = outcomes.get(claim.study) ?? { skipped: 'no complete run' };
    let text: string;
    if ('skipped' in outcome) {
      text = `${claim.study} not run: ${outcome.skipped}`;
    } else {
      try {
        text = `${claim.ours(outcome.run)}; ${sourceOf(outcome.run, from)}`;
      } catch (e) {
        if (!(e instanceof MissingData)) throw e;
        text = `not measured by ${sourceOf(outcome.run, from)}: ${e.message}`;
      }
    }
    parts.set(claim.row, [...(parts.get(claim.row) ?? []), text]);
  }
  return new Map([...parts].map(([row, texts]) => [row, texts.join('; ')]));
}

/** The generated columns of the claims table, by their header. */
interface ClaimColumns {
  ours: Map<number, string>;
  status: Map<number, string>;
}
const GENERATED_COLUMNS = ['ours', 'status'] as const;

/** Splits a table line into its cells; a `|` escaped as `\|` stays inside its cell. */
function cellsOf(line: string): string[] {
  return line
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
}

/**
 * The markdown with the claims table's "ours" and "status" cells replaced where a row has them
 * (a row without claims keeps its typed text); throws when the table is not there.
 */
export function rewriteClaimsTable(markdown: string, columns: ClaimColumns): string {
  const lines = markdown.split('\n');
  const header = lines.findIndex(
    (l) => l.startsWith('| # |') && GENERATED_COLUMNS.every((name) => cellsOf(l).includes(name)),
  );
  if (header < 0)
    throw new Error(
      `paper-repro.md has no claims table (a header starting "| # |" with ${GENERATED_COLUMNS.map((n) => `"${n}"`).join(' and ')} columns)`,
    );
  const names = cellsOf(lines[header]!);
  for (let i = header + 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
    const row = cellsOf(lines[i]!);
    const n = Number(row[0]);
    if (!GENERATED_COLUMNS.some((name) => columns[name].has(n))) continue;
    for (const name of GENERATED_COLUMNS) {
      const text = columns[name].get(n);
      if (text !== undefined) row[names.indexOf(name)] = text.replaceAll('|', '\\|');
    }
    lines[i] = `| ${row.join(' | ')} |`;
  }
  return lines.join('\n');
}

const beginMarker = (study: string) => `<!-- generated from a ${study} run by npm run repro: do not edit -->`;
const endMarker = (study: string) => `<!-- end of the generated ${study} section -->`;

/** The markdown with each section's text between its markers (the section appended at the end, markers and all, where they are not yet). */
export function rewriteSections(
  markdown: string,
  sections: readonly StudySection[],
  outcomes: Map<string, StudyOutcome>,
  from = '.',
): string {
  let text = markdown;
  for (const section of sections) {
    const outcome = outcomes.get(section.study) ?? { skipped: 'no complete run' };
    let body: string;
    if ('skipped' in outcome) body = `${section.study} not run: ${outcome.skipped}`;
    else {
      try {
        body = `From ${sourceOf(outcome.run, from)}.\n\n${section.render(outcome.run)}`;
      } catch (e) {
        if (!(e instanceof MissingData)) throw e;
        body = `Not measured by ${sourceOf(outcome.run, from)}: ${e.message}`;
      }
    }
    const begin = beginMarker(section.study);
    const end = endMarker(section.study);
    const i = text.indexOf(begin);
    const j = text.indexOf(end);
    const block = `${begin}\n${body}\n${end}`;
    if (i >= 0 && j > i) text = `${text.slice(0, i)}${block}${text.slice(j + end.length)}`;
    else text = `${text.trimEnd()}\n\n## ${section.title}\n\n${block}\n`;
  }
  return text;
}

/** Rewrites the file in place; returns each row's verdict, as its status cell says it. */
export function regeneratePaperRepro(
  claims: readonly StudyClaim[],
  file: string,
  outcomes: Map<string, StudyOutcome>,
  resultsRoot: string,
  sections: readonly StudySection[] = [],
): Map<number, RowVerdict> {
  const from = path.relative(resultsRoot, path.dirname(file)) || '.';
  const verdicts = rowVerdicts(claims, outcomes);
  const columns = {
    ours: claimCells(claims, outcomes, from),
    status: new Map([...verdicts].map(([row, v]) => [row, v.cell])),
  };
  writeFileAtomic(
    file,
    rewriteSections(rewriteClaimsTable(fs.readFileSync(file, 'utf8'), columns), sections, outcomes, from),
  );
  return verdicts;
}
