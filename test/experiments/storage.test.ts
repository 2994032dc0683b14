// The storage study: each way of provisioning really builds the root it claims (read-only
// where it should be, writable scratch, an overlay), teardown really removes it, the chroot
// configuration never moves Node's own root, a FUSE root's daemon ends with it, a run leaves
// nothing, and bad input is refused.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readCsv } from '../../harness/csv.js';
import { readMounts } from '../../engine/state/mountinfo.js';
import { ownedTmpfs, removeOwnedDir, RUN_ROOT } from '../../harness/ownedDirs.js';
import { makeStorageTree, storageScript } from '../../experiments/storage/index.js';
import { ScriptRun } from '../../native/index.js';
import { cli, onlyRun, refusesBadInput, scratchDir, scratchLeft } from '../helpers/helpers.js';

/** Runs one phase of a configuration's script once, on thread 0, keeping what it built. */
async function phase(config: string, dir: string, which: 'setup' | 'teardown', withPrepare = false) {
  const s = storageScript(config, dir, 0);
  await new ScriptRun({
    concurrency: 1,
    ops: 1,
    prepare: withPrepare ? s.prepare : [],
    phases: s.phases.filter((p) => p.name === which),
  }).start();
}

const mountAt = (p: string) => readMounts().filter((m) => m.mountPoint === p);
/** Live (not zombie) processes whose command line names the mount point. */
const daemonsFor = (mountPoint: string) =>
  fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((pid) => {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return (
          stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z' &&
          fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(mountPoint)
        );
      } catch {
        return false;
      }
    });
const writable = (p: string) => {
  try {
    fs.writeFileSync(p, 'x');
    fs.rmSync(p);
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === 'EROFS') return false;
    throw e;
  }
};

function inTree(body: (dir: string) => Promise<void>) {
  const dir = ownedTmpfs('storage-test');
  makeStorageTree(dir);
  return body(dir).finally(() => removeOwnedDir(dir));
}

test('bind: the root is a read-only mount of the base; teardown unmounts it', () =>
  inTree(async (dir) => {
    const root = path.join(dir, 'roots/0-0');
    await phase('bind', dir, 'setup', true);
    assert.is(mountAt(root).length, 1);
    assert.ok(fs.existsSync(path.join(root, 'etc/os-release')));
    assert.not.ok(writable(path.join(root, 'tmp/probe')), 'the base is read-only in the root');
    assert.ok(writable(path.join(dir, 'base/tmp/probe')), 'and still writable where it lives');
    await phase('bind', dir, 'teardown');
    assert.equal(mountAt(root), []);
  }));

test('sock-root: base, packages and code read-only, scratch writable; teardown removes all four', () =>
  inTree(async (dir) => {
    const root = path.join(dir, 'roots/0-0');
    await phase('sock-root', dir, 'setup', true);
    for (const m of ['', '/packages', '/handler', '/host'])
      assert.is(mountAt(root + m).length, 1, `mounted at root${m}`);
    assert.ok(fs.existsSync(path.join(root, 'handler/f.py')));
    assert.ok(fs.existsSync(path.join(root, 'packages/requests/__init__.py')));
    assert.not.ok(writable(path.join(root, 'handler/probe')));
    assert.not.ok(writable(path.join(root, 'packages/probe')));
    assert.ok(writable(path.join(root, 'host/probe')), 'scratch is writable');
    await phase('sock-root', dir, 'teardown');
    for (const m of ['', '/packages', '/handler', '/host']) assert.equal(mountAt(root + m), []);
  }));

test('overlay: writes land in the upper directory, not the base; teardown unmounts', () =>
  inTree(async (dir) => {
    const root = path.join(dir, 'roots/0-0');
    await phase('overlay', dir, 'setup', true);
    assert.is(mountAt(root)[0]?.fsType, 'overlay');
    fs.writeFileSync(path.join(root, 'etc/new-file'), 'x');
    assert.ok(fs.existsSync(path.join(dir, 'upper/0-0/etc/new-file')));
    assert.not.ok(fs.existsSync(path.join(dir, 'base/etc/new-file')));
    await phase('overlay', dir, 'teardown');
    assert.equal(mountAt(root), []);
  }));

test('fuse-overlay: a FUSE daemon serves the root, writes land in upper; teardown ends mount and daemon', () =>
  inTree(async (dir) => {
    const root = path.join(dir, 'roots/0-0');
    await phase('fuse-overlay', dir, 'setup', true);
    assert.is(mountAt(root)[0]?.fsType, 'fuse.fuse-overlayfs');
    assert.ok(daemonsFor(root).length > 0, 'a fuse-overlayfs daemon serves it');
    fs.writeFileSync(path.join(root, 'etc/new-file'), 'x');
    assert.ok(fs.existsSync(path.join(dir, 'upper/0-0/etc/new-file')));
    assert.not.ok(fs.existsSync(path.join(dir, 'base/etc/new-file')));
    await phase('fuse-overlay', dir, 'teardown');
    assert.equal(mountAt(root), []);
    for (let i = 0; i < 50 && daemonsFor(root).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(daemonsFor(root), [], 'the daemon exits with its mount');
  }));

test("chroot: threads enter and leave the base; Node's own root never moves", () =>
  inTree(async (dir) => {
    const before = fs.readlinkSync('/proc/self/root');
    const s = storageScript('chroot', dir, 0);
    const r = await new ScriptRun({ concurrency: 4, ops: 400, phases: s.phases }).start();
    assert.is(r.ops, 400);
    assert.is(r.phases.setup!.length, 400);
    assert.is(fs.readlinkSync('/proc/self/root'), before);
    assert.ok(fs.existsSync('/proc/self/mountinfo'), 'paths still resolve from the real root');
  }));

test('a run: config and phase columns; its tmpfs, mounts and directory are all gone after', async () => {
  const out = scratchDir();
  try {
    const r = await cli([
      'run',
      'storage',
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
    const rows = readCsv(path.join(onlyRun(out, 'storage'), 'data.csv'));
    // scripts/setup.sh installs fuse-overlayfs, so the default set is all five.
    assert.is(rows.length, 5 * 2 * 2);
    for (const config of ['bind', 'sock-root', 'overlay', 'fuse-overlay', 'chroot']) {
      for (const phaseName of ['setup', 'teardown'])
        assert.ok(
          rows.some((x) => x.config === config && x.phase === phaseName),
          `${config} ${phaseName}`,
        );
    }
    assert.ok(rows.every((x) => Number(x.ops) > 0 && Number(x.ops_per_sec) > 0));
    assert.equal(
      readMounts().filter((m) => m.mountPoint.startsWith(`${RUN_ROOT}/storage-`)),
      [],
    );
    assert.equal(scratchLeft('storage'), []);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

refusesBadInput('storage', [[['--configs', 'bind,aufs'], '--configs']]);

test.run();
