// The SOCK engine through its API: what a handler inside a lean container can and cannot see
// and do, what its mounts and cgroup look like, and that destroy leaves nothing behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { baseProblem, buildBase } from '../../engine/sandbox/baseRootfs.js';
import { EngineSetupError } from '../../engine/errors.js';
import { mountsUnder, readMounts } from '../../engine/state/mountinfo.js';
import { Registry } from '../../engine/worker/registry.js';
import { parseRequirements } from '../../engine/worker/lambdaConfig.js';
import type { Sandbox } from '../../engine/sandbox/sandbox.js';
import { SockEngine } from '../../engine/sandbox/sockEngine.js';
import { BASE, engineScratch, removeScratch } from '../helpers/sockWorker.js';
import { handler, PROBE, sandboxBehaviour } from '../helpers/sandboxBehaviour.js';
import { findHierarchies } from '../../engine/cgroups/cgroupHierarchy.js';
import { StateDir } from '../../engine/state/stateDir.js';

const hostNs = (n: string) => fs.readlinkSync(`/proc/self/ns/${n}`);

sandboxBehaviour(
  'sock',
  (stateDir, limits) => SockEngine.start({ stateDir, base: BASE, capacity: 2, limits }),
  async (stateDir) => {
    const name = new StateDir(stateDir).cgroupName;
    return findHierarchies()
      .flatMap((h) => Object.values(h.roots))
      .map((root) => path.join(root, name))
      .filter((d) => fs.existsSync(d));
  },
);

const isolation = suite('engine: what is particular to a lean container');
let engine: SockEngine;
let sandbox: Sandbox;
let seen: any;
let code: string;

isolation.before(async () => {
  engine = await SockEngine.start({ stateDir: engineScratch(), base: BASE, capacity: 2 });
  code = handler(PROBE);
  try {
    sandbox = await engine.create({ code, packages: {} });
    seen = await sandbox.invoke({ host_pid: process.pid }, 10_000);
  } catch (e) {
    // uvu reports a failed hook only as skipped tests: say why.
    console.error('engine test setup failed:', e);
    throw e;
  }
});

isolation.after(async () => {
  await engine.shutdown();
  assert.equal(mountsUnder(engine.state.root), [], 'shutdown leaves no mount under the state directory');
});

isolation("new IPC, UTS, PID and network namespaces; the host's mount namespace (the paper's point)", () => {
  for (const n of ['ipc', 'uts', 'pid', 'net']) assert.is.not(seen.ns[n], hostNs(n), n);
  assert.is(seen.ns.mnt, hostNs('mnt'));
  assert.is.not(seen.hostname, os.hostname());
});

isolation(
  'its root is private read-only bind mounts plus a writable scratch, and its process is in a pooled cgroup with limits',
  () => {
    const dir = path.join(engine.state.sandboxes, sandbox.id);
    const mounts = readMounts().filter((m) => m.mountPoint.startsWith(`${dir}/`));
    const at = (p: string) => mounts.find((m) => m.mountPoint === path.join(dir, 'root', p));
    for (const p of ['', 'sock', 'handler', 'packages'])
      assert.ok(at(p)?.options.includes('ro'), `${p || '/'} is read-only`);
    for (const p of ['host', 'tmp']) assert.ok(at(p)?.options.includes('rw'), `${p} is writable`);
    assert.is(at('proc')?.fsType, 'proc');
    assert.is(at('host')?.fsType, 'tmpfs', "scratch is memory charged to the sandbox, not the host's disk");
    const raw = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(` ${dir}/`));
    assert.ok(raw.length >= 7);
    for (const line of raw) assert.not.match(line, /shared:|master:/, `private: ${line}`);
    const free = engine.pool.freeCount;
    assert.is(free, engine.pool.size - 1);
  },
);

isolation('destroy removes every mount of the sandbox and gives its cgroup back empty', async () => {
  const dir = path.join(engine.state.sandboxes, sandbox.id);
  await sandbox.destroy();
  assert.equal(mountsUnder(dir), []);
  assert.not.ok(fs.existsSync(dir));
  assert.is(engine.pool.freeCount, engine.pool.size);
  await sandbox.destroy();
});

isolation('code the sandbox user cannot read is refused with a clear error', async () => {
  const hidden = engineScratch();
  fs.writeFileSync(path.join(hidden, 'f.py'), 'def f(event):\n    return 1\n');
  try {
    await engine.create({ code: hidden, packages: {} });
    assert.unreachable('it was created');
  } catch (e) {
    assert.is((e as { kind?: string }).kind, 'bad-handler');
    assert.match((e as Error).message, "not readable by the sandbox's user");
  }
  assert.is(engine.pool.freeCount, engine.pool.size);
});

isolation('a second engine on the same state directory is refused while the first runs', async () => {
  try {
    await SockEngine.start({ stateDir: engine.state.root, base: BASE, capacity: 1 });
    assert.unreachable('it started');
  } catch (e) {
    assert.instance(e, EngineSetupError);
    assert.match((e as Error).message, 'in use by a running engine');
  }
});

isolation.run();

const base = suite('engine: base root file system');

base('the shared base is complete', () => {
  assert.is(baseProblem(BASE), undefined);
});

base('a half-built base (no marker) is reported, never used', async () => {
  const dir = engineScratch();
  fs.mkdirSync(path.join(dir, 'usr/bin'), { recursive: true });
  fs.writeFileSync(path.join(dir, '.sockbench-partial'), '');
  assert.match(baseProblem(dir)!, 'half-built');
  try {
    await SockEngine.start({ stateDir: engineScratch(), base: dir, capacity: 1 });
    assert.unreachable('it started');
  } catch (e) {
    assert.instance(e, EngineSetupError);
    assert.is((e as EngineSetupError).exitCode, 3);
    assert.match((e as Error).message, 'sock base build');
  }
});

base('building over a directory that is not a sockbench base is refused and the directory kept', async () => {
  const dir = engineScratch();
  fs.writeFileSync(path.join(dir, 'precious'), 'keep me');
  try {
    await buildBase(dir, () => {});
    assert.unreachable('it built');
  } catch (e) {
    assert.match((e as Error).message, 'not a sockbench base');
  }
  assert.is(fs.readFileSync(path.join(dir, 'precious'), 'utf8'), 'keep me');
});

base.run();

const registry = suite('engine: registry');

registry('requirements.txt keeps package lines and drops comments and blanks', () => {
  assert.equal(parseRequirements('# top\nnumpy==2.1.0  # pinned\n\n  Pillow\n#only a comment\n'), [
    'numpy==2.1.0',
    'Pillow',
  ]);
});

registry('a lambda is versioned by its files, and a new version gets a new snapshot', () => {
  const dir = engineScratch();
  const snapshots = engineScratch();
  const r = new Registry(dir, snapshots);
  assert.is(r.lookup('nope'), undefined);
  assert.is(r.lookup('../etc'), undefined);
  fs.mkdirSync(path.join(dir, 'a'));
  fs.writeFileSync(path.join(dir, 'a', 'f.py'), 'def f(e):\n    return 1\n');
  const v1 = r.lookup('a')!;
  assert.is(fs.readFileSync(path.join(v1.code, 'f.py'), 'utf8'), 'def f(e):\n    return 1\n');
  assert.is(r.lookup('a')!.version, v1.version);
  fs.writeFileSync(path.join(dir, 'a', 'f.py'), 'def f(e):\n    return 2\n');
  const v2 = r.lookup('a')!;
  assert.is.not(v2.version, v1.version);
  assert.is(
    fs.readFileSync(path.join(v1.code, 'f.py'), 'utf8'),
    'def f(e):\n    return 1\n',
    "a running version's code is not changed under it",
  );
  assert.equal(r.names(), ['a']);
});

registry.after(removeScratch);

registry.run();
