// Runs a workflow's jobs as npm run check:workflow does: each job (each matrix combination) in
// a fresh container, one after another, its steps in order, with GitHub's environment for a
// container job (the workspace at /__w, $GITHUB_OUTPUT and the like), `run:` steps with bash,
// `uses:` steps through the stand-ins. Everything the workflow asks for is checked before the
// first container starts, so a workflow the check cannot follow is refused at once.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isUserError, UsageError } from '../../harness/errors.js';
import { checkCondition, checkTemplates, condition, interpolate, type ExprContext } from './expressions.js';
import { JobContainer, type Mount } from './jobContainer.js';
import { checkStandIn, standIn, TOOL_CACHE, type ToolCacheNode } from './standIns.js';
import type { JobRun, StepDef, Workflow } from './workflow.js';

export type Outcome = 'success' | 'failure' | 'skipped';

export interface StepOutcome {
  job: string;
  step: string;
  outcome: Outcome;
  seconds: number;
  detail?: string;
}

export interface JobOutcome {
  name: string;
  outcome: Outcome;
  seconds: number;
  /** What its steps wrote to $GITHUB_STEP_SUMMARY (the run page's summary on GitHub). */
  summary: string;
  detail?: string;
}

export interface RunOptions {
  workflow: Workflow;
  runs: JobRun[];
  inputs: Record<string, string>;
  repo: string;
  sha: string;
  image: string;
  node: ToolCacheNode;
  /** This run's scratch directory: the jobs' directories and the artifacts go there. */
  scratch: string;
  /** A CA bundle the host trusts beyond Node's own (NODE_EXTRA_CA_CERTS), passed on to npm in the jobs. */
  extraCaCerts?: string;
  signal: AbortSignal;
  log: (line: string) => void;
}

// GitHub names the workspace /__w/<repository>/<repository> in a container job.
const REPOSITORY = 'sockbench';
const WORKSPACE = `/__w/${REPOSITORY}/${REPOSITORY}`;
const TEMP = '/__w/_temp';
const EXTRA_CA = '/__e/extra-ca-certificates.crt';
// The PATH of an image without one (docker import sets none): Docker's default.
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function stepName(step: StepDef, ctx: ExprContext): string {
  if (step.name !== undefined) return interpolate(step.name, ctx, `${step.where}.name`);
  return step.uses ? `Run ${step.uses}` : `Run ${step.run!.trim().split('\n')[0]}`;
}

function jobContexts(r: JobRun, inputs: Record<string, string>): { job: ExprContext; steps: ExprContext } {
  const ids = r.job.steps.flatMap((s) => (s.id ? [s.id] : []));
  const job: ExprContext = { inputs, matrix: r.matrix, strategy: r.job.matrix ? { 'job-index': r.index } : undefined };
  return { job, steps: { ...job, steps: Object.fromEntries(ids.map((id) => [id, {}])) } };
}

/** Refuses, before anything runs, every expression, action and input the check cannot follow. */
export function checkWorkflow(runs: JobRun[], inputs: Record<string, string>): void {
  for (const r of runs) {
    const where = `jobs.${r.job.id}`;
    checkCondition(r.job.if, { inputs }, `${where}.if`);
    const ctx = jobContexts(r, inputs);
    for (const [k, v] of Object.entries(r.job.env)) checkTemplates(v, ctx.job, `${where}.env.${k}`);
    const ids = new Set<string>();
    for (const step of r.job.steps) {
      if (step.id !== undefined) {
        if (ids.has(step.id)) throw new UsageError(`${step.where}.id: '${step.id}' is the id of an earlier step`);
        ids.add(step.id);
      }
      checkCondition(step.if, ctx.steps, `${step.where}.if`);
      for (const [field, value] of [
        ['name', step.name],
        ['run', step.run],
        ...Object.entries(step.with).map(([k, v]) => [`with.${k}`, v]),
        ...Object.entries(step.env).map(([k, v]) => [`env.${k}`, v]),
      ] as [string, string | undefined][])
        if (value !== undefined) checkTemplates(value, ctx.steps, `${step.where}.${field}`);
      if (step.uses) checkStandIn(step.uses, Object.keys(step.with), step.where);
    }
  }
}

/** `name=value` lines, as a step writes them to $GITHUB_OUTPUT; the multi-line form is refused. */
function readOutputs(file: string, where: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line === '') continue;
    const m = /^([A-Za-z0-9_-]+)=(.*)$/.exec(line);
    if (!m) throw new UsageError(`${where}: the check follows name=value lines in $GITHUB_OUTPUT, not '${line}'`);
    outputs[m[1]!] = m[2]!;
  }
  return outputs;
}

/** Runs every job; throws only for what ends the whole check (an interruption, a refusal). */
export async function runJobs(o: RunOptions): Promise<{ jobs: JobOutcome[]; steps: StepOutcome[] }> {
  const jobs: JobOutcome[] = [];
  const steps: StepOutcome[] = [];
  const outcomeOf = new Map<string, Outcome[]>();
  for (const [n, r] of o.runs.entries()) {
    if (o.signal.aborted) throw o.signal.reason;
    const failedNeeds = r.job.needs.some((id) => (outcomeOf.get(id) ?? []).some((x) => x !== 'success'));
    let job: JobOutcome;
    if (!condition(r.job.if, { inputs: o.inputs, status: { failed: failedNeeds } }, `jobs.${r.job.id}.if`)) {
      job = { name: r.name, outcome: 'skipped', seconds: 0, summary: '', detail: 'its if: is false' };
      o.log(`check:workflow: job ${r.name}: skipped (its if: is false)`);
    } else {
      job = await runJob(o, r, path.join(o.scratch, `job-${n + 1}`), (s) => steps.push(s));
    }
    jobs.push(job);
    outcomeOf.set(r.job.id, [...(outcomeOf.get(r.job.id) ?? []), job.outcome]);
  }
  return { jobs, steps };
}

async function runJob(o: RunOptions, r: JobRun, dir: string, onStep: (s: StepOutcome) => void): Promise<JobOutcome> {
  const t0 = Date.now();
  const work = path.join(dir, 'work');
  const workspace = path.join(work, REPOSITORY, REPOSITORY);
  const commands = path.join(work, '_temp', '_runner_file_commands');
  for (const d of [workspace, commands, path.join(dir, 'home')]) fs.mkdirSync(d, { recursive: true });
  const mounts: Mount[] = [
    { host: work, container: '/__w' },
    { host: path.join(dir, 'home'), container: '/github/home' },
    { host: path.join(o.scratch, 'toolcache'), container: TOOL_CACHE, readonly: true },
  ];
  if (o.extraCaCerts) mounts.push({ host: o.extraCaCerts, container: EXTRA_CA, readonly: true });
  o.log(
    `check:workflow: job ${r.name}: a ${r.job.privileged ? 'privileged ' : ''}container from ${o.image} stands in for debian:bookworm on ${r.job.runsOn}`,
  );
  const container = await JobContainer.start(o.image, mounts, WORKSPACE, r.job.privileged);
  const summary: string[] = [];
  const addedPath: string[] = [];
  const ctx = jobContexts(r, o.inputs);
  const outputs = ctx.steps.steps!;
  let failed = false;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void container.remove();
  }, r.job.timeoutMinutes * 60_000);
  const onAbort = () => void container.remove();
  o.signal.addEventListener('abort', onAbort);
  try {
    // Interrupted while the container was starting, before the listener was there.
    if (o.signal.aborted) throw o.signal.reason;
    const jobEnv = Object.fromEntries(
      Object.entries(r.job.env).map(([k, v]) => [k, interpolate(v, ctx.job, `jobs.${r.job.id}.env.${k}`)]),
    );
    for (const [i, step] of r.job.steps.entries()) {
      if (o.signal.aborted) throw o.signal.reason;
      const sctx: ExprContext = { ...ctx.steps, status: { failed } };
      const name = stepName(step, sctx);
      const label = `${i + 1}/${r.job.steps.length} ${name}`;
      if (timedOut || !condition(step.if, sctx, `${step.where}.if`)) {
        onStep({ job: r.name, step: name, outcome: 'skipped', seconds: 0 });
        o.log(`check:workflow: ${r.name}: ${label}: skipped`);
        continue;
      }
      o.log(`check:workflow: ${r.name}: ${label}`);
      const s0 = Date.now();
      let detail: string | undefined;
      const say = (line: string) => o.log(`[${r.name}] ${line}`);
      if (step.uses) {
        const given = Object.fromEntries(
          Object.entries(step.with).map(([k, v]) => [k, interpolate(v, sctx, `${step.where}.with.${k}`)]),
        );
        try {
          await standIn(
            step.uses,
            {
              workspace,
              repo: o.repo,
              sha: o.sha,
              artifacts: path.join(o.scratch, 'artifacts'),
              node: o.node,
              addPath: (d) => addedPath.unshift(d),
              say,
            },
            given,
            step.where,
          );
        } catch (e) {
          if (isUserError(e)) throw e;
          detail = (e as Error).message;
        }
      } else {
        const id = crypto.randomUUID();
        const files = {
          GITHUB_OUTPUT: `set_output_${id}`,
          GITHUB_ENV: `set_env_${id}`,
          GITHUB_PATH: `add_path_${id}`,
          GITHUB_STEP_SUMMARY: `step_summary_${id}`,
        };
        for (const f of Object.values(files)) fs.writeFileSync(path.join(commands, f), '');
        fs.writeFileSync(path.join(work, '_temp', `${id}.sh`), interpolate(step.run!, sctx, `${step.where}.run`));
        const stepEnv = Object.fromEntries(
          Object.entries(step.env).map(([k, v]) => [k, interpolate(v, sctx, `${step.where}.env.${k}`)]),
        );
        const env = {
          CI: 'true',
          GITHUB_ACTIONS: 'true',
          GITHUB_EVENT_NAME: 'workflow_dispatch',
          GITHUB_JOB: r.job.id,
          GITHUB_SHA: o.sha,
          GITHUB_WORKSPACE: WORKSPACE,
          HOME: '/github/home',
          RUNNER_OS: 'Linux',
          RUNNER_TEMP: TEMP,
          RUNNER_TOOL_CACHE: TOOL_CACHE,
          PATH: [...addedPath, DEFAULT_PATH].join(':'),
          ...Object.fromEntries(Object.entries(files).map(([k, f]) => [k, `${TEMP}/_runner_file_commands/${f}`])),
          // Not GitHub's: this host's TLS trust, which npm needs to reach the registry from here.
          ...(o.extraCaCerts ? { NODE_EXTRA_CA_CERTS: EXTRA_CA } : {}),
          ...jobEnv,
          ...stepEnv,
        };
        // GitHub's commands for a step without shell: and with shell: bash.
        const shell = step.shell === 'bash' ? ['bash', '--noprofile', '--norc', '-eo', 'pipefail'] : ['bash', '-e'];
        const rc = await container.exec(
          [...shell, `${TEMP}/${id}.sh`],
          Object.entries(env).map(([k, v]) => `${k}=${v}`),
          WORKSPACE,
          say,
        );
        if (o.signal.aborted) throw o.signal.reason;
        if (rc !== 0)
          detail = timedOut
            ? `timed out: the job's timeout-minutes (${r.job.timeoutMinutes}) ran out`
            : `exit status ${rc ?? 'unknown (the container went away)'}`;
        for (const f of ['GITHUB_ENV', 'GITHUB_PATH'] as const)
          if (fs.readFileSync(path.join(commands, files[f]), 'utf8') !== '')
            throw new UsageError(`${step.where}: the step wrote $${f}, which the check does not follow`);
        if (step.id)
          Object.assign(outputs[step.id]!, readOutputs(path.join(commands, files.GITHUB_OUTPUT), step.where));
        summary.push(fs.readFileSync(path.join(commands, files.GITHUB_STEP_SUMMARY), 'utf8'));
      }
      const seconds = (Date.now() - s0) / 1000;
      if (detail !== undefined) failed = true;
      onStep({ job: r.name, step: name, outcome: detail === undefined ? 'success' : 'failure', seconds, detail });
      o.log(
        `check:workflow: ${r.name}: ${label}: ${detail === undefined ? 'success' : `failure (${detail})`} in ${seconds.toFixed(1)} s`,
      );
    }
  } finally {
    clearTimeout(timer);
    o.signal.removeEventListener('abort', onAbort);
    await container.remove();
    // The workspace is the job's own, as a runner's is: the next job starts from a fresh one.
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const seconds = (Date.now() - t0) / 1000;
  return {
    name: r.name,
    outcome: failed ? 'failure' : 'success',
    seconds,
    summary: summary.join(''),
    detail: timedOut ? `timed out after ${r.job.timeoutMinutes} minutes` : undefined,
  };
}
