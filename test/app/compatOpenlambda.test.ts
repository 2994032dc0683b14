// Handlers written for OpenLambda, run unchanged: npm run compat:openlambda's checks and
// lambdas (Flask and FastAPI from Debian's packages through the install cache) through a real
// worker started lean, zygote and warm, and its command line's bad input.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runCompat, START_KINDS, tally } from '../../app/compat/openlambda.js';
import { CHECKS } from '../../app/compat/openlambda/checks.js';
import { scratchLeft } from '../helpers/helpers.js';

const compat = suite('compat:openlambda: every check, under every start kind');

compat('all pass lean, zygote and warm, and the run leaves nothing behind', async () => {
  const outcomes = await runCompat({ starts: START_KINDS, installer: 'debian' });
  const failed = outcomes.filter((o) => o.outcome !== 'passed');
  assert.equal(
    failed.map((o) => `${o.start}: ${o.check}: ${o.detail}`),
    [],
    tally(outcomes),
  );
  assert.is(outcomes.length, CHECKS.length * START_KINDS.length);
  assert.equal(scratchLeft('compat-openlambda'), []);
});

const COMPAT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../app/compat/openlambda.js');

function compatCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [COMPAT, ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

compat('the command line: one line per check, the tally, skips said with their reason', async () => {
  const r = await compatCli(['--starts', 'lean', '--installer', 'off']);
  assert.is(r.code, 0, r.stderr);
  const packaged = CHECKS.filter((c) => c.packages).length;
  assert.match(r.stdout, `compat:openlambda: ${CHECKS.length - packaged} passed, 0 failed, ${packaged} skipped`);
  assert.match(r.stdout, 'skip lean   a Flask app');
  assert.match(r.stdout, 'needs packages, and --installer is off');
});

for (const [args, mention] of [
  [['--starts', 'cold'], "unknown start kind 'cold'"],
  [['--installer', 'apt'], 'installer'],
  [['--frobnicate'], 'frobnicate'],
] as const) {
  compat(`bad input ${args.join(' ')}: exit 2, one line naming ${mention}`, async () => {
    const r = await compatCli([...args]);
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, mention);
  });
}

compat.run();
