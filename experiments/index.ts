// The registry: every study the CLI can run, by name. A study is one folder (its measurement,
// figure and paper facts) plus one line here; the order is the order `list` prints and repro runs.
import type { Experiment } from '../harness/types.js';
import { cgroups } from './cgroups/index.js';
import { imports } from './imports/index.js';
import { ipcuts } from './ipcuts/index.js';
import { mntns } from './mntns/index.js';
import { netns } from './netns/index.js';
import { peers } from './peers/index.js';
import { resize } from './resize/index.js';
import { scale } from './scale/index.js';
import { sockVsDocker } from './sockVsDocker/index.js';
import { storage } from './storage/index.js';
import { zygote } from './zygote/index.js';

export const EXPERIMENTS: Experiment[] = [
  netns,
  mntns,
  storage,
  cgroups,
  ipcuts,
  sockVsDocker,
  imports,
  zygote,
  resize,
  scale,
  peers,
];
