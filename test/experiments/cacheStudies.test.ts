// The three cache studies, each run small for real: the rows carry the columns the paper-repro
// checks rely on, every request started the way its configuration means (the study itself
// fails otherwise), a figure is written, and nothing of the run is left under /run/sockbench.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readCsv } from '../../harness/csv.js';
import { cli, onlyRun, refusesBadInput, scratchDir, scratchLeft } from '../helpers/helpers.js';

async function run(study: string, flags: string[]): Promise<Record<string, string | number>[]> {
  const out = scratchDir();
  try {
    const r = await cli(['run', study, '--repeat', '1', '--warmup', '0', '--duration', '1', ...flags, '--out', out]);
    assert.is(r.code, 0, r.stderr);
    assert.ok(fs.existsSync(path.join(out, `figures/${study}.svg`)));
    assert.equal(scratchLeft(study), [], 'its run directory is gone');
    return readCsv(path.join(onlyRun(out, study), 'data.csv'));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

test('exp:zygote: a row per configuration and package set, with config, packages and how the sandbox started', async () => {
  const rows = await run('zygote', ['--packages', 'none,six']);
  assert.equal(
    rows.map((r) => `${r.config} ${r.packages} ${r.start}`),
    [
      'lean none lean',
      'root-zygote none zygote:root',
      'zygote none zygote:root',
      'lean six lean',
      'root-zygote six zygote:root',
      'zygote six zygote:six',
    ],
  );
  for (const r of rows) assert.ok(Number(r.ops) > 0 && Number(r.sandbox_ms) > 0, JSON.stringify(r));
});

test('exp:resize: cold, cold+ and warm rows with platform_ms and compute_ms', async () => {
  const rows = await run('resize', ['--photo-size', '640x480', '--thumbnail', '64']);
  assert.equal(
    rows.map((r) => r.config),
    ['cold', 'cold+', 'warm'],
  );
  for (const r of rows)
    for (const col of ['platform_ms', 'compute_ms', 'sandbox_ms'])
      assert.ok(Number(r[col]) > 0, `${r.config} ${col} ${r[col]}`);
});

test('exp:scale: a row per budget and number of lambdas; no zygote without a budget, forks with one', async () => {
  const rows = await run('scale', ['--lambdas', '6', '--budgets', '0,64', '--pool', 'six', '--zygote-threshold', '1']);
  assert.equal(
    rows.map((r) => `${r.budget_mb}/${r.lambdas}`),
    ['0/6', '64/6'],
  );
  assert.equal([rows[0]!.forked, rows[0]!.zygotes], [0, 0]);
  assert.is(rows[1]!.lean, 0, 'with zygotes, every sandbox is a fork');
  assert.ok(Number(rows[1]!.zygotes) >= 1);
});

refusesBadInput('zygote', [
  [['--packages', 'six,../etc'], "'../etc'"],
  [['--configs', 'lean,warm'], "'warm'"],
]);

refusesBadInput('resize', [
  [['--photo-size', '3x3'], '--photo-size'],
  [['--thumbnail', '0'], '--thumbnail'],
]);

refusesBadInput('scale', [
  [['--lambdas', '0'], '--lambdas'],
  [['--budgets', 'lots'], '--budgets'],
  [['--zygote-threshold', '0'], '--zygote-threshold'],
]);

test.run();
