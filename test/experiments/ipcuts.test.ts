// The cheap-namespace study: a run covers every set, and only IPC, UTS and PID are accepted.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readCsv } from '../../harness/csv.js';
import { cli, onlyRun, refusesBadInput, scratchDir } from '../helpers/helpers.js';

test('a run: one row per set, concurrency and repetition, and a figure', async () => {
  const out = scratchDir();
  try {
    const r = await cli([
      'run',
      'ipcuts',
      '--concurrency',
      '1,2',
      '--duration',
      '0.2',
      '--repeat',
      '1',
      '--warmup',
      '0',
      '--out',
      out,
    ]);
    assert.is(r.code, 0, r.stderr);
    const rows = readCsv(path.join(onlyRun(out, 'ipcuts'), 'data.csv'));
    assert.equal([...new Set(rows.map((x) => x.config))], ['none', 'ipc', 'uts', 'pid', 'ipc+pid+uts']);
    assert.is(rows.length, 5 * 2);
    assert.ok(rows.every((x) => Number(x.ops_per_sec) > 0));
    assert.ok(fs.existsSync(path.join(out, 'figures/ipcuts.svg')));
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

refusesBadInput('ipcuts', [
  [['--namespaces', 'ipc,net'], "'net'"],
  [['--namespaces', 'ipc+bogus'], '--namespaces'],
]);

test.run();
