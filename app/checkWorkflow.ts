#!/usr/bin/env node
// npm run check:workflow: .github/workflows/kernels.yml run here, since no GitHub runner can be
// reached from here, so that a change to the workflow or to scripts/setup.sh fails before it
// reaches GitHub. Each job (each matrix combination, one after another) runs its steps in order
// in a fresh local bookworm container made from the engine's debootstrap base; the `uses:`
// actions it knows are stood in for on this host; any key, expression or action it does not
// know is refused by name. What it cannot show (the real actions, KVM, GitHub's runners) is
// in docs/kernels.md#ci.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DEFAULT_STATE_DIR, StateDir } from '../engine/state/stateDir.js';
import { InterruptedError, PrivilegeError, UsageError } from '../harness/errors.js';
import { markdownTable } from '../harness/markdown.js';
import { ownedDir, reclaimLeftovers, removeOwnedDir } from '../harness/ownedDirs.js';
import { REPO_ROOT, runIfMain } from './flags.js';
import { prepareImage, reclaimContainers } from './checkWorkflow/jobContainer.js';
import { checkWorkflow, runJobs, type StepOutcome } from './checkWorkflow/run.js';
import { prepareToolCache } from './checkWorkflow/standIns.js';
import { dispatchInputs, expandJobs, parseWorkflow } from './checkWorkflow/workflow.js';

const execFileAsync = promisify(execFile);
const OWNER_KIND = 'check-workflow';
const DEFAULT_WORKFLOW = '.github/workflows/kernels.yml';

async function git(...args: string[]): Promise<string> {
  return (await execFileAsync('git', ['-C', REPO_ROOT, ...args], { maxBuffer: 16 << 20 })).stdout;
}

/** What git said when it refused, for the one-line error: ownership or a broken repository, not only a missing name. */
function gitSays(e: unknown): string {
  const line = String((e as { stderr?: string }).stderr ?? '')
    .split('\n')
    .find((l) => l.trim() !== '');
  return line ? ` (git: ${line.replace(/^fatal: /, '').trim()})` : '';
}

function parseInputs(given: unknown): Record<string, string> {
  return Object.fromEntries(
    ([] as unknown[]).concat(given ?? []).map((raw) => {
      const m = /^([A-Za-z0-9_-]+)=(.*)$/s.exec(String(raw));
      if (!m) throw new UsageError(`--input: '${String(raw)}' is not NAME=VALUE`);
      return [m[1]!, m[2]!];
    }),
  );
}

async function main(): Promise<number> {
  const args = await yargs(hideBin(process.argv))
    .scriptName('check:workflow')
    .usage(
      [
        '$0 [options]\n\nRuns the workflow, as committed at --ref, here: as a workflow_dispatch run with the',
        "inputs' defaults (or --input), each job (each matrix combination, one after another) in a fresh",
        "container made from the engine's debootstrap base (Debian bookworm), standing in for the job's",
        'debian:bookworm container: its run: steps in order with bash, its uses: steps through stand-ins',
        "(actions/checkout: a depth-1 fetch of the commit; actions/setup-node: this host's Node; upload- and",
        'download-artifact: a directory here). A key, ${{ }} expression or action it does not follow is',
        "refused before anything runs. This host's NODE_EXTRA_CA_CERTS, when set, is passed on to npm in",
        'the jobs. Needs root and a running dockerd. Prints each step with its time, then a table of them',
        "and each job's summary; removes every container and directory it made, also on Ctrl-C.",
        'Exit status: 0 every job passed; 1 a step failed; 2 bad input, or a workflow the check cannot',
        "follow; 3 not root, no dockerd, no base, or this host's Node unfit to stand in; 130 interrupted.",
      ].join(' '),
    )
    .option('workflow', {
      type: 'string',
      default: DEFAULT_WORKFLOW,
      describe: 'the workflow file, a path in the repository',
    })
    .option('ref', {
      type: 'string',
      default: 'HEAD',
      describe: 'the commit whose workflow is run and which the checkout step checks out (commit first)',
    })
    .option('input', {
      type: 'string',
      array: true,
      describe: "a workflow_dispatch input, NAME=VALUE (repeat for each); the others take the workflow's defaults",
    })
    .option('base', {
      type: 'string',
      describe: `the debootstrap base to make the image of [default: ${DEFAULT_STATE_DIR}/base]`,
    })
    .strict()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((message, error) => {
      throw error ?? new UsageError(message.replace(/\s*\n\s*/g, ' '));
    })
    .parse();
  const given = parseInputs(args.input);
  let sha: string;
  try {
    sha = (await git('rev-parse', '--verify', '--quiet', `${args.ref}^{commit}`)).trim();
  } catch (e) {
    throw new UsageError(`--ref: '${args.ref}' is not a commit of ${REPO_ROOT}${gitSays(e)}`);
  }
  let source: string;
  try {
    source = await git('show', `${sha}:${args.workflow}`);
  } catch (e) {
    throw new UsageError(`--workflow: no ${args.workflow} in commit ${sha.slice(0, 12)}${gitSays(e)}`);
  }
  const workflow = parseWorkflow(source, args.workflow);
  const inputs = dispatchInputs(workflow, given);
  const runs = expandJobs(workflow, inputs);
  checkWorkflow(runs, inputs);

  if (process.getuid?.() !== 0)
    throw new PrivilegeError(
      "not root: the jobs' containers write root's files into the check's directories, which it must remove",
    );
  const base = path.resolve(args.base ?? new StateDir(DEFAULT_STATE_DIR).defaultBase);
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  const extraCaCerts = extraCa && fs.existsSync(extraCa) ? fs.realpathSync(extraCa) : undefined;

  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      say(`\ncheck:workflow: second ${signal}, exiting (the next run removes what is left)`);
      process.exit(130);
    }
    say(`check:workflow: ${signal}: stopping the job and removing its container (press again to force)`);
    controller.abort(new InterruptedError(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const t0 = Date.now();
  let scratch: string | undefined;
  try {
    for (const gone of reclaimLeftovers(OWNER_KIND))
      say(`check:workflow: removed ${gone}, left by a check that is gone`);
    const orphans = await reclaimContainers();
    if (orphans > 0) say(`check:workflow: removed ${orphans} containers left by a check that is gone`);
    const image = await prepareImage(base, (line) => say(`check:workflow: ${line}`));
    scratch = ownedDir(OWNER_KIND);
    const node = prepareToolCache(path.join(scratch, 'toolcache'));
    say(
      `check:workflow: ${workflow.name} (${args.workflow}) at ${sha.slice(0, 12)}, workflow_dispatch with ${Object.entries(
        inputs,
      )
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}: ${runs.length} jobs: ${runs.map((r) => r.name).join(', ')}`,
    );
    if (extraCaCerts) say(`check:workflow: passing this host's NODE_EXTRA_CA_CERTS (${extraCaCerts}) on to the jobs`);
    const { jobs, steps } = await runJobs({
      workflow,
      runs,
      inputs,
      repo: REPO_ROOT,
      sha,
      image,
      node,
      scratch,
      extraCaCerts,
      signal: controller.signal,
      log: say,
    });
    process.stdout.write(`${stepTable(steps)}\n`);
    for (const j of jobs)
      if (j.summary.trim() !== '') process.stdout.write(`\n### Summary of ${j.name}\n${j.summary.trimEnd()}\n`);
    const count = (o: string) => jobs.filter((j) => j.outcome === o).length;
    const failed = count('failure');
    process.stdout.write(
      `\ncheck:workflow: ${count('success')} jobs passed, ${failed} failed, ${count('skipped')} skipped, in ${Math.round(
        (Date.now() - t0) / 1000,
      )} s\n`,
    );
    return failed > 0 ? 1 : 0;
  } finally {
    if (scratch) removeOwnedDir(scratch);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function stepTable(steps: StepOutcome[]): string {
  return markdownTable(
    ['job', 'step', 'result', 'seconds'],
    steps.map((s) => [
      s.job,
      s.step,
      s.outcome + (s.detail ? `: ${s.detail}` : ''),
      s.outcome === 'skipped' ? '-' : s.seconds.toFixed(1),
    ]),
  );
}

runIfMain(import.meta.url, 'check:workflow', main);
