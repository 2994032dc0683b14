// The registry: every study the CLI can run, by name.
import type { Experiment } from '../harness/types.js';
import { netns } from './netns/index.js';

export const EXPERIMENTS: Experiment[] = [netns];

export function findExperiment(name: string): Experiment | undefined {
  return EXPERIMENTS.find((e) => e.name === name);
}
