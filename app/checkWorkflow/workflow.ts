// A GitHub Actions workflow read for npm run check:workflow: only the keys this check knows how
// to follow are accepted, each refused by its place in the file otherwise (a UsageError), so a
// workflow change the check would silently ignore fails it instead. The matrix is expanded here
// only to run each job's steps locally, one job after another: GitHub's matrix is what spreads
// the real runs over runners.
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../../harness/errors.js';
import { interpolate } from './expressions.js';

export interface StepDef {
  /** Where the step is in the file, for messages: jobs.<id>.steps[<n>]. */
  where: string;
  id?: string;
  name?: string;
  if?: unknown;
  uses?: string;
  with: Record<string, string>;
  run?: string;
  /** bash: GitHub's `bash --noprofile --norc -eo pipefail`; absent: its default, `bash -e`. */
  shell?: 'bash';
  env: Record<string, string>;
}

export interface JobDef {
  id: string;
  name?: string;
  needs: string[];
  if?: unknown;
  runsOn: string;
  timeoutMinutes: number;
  /** The job's container: debian:bookworm, privileged or not. */
  privileged: boolean;
  /** Each key's values, expressions not yet evaluated. */
  matrix?: Record<string, string[]>;
  env: Record<string, string>;
  steps: StepDef[];
}

export interface Workflow {
  name: string;
  /** workflow_dispatch's inputs and their defaults. */
  inputs: Record<string, string>;
  /** In an order where each job comes after the jobs it needs. */
  jobs: JobDef[];
}

/** One job as it runs: a job, or one combination of its matrix. */
export interface JobRun {
  job: JobDef;
  name: string;
  matrix?: Record<string, string>;
  /** Its index in its job's matrix (strategy.job-index). */
  index: number;
}

/** The one image this check stands in for, with the debootstrap base. */
export const IMAGE = 'debian:bookworm';
/** GitHub's default when a job sets no timeout-minutes. */
const DEFAULT_TIMEOUT_MINUTES = 360;

function refuse(where: string, what: string): never {
  throw new UsageError(`${where}: ${what}`);
}

function record(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) refuse(where, 'expected a mapping');
  return value as Record<string, unknown>;
}

/** Refuses any key not in allowed: a key this check does not know is a key it would not follow. */
function onlyKeys(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj))
    if (!allowed.includes(key))
      refuse(`${where}.${key}`, `the check does not follow '${key}' (it knows ${allowed.join(', ')})`);
}

function text(value: unknown, where: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return refuse(where, 'expected a string');
}

function strings(value: unknown, where: string): Record<string, string> {
  if (value === undefined) return {};
  return Object.fromEntries(Object.entries(record(value, where)).map(([k, v]) => [k, text(v, `${where}.${k}`)]));
}

function parseStep(raw: unknown, where: string): StepDef {
  const s = record(raw, where);
  onlyKeys(s, ['id', 'name', 'if', 'uses', 'with', 'run', 'shell', 'env'], where);
  if ((s.uses === undefined) === (s.run === undefined)) refuse(where, 'a step needs exactly one of uses and run');
  if (s.shell !== undefined && s.shell !== 'bash')
    refuse(`${where}.shell`, `the check runs bash steps only, not '${String(s.shell)}'`);
  if (s.run !== undefined && s.with !== undefined) refuse(`${where}.with`, 'with: belongs to uses: steps');
  return {
    where,
    id: s.id === undefined ? undefined : text(s.id, `${where}.id`),
    name: s.name === undefined ? undefined : text(s.name, `${where}.name`),
    if: s.if,
    uses: s.uses === undefined ? undefined : text(s.uses, `${where}.uses`),
    with: strings(s.with, `${where}.with`),
    run: s.run === undefined ? undefined : text(s.run, `${where}.run`),
    shell: s.shell as 'bash' | undefined,
    env: strings(s.env, `${where}.env`),
  };
}

function parseJob(id: string, raw: unknown): JobDef {
  const where = `jobs.${id}`;
  const j = record(raw, where);
  onlyKeys(j, ['name', 'needs', 'if', 'runs-on', 'timeout-minutes', 'container', 'strategy', 'env', 'steps'], where);
  const runsOn = text(j['runs-on'], `${where}.runs-on`);
  // The job's container stands in for the runner's OS: any of GitHub's Ubuntu runners will do.
  if (!/^ubuntu-[a-z0-9.]+$/.test(runsOn)) refuse(`${where}.runs-on`, `'${runsOn}' is not a GitHub Ubuntu runner`);
  if (j.container === undefined)
    refuse(
      where,
      `no container: the check stands in for a ${IMAGE} container job only, not for a job on the runner itself`,
    );
  const c = record(j.container, `${where}.container`);
  onlyKeys(c, ['image', 'options'], `${where}.container`);
  if (c.image !== IMAGE)
    refuse(`${where}.container.image`, `the check stands in for ${IMAGE} only, not '${String(c.image)}'`);
  const options = c.options === undefined ? '' : text(c.options, `${where}.container.options`).trim();
  if (options !== '' && options !== '--privileged')
    refuse(`${where}.container.options`, `the check knows --privileged only, not '${options}'`);
  let matrix: Record<string, string[]> | undefined;
  if (j.strategy !== undefined) {
    const s = record(j.strategy, `${where}.strategy`);
    onlyKeys(s, ['fail-fast', 'matrix'], `${where}.strategy`);
    // The check runs every matrix job to its end, as fail-fast: false does.
    if (s['fail-fast'] !== false)
      refuse(`${where}.strategy.fail-fast`, 'the check follows fail-fast: false only (every matrix job runs)');
    const m = record(s.matrix, `${where}.strategy.matrix`);
    if ('include' in m || 'exclude' in m)
      refuse(`${where}.strategy.matrix`, 'the check does not follow include or exclude');
    matrix = Object.fromEntries(
      Object.entries(m).map(([key, values]) => {
        if (!Array.isArray(values) || values.length === 0)
          refuse(`${where}.strategy.matrix.${key}`, 'expected a non-empty list');
        return [key, values.map((v, i) => text(v, `${where}.strategy.matrix.${key}[${i}]`))];
      }),
    );
  }
  if (!Array.isArray(j.steps) || j.steps.length === 0) refuse(`${where}.steps`, 'expected a non-empty list');
  const timeout = j['timeout-minutes'] ?? DEFAULT_TIMEOUT_MINUTES;
  if (typeof timeout !== 'number' || !(timeout > 0)) refuse(`${where}.timeout-minutes`, 'expected a positive number');
  const needs = j.needs === undefined ? [] : ([] as unknown[]).concat(j.needs);
  return {
    id,
    name: j.name === undefined ? undefined : text(j.name, `${where}.name`),
    needs: needs.map((n, i) => text(n, `${where}.needs[${i}]`)),
    if: j.if,
    runsOn,
    timeoutMinutes: timeout,
    privileged: options === '--privileged',
    matrix,
    env: strings(j.env, `${where}.env`),
    steps: j.steps.map((s, i) => parseStep(s, `${where}.steps[${i}]`)),
  };
}

/** Reads and checks a workflow's text; file names it in every refusal. */
export function parseWorkflow(source: string, file: string): Workflow {
  let doc: unknown;
  try {
    doc = parseYaml(source);
  } catch (e) {
    throw new UsageError(`${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    const w = record(doc, 'the workflow');
    onlyKeys(w, ['name', 'on', 'jobs'], 'the workflow');
    const on = record(w.on, 'on');
    if (!('workflow_dispatch' in on))
      refuse('on', 'no workflow_dispatch: the check runs the workflow as a workflow_dispatch run');
    const dispatch = on.workflow_dispatch === null ? {} : record(on.workflow_dispatch, 'on.workflow_dispatch');
    onlyKeys(dispatch, ['inputs'], 'on.workflow_dispatch');
    const inputs = Object.fromEntries(
      Object.entries(dispatch.inputs === undefined ? {} : record(dispatch.inputs, 'on.workflow_dispatch.inputs')).map(
        ([name, raw]) => {
          const where = `on.workflow_dispatch.inputs.${name}`;
          const input = record(raw, where);
          onlyKeys(input, ['description', 'default'], where);
          return [name, input.default === undefined ? '' : text(input.default, `${where}.default`)];
        },
      ),
    );
    const jobs = Object.entries(record(w.jobs, 'jobs')).map(([id, raw]) => parseJob(id, raw));
    return { name: w.name === undefined ? file : text(w.name, 'name'), inputs, jobs: inDependencyOrder(jobs) };
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`${file}: ${e.message}`);
    throw e;
  }
}

function inDependencyOrder(jobs: JobDef[]): JobDef[] {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const ordered: JobDef[] = [];
  const visiting = new Set<string>();
  const visit = (j: JobDef) => {
    if (ordered.includes(j)) return;
    if (visiting.has(j.id)) refuse(`jobs.${j.id}.needs`, 'a cycle of needs');
    visiting.add(j.id);
    for (const n of j.needs) visit(byId.get(n) ?? refuse(`jobs.${j.id}.needs`, `no job '${n}'`));
    visiting.delete(j.id);
    ordered.push(j);
  };
  jobs.forEach(visit);
  return ordered;
}

/** The inputs of a workflow_dispatch run: the declared defaults, overridden by given (each declared). */
export function dispatchInputs(w: Workflow, given: Record<string, string>): Record<string, string> {
  for (const name of Object.keys(given))
    if (!(name in w.inputs))
      throw new UsageError(
        `--input: the workflow has no input '${name}' (it has ${Object.keys(w.inputs).join(', ') || 'none'})`,
      );
  return { ...w.inputs, ...given };
}

/** Each job, or each combination of its matrix (in the order GitHub numbers them), with its name. */
export function expandJobs(w: Workflow, inputs: Record<string, string>): JobRun[] {
  return w.jobs.flatMap((job) => {
    if (!job.matrix) return [{ job, name: job.name ?? job.id, index: 0 }];
    let combos: Record<string, string>[] = [{}];
    for (const [key, values] of Object.entries(job.matrix)) {
      const evaluated = values.map((v, i) => interpolate(v, { inputs }, `jobs.${job.id}.strategy.matrix.${key}[${i}]`));
      combos = combos.flatMap((c) => evaluated.map((v) => ({ ...c, [key]: v })));
    }
    return combos.map((matrix, index) => ({
      job,
      matrix,
      index,
      name:
        job.name === undefined
          ? `${job.id} (${Object.values(matrix).join(', ')})`
          : interpolate(job.name, { inputs, matrix }, `jobs.${job.id}.name`),
    }));
  });
}
