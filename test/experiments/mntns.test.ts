// The mount-namespace study: its host mounts really exist during a run and are all gone after
// it, a crashed run's leftovers are found and removed (a live run's are not), the chroot
// operation really changes the child's root, and bad input is refused.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readCsv } from '../../harness/csv.js';
import { readMounts } from '../../engine/state/mountinfo.js';
import { ownedDir, ownedTmpfs, reclaimLeftovers, removeOwnedDir, RUN_ROOT } from '../../harness/ownedDirs.js';
import { processStartTime } from '../../engine/state/processIdentity.js';
import { HostMounts } from '../../experiments/mntns/hostMounts.js';
import { ChurnRun, mount } from '../../native/index.js';
import { cli, onlyRun, refusesBadInput, scratchDir, scratchLeft } from '../helpers/helpers.js';

const mountsUnder = (dir: string) =>
  readMounts().filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(`${dir}/`));

test('host mounts: resize adds and removes real bind mounts on a private tmpfs; removal leaves nothing', () => {
  const dir = ownedTmpfs('mntns');
  try {
    const mounts = new HostMounts(dir);
    mounts.resize(25);
    assert.is(mountsUnder(dir).length, 1 + 25, 'the tmpfs and 25 binds');
    assert.ok(mountsUnder(dir).every((m) => m.fsType === 'tmpfs'));
    const line = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === dir)!;
    assert.not.match(line, /shared:/, 'the tmpfs does not propagate');
    mounts.resize(10);
    assert.is(mountsUnder(dir).length, 1 + 10);
  } finally {
    removeOwnedDir(dir);
  }
  assert.equal(mountsUnder(dir), []);
  assert.not.ok(fs.existsSync(dir));
});

test("leftovers: a dead owner's directory is unmounted and removed, a live owner's is left", () => {
  // A real dead pid: a child that has exited and been reaped.
  const deadPid = Number(execFileSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).trim());
  const dead = path.join(RUN_ROOT, `mntns-${deadPid}-1`);
  fs.mkdirSync(path.join(dead, 'inner'), { recursive: true });
  mount('sockbench', dead, 'tmpfs', 0, 'size=1m');
  fs.mkdirSync(path.join(dead, 'inner'));
  mount('sockbench', path.join(dead, 'inner'), 'tmpfs', 0, 'size=1m');
  const live = ownedDir('mntns');
  try {
    const removed = reclaimLeftovers('mntns');
    assert.equal(removed, [dead]);
    assert.not.ok(fs.existsSync(dead));
    assert.equal(mountsUnder(dead), []);
    assert.ok(fs.existsSync(live), 'our own directory stays');
    assert.ok(live.endsWith(`-${process.pid}-${processStartTime(process.pid)}`));
  } finally {
    removeOwnedDir(live);
  }
});

test('chroot churn: each child really enters the directory; a missing one names chroot', async () => {
  const dir = ownedDir('mntns');
  try {
    const r = await new ChurnRun({ flags: 0, concurrency: 2, ops: 50, chroot: dir }).start();
    assert.is(r.ops, 50);
    let error: { syscall?: string; code?: string; message?: string } = {};
    try {
      await new ChurnRun({ flags: 0, concurrency: 1, ops: 1, chroot: path.join(dir, 'missing') }).start();
    } catch (e) {
      error = e as typeof error;
    }
    assert.is(error.syscall, 'chroot');
    assert.is(error.code, 'ENOENT');
    assert.match(error.message ?? '', 'missing');
  } finally {
    removeOwnedDir(dir);
  }
});

test('a run: host_mounts and config columns, both operations at each mount count, nothing left behind', async () => {
  const out = scratchDir();
  try {
    const r = await cli([
      'run',
      'mntns',
      '--host-mounts',
      '0,200',
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
    const dir = onlyRun(out, 'mntns');
    const header = fs.readFileSync(path.join(dir, 'data.csv'), 'utf8').split('\n')[0]!.split(',');
    assert.equal(header.slice(0, 4), ['experiment', 'config', 'concurrency', 'host_mounts']);
    const rows = readCsv(path.join(dir, 'data.csv'));
    assert.is(rows.length, 2 * 2 * 2);
    for (const n of [0, 200])
      for (const config of ['mntns', 'chroot'])
        assert.ok(
          rows.some((x) => x.config === config && Number(x.host_mounts) === n),
          `${config} at ${n}`,
        );
    assert.ok(rows.every((x) => Number(x.ops) > 0));
    const summary = readCsv(path.join(dir, 'summary.csv'));
    assert.is(summary.length, 8, 'host_mounts is part of what names a point');
    assert.ok(fs.existsSync(path.join(out, 'figures/mntns.svg')));
    assert.equal(scratchLeft('mntns'), []);
    assert.equal(mountsUnder(RUN_ROOT), []);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

refusesBadInput('mntns', [
  [['--host-mounts', 'abc'], '--host-mounts'],
  [['--host-mounts', '-5'], '--host-mounts'],
  [['--host-mounts', '1000000'], '--host-mounts'],
  [['--configs', 'mntns,bogus'], '--configs'],
]);

test.run();
