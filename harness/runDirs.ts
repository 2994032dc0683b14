// Which run directories a command made: list each study's results/ before it, and again after.
import fs from 'node:fs';
import path from 'node:path';

/** Run directories of each study under out/results, to tell afterwards which ones were made since. */
export function snapshotRuns(out: string, studies: string[]): Map<string, Set<string>> {
  return new Map(studies.map((s) => [s, new Set(listRuns(out, s))]));
}

function listRuns(out: string, study: string): string[] {
  try {
    return fs
      .readdirSync(path.join(out, 'results', study))
      .filter((n) => fs.existsSync(path.join(out, 'results', study, n, 'meta.json')));
  } catch {
    return [];
  }
}

/** Per study, the run directory made since the snapshot (the newest, if several). */
export function newRuns(out: string, before: Map<string, Set<string>>): Map<string, string> {
  const made = new Map<string, string>();
  for (const [study, had] of before) {
    const fresh = listRuns(out, study)
      .filter((n) => !had.has(n))
      .sort();
    if (fresh.length > 0) made.set(study, path.join(out, 'results', study, fresh.at(-1)!));
  }
  return made;
}
