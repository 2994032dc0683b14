// SOCK against Docker: a short real run through both kinds of backend writes the paper's
// columns and figure, and leaves no container, mount or scratch directory behind.
import Docker from 'dockerode';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { STATE_LABEL } from '../../engine/sandbox/dockerEngine.js';
import { readCsv } from '../../harness/csv.js';
import { RUN_ROOT } from '../../harness/ownedDirs.js';
import { cli, onlyRun, refusesBadInput, scratchDir, scratchLeft } from '../helpers/helpers.js';

test('a run: rows for sock and docker-netnone with requests/s and latencies, a figure, nothing left', async () => {
  const out = scratchDir();
  try {
    const r = await cli([
      'run',
      'sock-vs-docker',
      '--backends',
      'sock,docker-netnone',
      '--concurrency',
      '1,2',
      '--duration',
      '1',
      '--repeat',
      '1',
      '--warmup',
      '0',
      '--out',
      out,
    ]);
    assert.is(r.code, 0, r.stderr);
    const rows = readCsv(path.join(onlyRun(out, 'sock-vs-docker'), 'data.csv'));
    assert.equal(
      rows.map((x) => `${x.config} ${x.concurrency}`),
      ['sock 1', 'sock 2', 'docker-netnone 1', 'docker-netnone 2'],
      r.stderr,
    );
    for (const row of rows) {
      assert.ok(
        Number(row.ops_per_sec) > 0 && Number(row.mean_us) > 0 && Number(row.p99_us) >= Number(row.p50_us),
        JSON.stringify(row),
      );
    }
    assert.ok(fs.existsSync(path.join(out, 'figures/sock-vs-docker.svg')));
    const left = await new Docker().listContainers({ all: true, filters: { label: [STATE_LABEL] } });
    assert.equal(
      left.filter((c) => c.Labels[STATE_LABEL]!.startsWith(RUN_ROOT)).map((c) => `${c.Labels[STATE_LABEL]} ${c.State}`),
      [],
      'no container left',
    );
    assert.equal(scratchLeft('sock-vs-docker'), [], 'no scratch directory left');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

refusesBadInput('sock-vs-docker', [
  [['--backends', 'sock,podman'], "'podman'"],
  [['--backends', ''], '--backends'],
]);

test.run();
