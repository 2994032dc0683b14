// The peers study: a short real run starts a no-op Python process in SOCK and in the other
// sandboxes a user would pick, writes a row per peer that can run here and names the reason for
// each that cannot (crun on this cgroup v1/v2 hybrid), keeps what the isolation probe saw inside
// each, fills its paper-repro section from the run, and leaves no container, mount or scratch
// directory behind.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { peers } from '../../experiments/peers/index.js';
import { readCsv } from '../../harness/csv.js';
import { sectionsOf } from '../../harness/paperRepro/claims.js';
import { rewriteSections } from '../../harness/paperRepro/regenerate.js';
import { loadRunData } from '../../harness/paperRepro/runData.js';
import { readMeta } from '../../harness/runDirs.js';
import { cli, onlyRun, refusesBadInput, scratchDir, scratchLeft } from '../helpers/helpers.js';

const ASKED = ['bare', 'sock-lean', 'sock-warm', 'bwrap', 'runc', 'crun'];

test('a run: a row per peer that runs here, a reason for each that does not, the probe’s facts, nothing left', async () => {
  const out = scratchDir();
  try {
    const r = await cli([
      'run',
      'peers',
      '--peers',
      ASKED.join(','),
      '--concurrency',
      '1,2',
      '--duration',
      '0.5',
      '--repeat',
      '1',
      '--warmup',
      '0',
      '--out',
      out,
    ]);
    assert.is(r.code, 0, r.stderr);
    const dir = onlyRun(out, 'peers');
    const rows = readCsv(path.join(dir, 'data.csv'));
    const notes = readMeta(dir)!.notes as {
      skipped: Record<string, string>;
      isolation: Record<string, Record<string, string>>;
    };
    for (const peer of ASKED) {
      const measured = rows.filter((x) => x.config === peer).map((x) => Number(x.concurrency));
      if (notes.skipped[peer]) {
        assert.equal(measured, [], `${peer} is skipped (${notes.skipped[peer]}) yet measured`);
        assert.ok(notes.skipped[peer]!.length > 10, `${peer}: a reason`);
      } else {
        assert.equal(measured, [1, 2], `${peer}: one row per concurrency`);
        assert.ok(notes.isolation[peer], `${peer}: what its probe saw`);
      }
    }
    // These must run wherever setup.sh ran; crun may be either, and says which.
    for (const peer of ['bare', 'sock-lean', 'sock-warm']) assert.not.ok(notes.skipped[peer], peer);
    for (const row of rows) assert.ok(Number(row.ops_per_sec) > 0 && Number(row.p50_us) > 0, JSON.stringify(row));
    // A warm request over a kept instance is one: the as_asked share says so.
    assert.ok(Number(rows.find((x) => x.config === 'sock-warm')!.as_asked) > 0.5);
    // What the probe saw inside SOCK's sandbox is what the isolation issue built.
    const sock = notes.isolation['sock-lean']!;
    assert.is(sock.capabilities, 'none');
    assert.match(sock.seccomp, /^filter/);
    assert.match(sock.namespaces, /pid/);
    assert.is(sock.network, 'lo');
    assert.ok(fs.existsSync(path.join(out, 'figures/peers.svg')));

    // paper-repro.md's section, generated from this run: every measured peer, every probed one.
    const section = rewriteSections(
      '# page\n',
      sectionsOf([peers]),
      new Map([['peers', { run: loadRunData(out, dir)! }]]),
    );
    assert.match(section, /## SOCK against today’s sandboxes/);
    for (const peer of new Set(rows.map((x) => String(x.config))))
      assert.match(section, new RegExp(`\\| ${peer} +\\|`));
    for (const peer of Object.keys(notes.skipped)) assert.match(section, new RegExp(`\\*\\*${peer}\\*\\*`));
    // Regenerating again replaces the section between its markers, never adds a second.
    const again = rewriteSections(section, sectionsOf([peers]), new Map([['peers', { skipped: 'not run today' }]]));
    assert.is(again.split('## SOCK against today’s sandboxes').length, 2);
    assert.match(again, /peers not run: not run today/);

    assert.equal(scratchLeft('peers'), [], 'no scratch directory left');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

refusesBadInput('peers', [
  [['--peers', 'bare,podman'], "'podman'"],
  [['--peers', ''], '--peers'],
]);

test.run();
