// The claims table's rows, gathered from whoever fills them: each study (and the engine bench)
// carries its own PaperFacts; this puts their claims in table order, the order both
// paper-repro.md's "ours" column and the figures page read them in.
import type { PaperClaim, PaperFacts } from '../types.js';

/** A study or bench, as far as paper-repro.md is concerned: its results/<name> and its facts. */
export interface PaperSource {
  name: string;
  paper: PaperFacts;
}

/** A claim and the results/<study> directory its numbers come from. */
export interface StudyClaim extends PaperClaim {
  study: string;
}

/** Every claim of the sources by table row; a row's claims keep the order of the sources. */
export function claimsOf(sources: readonly PaperSource[]): StudyClaim[] {
  return sources.flatMap((s) => s.paper.claims.map((c) => ({ ...c, study: s.name }))).sort((a, b) => a.row - b.row);
}

/** Every study a claim reads, in table order. */
export function claimStudies(claims: readonly StudyClaim[]): string[] {
  return [...new Set(claims.map((c) => c.study))];
}
