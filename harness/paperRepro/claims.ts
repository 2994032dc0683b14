// The claims table's rows, gathered from whoever fills them: each study (and the engine bench)
// carries its own PaperFacts; this puts their claims in table order, the order both
// paper-repro.md's "ours" and "status" columns and the figures page read them in.
import type { PaperClaim, PaperFacts } from '../types.js';
import type { RunData } from './runData.js';

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

/** A generated section of paper-repro.md and the study whose run fills it. */
export interface StudySection {
  study: string;
  title: string;
  render(run: RunData): string;
}

/** Every generated section of the sources, in source order. */
export function sectionsOf(sources: readonly PaperSource[]): StudySection[] {
  return sources.flatMap((s) => (s.paper.section ? [{ study: s.name, ...s.paper.section }] : []));
}

/** Every study paper-repro.md reads a run of: for a claim or for a section. */
export function paperStudies(sources: readonly PaperSource[]): string[] {
  return [...new Set([...claimStudies(claimsOf(sources)), ...sectionsOf(sources).map((s) => s.study)])];
}
