// npm run check:workflow: the committed .github/workflows/kernels.yml run for real, every job in
// its local bookworm container (two TCG guests and the comparison), and Ctrl-C in the middle of
// it; what the check refuses to follow (keys, expressions, actions), each refused by name before
// anything runs; the expressions it does follow, evaluated as GitHub does; its command line.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { condition, interpolate } from '../../app/checkWorkflow/expressions.js';
import { OWNER_LABEL } from '../../app/checkWorkflow/jobContainer.js';
import { checkWorkflow } from '../../app/checkWorkflow/run.js';
import { dispatchInputs, expandJobs, parseWorkflow } from '../../app/checkWorkflow/workflow.js';
import { baseProblem } from '../../engine/sandbox/baseRootfs.js';
import { DOCKER_SOCKET, pingDocker } from '../../engine/sandbox/dockerPing.js';
import { DEFAULT_STATE_DIR, StateDir } from '../../engine/state/stateDir.js';
import { UsageError } from '../../harness/errors.js';
import { scratchLeft, skipWith } from '../helpers/helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHECK = path.resolve(here, '../../app/checkWorkflow.js');
const WORKFLOW_FILE = path.resolve(here, '../../../.github/workflows/kernels.yml');
const WORKFLOW = fs.readFileSync(WORKFLOW_FILE, 'utf8');

function check(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CHECK, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** The whole static check of a workflow text: parse, inputs, matrix, expressions and actions. */
function statically(text: string, given: Record<string, string> = {}) {
  const w = parseWorkflow(text, 'kernels.yml');
  const inputs = dispatchInputs(w, given);
  const runs = expandJobs(w, inputs);
  checkWorkflow(runs, inputs);
  return runs;
}

/** The workflow with one exact piece of text replaced (which must be there). */
function edited(from: string, to: string): string {
  assert.ok(WORKFLOW.includes(from), `the workflow no longer has ${JSON.stringify(from)}`);
  return WORKFLOW.replace(from, to);
}

const wf = suite('check:workflow: reading the workflow');

wf('the committed workflow: two kernel jobs, the baseline first, then compare', () => {
  const runs = statically(WORKFLOW);
  assert.equal(
    runs.map((r) => [r.name, r.index]),
    [
      ['linux-image-6.1.0-47-amd64', 0],
      ['linux-image-6.1.0-50-amd64', 1],
      ['compare', 0],
    ],
  );
  assert.ok(runs[0]!.job.privileged);
  const dispatched = statically(WORKFLOW, { candidate: 'linux-image-6.1.0-50-amd64:ipv6.disable=1' });
  assert.is(dispatched[1]!.name, 'linux-image-6.1.0-50-amd64:ipv6.disable=1');
});

for (const [what, from, to, mention] of [
  [
    'an unknown step key',
    '        id: artifact\n',
    '        id: artifact\n        continue-on-error: true\n',
    "'continue-on-error'",
  ],
  ['an unknown action', 'actions/checkout@v4', 'actions/checkout@v5', 'no stand-in for actions/checkout@v5'],
  [
    'an unknown action input',
    '          path: runs\n',
    '          path: runs\n          merge-multiple: true\n',
    "'merge-multiple'",
  ],
  [
    'a context it does not evaluate',
    '${{ matrix.kernel }}\n    runs-on',
    '${{ github.sha }}\n    runs-on',
    'github.sha',
  ],
  [
    'an operator it does not evaluate',
    "${{ inputs.studies || 'netns' }}",
    "${{ inputs.studies && 'netns' }}",
    'the operator &&',
  ],
  ['a function it does not evaluate', '${{ !cancelled() }}', "${{ contains(inputs.studies, 'x') }}", 'contains()'],
  ['an undeclared input', "${{ inputs.threshold || '25' }}", "${{ inputs.limit || '25' }}", 'inputs.limit'],
  ['another image', 'image: debian:bookworm\n      options', 'image: debian:trixie\n      options', "'debian:trixie'"],
  [
    'other container options',
    'options: --privileged',
    'options: --privileged --device /dev/kvm',
    "'--privileged --device /dev/kvm'",
  ],
  [
    'a matrix include',
    'fail-fast: false\n      matrix:\n',
    'fail-fast: false\n      matrix:\n        include: []\n',
    'include',
  ],
  ['another shell', 'shell: bash\n        run: npm', 'shell: sh\n        run: npm', "bash steps only, not 'sh'"],
] as const) {
  wf(`refused before anything runs: ${what}, by name`, () => {
    let refused: unknown;
    try {
      statically(edited(from, to));
    } catch (e) {
      refused = e;
    }
    assert.instance(refused, UsageError, `not refused: ${what}`);
    assert.match((refused as Error).message, mention);
    assert.not.match((refused as Error).message, '\n');
  });
}

wf('a job on the runner itself is refused: the check stands in for container jobs only', () => {
  const text = WORKFLOW.replace(/ {4}container:\n {6}image: debian:bookworm\n {6}options: --privileged\n/, '');
  assert.throws(() => statically(text), /no container: the check stands in for a debian:bookworm container job only/);
});

wf('expressions: what the workflow uses, as GitHub evaluates it', () => {
  const ctx = { inputs: { studies: '', kernel: 'k' }, matrix: { kernel: 'm' }, strategy: { 'job-index': 1 } };
  assert.is(interpolate("${{ inputs.studies || 'netns' }}", ctx, 'x'), 'netns');
  assert.is(interpolate("${{ inputs.kernel || 'netns' }}", ctx, 'x'), 'k');
  assert.is(interpolate('kernels-${{ strategy.job-index }}-${{ matrix.kernel }}', ctx, 'x'), 'kernels-1-m');
  assert.is(interpolate("${{ 'it''s' }}", ctx, 'x'), "it's");
  const ok = { ...ctx, status: { failed: false } };
  const failed = { ...ctx, status: { failed: true } };
  assert.ok(condition(undefined, ok, 'x'));
  assert.not.ok(condition(undefined, failed, 'x'));
  assert.ok(condition('always()', failed, 'x'));
  assert.ok(condition('${{ !cancelled() }}', failed, 'x'));
  assert.ok(condition('failure()', failed, 'x'));
  // No status function: success() applies as well.
  assert.not.ok(condition("${{ inputs.kernel || 'x' }}", failed, 'x'));
  assert.throws(() => condition('ok ${{ always() }}', ok, 'x'), /mixes text/);
});

const cliSuite = suite('check:workflow: command line');

cliSuite('--help says what it runs, its flags and its exit statuses', async () => {
  const r = await check(['--help']);
  assert.is(r.code, 0, r.stderr);
  for (const s of ['--workflow', '--ref', '--input', '--base', 'NODE_EXTRA_CA_CERTS', 'Ctrl-C', '130 interrupted'])
    assert.match(r.stdout, s);
});

for (const [args, mention] of [
  [['--input', 'nosuch=1'], "no input 'nosuch'"],
  [['--input', 'studies'], "'studies' is not NAME=VALUE"],
  [['--ref', 'no-such-ref'], "'no-such-ref' is not a commit"],
  [['--workflow', '.github/workflows/none.yml'], 'no .github/workflows/none.yml'],
  [['--frobnicate'], 'frobnicate'],
] as const) {
  cliSuite(`bad input ${args.join(' ')}: exit 2, one line naming ${mention}`, async () => {
    const r = await check([...args]);
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, mention);
  });
}

const base = new StateDir(DEFAULT_STATE_DIR).defaultBase;
const why =
  process.getuid?.() !== 0
    ? 'not root'
    : !(await pingDocker(DOCKER_SOCKET)).ok
      ? 'no Docker daemon answers'
      : baseProblem(base) !== undefined
        ? `no engine base (${baseProblem(base)}); scripts/setup.sh builds it`
        : undefined;
const real = suite('check:workflow: the workflow run for real');

async function leftContainers(): Promise<string[]> {
  const docker = new Docker({ socketPath: DOCKER_SOCKET });
  return (await docker.listContainers({ all: true, filters: { label: [OWNER_LABEL] } })).map((c) => c.Id);
}

skipWith(why, real)('Ctrl-C in the first step: exit 130, its container and directory gone', async () => {
  const child = spawn(process.execPath, [CHECK], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const started = new Promise<void>((resolve) =>
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('1/8 Tools the checkout needs\n')) resolve();
    }),
  );
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await Promise.race([started, exited]);
  child.kill('SIGINT');
  assert.is(await exited, 130, stderr);
  assert.match(stderr, 'interrupted by SIGINT');
  assert.equal(await leftContainers(), []);
  assert.equal(scratchLeft('check-workflow'), []);
});

// The gate's verdict is not the workflow's: here it judges two TCG guests run minutes apart on one
// shared machine, whose noise alone can pass 25 %. So the gate may say "regression" (exit 1 of
// its step and of the check), and only that; every other step must pass, and the comparison
// must have been made (not refused).
skipWith(why, real)(
  'every job runs: setup, two TCG guests, the comparison and its gate; each step timed; nothing left',
  async () => {
    const r = await check([]);
    const context = `${r.stdout}\n${r.stderr.slice(-6000)}`;
    // The step table comes first, before the jobs' summaries.
    const rows = r.stdout
      .split('\n### Summary')[0]!
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| job '))
      .map((l) =>
        l
          .slice(2, -2)
          .split(' | ')
          .map((c) => c.trim()),
      );
    const jobs = ['linux-image-6.1.0-47-amd64', 'linux-image-6.1.0-50-amd64', 'compare'];
    for (const job of jobs)
      assert.ok(
        rows.some(([j]) => j === job),
        `no steps of ${job}\n${context}`,
      );
    const gate = 'Compare with the baseline, gate on regressions';
    for (const [job, step, result, seconds] of rows) {
      if (job === 'compare' && step === gate && result === 'failure: exit status 1') continue;
      assert.is(result, 'success', `${job}: ${step}\n${context}`);
      assert.ok(Number(seconds) >= 0, `${job}: ${step}: ${seconds}`);
    }
    assert.ok(
      rows.some(([job, step]) => job === 'compare' && step === gate),
      context,
    );
    assert.ok([0, 1].includes(r.code), context);
    // Each kernel's summary shows the accelerator it ran under; the comparison was made.
    assert.match(r.stdout, /### Summary of linux-image-6\.1\.0-47-amd64[\s\S]*tcg \(emulated\)/);
    assert.match(r.stdout, '## netns: linux-image-6.1.0-50-amd64 (6.1.0-50-amd64, TCG software emulation) against');
    assert.not.match(r.stdout, 'not a kernel comparison');
    assert.match(r.stdout, `check:workflow: ${r.code === 0 ? 3 : 2} jobs passed, ${r.code} failed, 0 skipped`);
    assert.equal(await leftContainers(), []);
    assert.equal(scratchLeft('check-workflow'), []);
  },
);

wf.run();
cliSuite.run();
real.run();
