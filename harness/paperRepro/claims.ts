// The claims table's rows, gathered from whoever fills them: each study (and the engine bench)
// carries its own PaperFacts; this puts their claims in table order, the order both
// paper-repro.md's "ours" and "status" columns and the figures page read them in.
import type { PaperClaim, PaperFacts } from '../types.js';
import { referenceRun, type RunData } from './runData.js';

/** A study or bench, as far as paper-repro.md is concerned: its results/<name> and its facts. */
export interface PaperSource {
  name: string;
  paper: PaperFacts;
  /**
   * Which of its runs speaks for its claims, where the rule for studies (runData.ts'
   * referenceRun: the newest full sweep on this machine) does not fit the runs it reads.
   */
  referenceRun?(out: string): RunData | undefined;
}

/** A claim and the results/<study> directory its numbers come from. */
export interface StudyClaim extends PaperClaim {
  study: string;
}

/** Every claim of the sources by table row; a row's claims keep the order of the sources. */
export function claimsOf(sources: readonly PaperSource[]): StudyClaim[] {
  return sources.flatMap((s) => s.paper.claims.map((c) => ({ ...c, study: s.name }))).sort((a, b) => a.row - b.row);
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

/** The run each source's claims read by default, or undefined where it has none. */
export function referenceRuns(sources: readonly PaperSource[], out: string): Map<string, RunData | undefined> {
  return new Map(sources.map((s) => [s.name, s.referenceRun ? s.referenceRun(out) : referenceRun(out, s.name)]));
}
