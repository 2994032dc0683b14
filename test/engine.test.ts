// The SOCK engine through its API: what a handler inside a lean container can and cannot see
// and do, what its mounts and cgroup look like, and that destroy leaves nothing behind.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { baseProblem, buildBase } from '../engine/baseRootfs.js';
import { EngineSetupError } from '../engine/errors.js';
import { mountsUnder, readMounts } from '../engine/mountinfo.js';
import { parseRequirements, Registry } from '../engine/registry.js';
import type { Sandbox } from '../engine/sandbox.js';
import { SockEngine } from '../engine/sockEngine.js';
import { BASE, engineScratch, removeScratch } from './sockWorker.js';

const PROBE = `
import os, socket, signal
def attempt(fn):
    try:
        fn()
        return "allowed"
    except OSError as e:
        return e.strerror
def write(path):
    with open(path, "w") as f:
        f.write("x")
def f(event):
    status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
    return {
        "pid": os.getpid(),
        "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "caps": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
        "no_new_privs": status["NoNewPrivs"].strip(),
        "hostname": socket.gethostname(),
        "ns": {n: os.readlink("/proc/self/ns/" + n) for n in ("ipc", "uts", "pid", "net", "mnt")},
        "chroot": attempt(lambda: os.chroot("/tmp")),
        "signal_host": attempt(lambda: os.kill(event["host_pid"], 0)),
        "write": {p: attempt(lambda p=p: write(p)) for p in ("/etc/x", "/usr/x", "/handler/x", "/sock/x", "/x", "/host/x", "/tmp/x")},
        "mknod": attempt(lambda: os.mknod("/tmp/dev", 0o600 | 0o020000, os.makedev(1, 3))),
    }
`;

const code = engineScratch();
fs.chmodSync(code, 0o755);
fs.writeFileSync(path.join(code, 'f.py'), PROBE);
const hostNs = (n: string) => fs.readlinkSync(`/proc/self/ns/${n}`);

const isolation = suite('engine: a lean container');
let engine: SockEngine;
let sandbox: Sandbox;
let seen: any;

isolation.before(async () => {
  engine = await SockEngine.start({ stateDir: engineScratch(), base: BASE, capacity: 2 });
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

isolation('the handler is PID 1 of its own PID namespace and sees only its own processes', () => {
  assert.is(seen.pid, 1);
  assert.equal(seen.procs, [1]);
  assert.is(seen.signal_host, 'No such process', 'a host process cannot be signalled: it is not there');
});

isolation('new IPC, UTS and PID namespaces; the host\'s network and mount namespaces', () => {
  for (const n of ['ipc', 'uts', 'pid']) assert.is.not(seen.ns[n], hostNs(n), n);
  for (const n of ['net', 'mnt']) assert.is(seen.ns[n], hostNs(n), n);
  assert.is.not(seen.hostname, os.hostname());
});

isolation('it runs unprivileged: no capabilities in any set, no_new_privs, nobody:nogroup', () => {
  assert.equal(seen.caps, { CapInh: '0000000000000000', CapPrm: '0000000000000000', CapEff: '0000000000000000', CapBnd: '0000000000000000', CapAmb: '0000000000000000' });
  assert.is(seen.no_new_privs, '1');
  assert.equal([seen.uid, seen.gid, seen.groups], [65534, 65534, []]);
  assert.is(seen.chroot, 'Operation not permitted', 'chroot needs CAP_SYS_CHROOT, so the root cannot be escaped');
  assert.is(seen.mknod, 'Operation not permitted');
});

isolation('it can write only its scratch directory and /tmp', () => {
  assert.equal(seen.write, {
    '/etc/x': 'Read-only file system', '/usr/x': 'Read-only file system', '/x': 'Read-only file system',
    '/handler/x': 'Read-only file system', '/sock/x': 'Read-only file system',
    '/host/x': 'allowed', '/tmp/x': 'allowed',
  });
});

isolation('its root is private read-only bind mounts plus a writable scratch, and its process is in a pooled cgroup with limits', () => {
  const dir = path.join(engine.state.sandboxes, sandbox.id);
  const mounts = readMounts().filter((m) => m.mountPoint.startsWith(`${dir}/`));
  const at = (p: string) => mounts.find((m) => m.mountPoint === path.join(dir, 'root', p));
  for (const p of ['', 'sock', 'handler', 'packages']) assert.ok(at(p)?.options.includes('ro'), `${p || '/'} is read-only`);
  for (const p of ['host', 'tmp']) assert.ok(at(p)?.options.includes('rw'), `${p} is writable`);
  assert.is(at('proc')?.fsType, 'proc');
  assert.is(at('host')?.fsType, 'tmpfs', 'scratch is memory charged to the sandbox, not the host\'s disk');
  const raw = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(` ${dir}/`));
  assert.ok(raw.length >= 7);
  for (const line of raw) assert.not.match(line, /shared:|master:/, `private: ${line}`);
  const free = engine.pool.freeCount;
  assert.is(free, engine.pool.size - 1);
});

isolation('pause freezes the sandbox (an invocation waits) and unpause lets it answer', async () => {
  await sandbox.pause();
  let answered = false;
  const pending = sandbox.invoke({ host_pid: process.pid }, 10_000).then((r) => {
    answered = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 300));
  assert.is(answered, false, 'a frozen handler does not run');
  await sandbox.unpause();
  assert.is(((await pending) as { pid: number }).pid, 1);
});

isolation('destroy removes every mount of the sandbox and gives its cgroup back empty', async () => {
  const dir = path.join(engine.state.sandboxes, sandbox.id);
  await sandbox.destroy();
  assert.equal(mountsUnder(dir), []);
  assert.not.ok(fs.existsSync(dir));
  assert.is(engine.pool.freeCount, engine.pool.size);
  await sandbox.destroy();
});

isolation('a paused sandbox can still be destroyed', async () => {
  const s = await engine.create({ code, packages: {} });
  await s.pause();
  await s.destroy();
  assert.is(engine.pool.freeCount, engine.pool.size);
  assert.is(engine.status().alive, 0);
});

isolation('code the sandbox user cannot read is refused with a clear error', async () => {
  const hidden = engineScratch();
  fs.writeFileSync(path.join(hidden, 'f.py'), 'def f(event):\n    return 1\n');
  try {
    await engine.create({ code: hidden, packages: {} });
    assert.unreachable('it was created');
  } catch (e) {
    assert.is((e as { kind?: string }).kind, 'bad-handler');
    assert.match((e as Error).message, 'not readable by the sandbox\'s user');
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
  assert.equal(parseRequirements('# top\nnumpy==2.1.0  # pinned\n\n  Pillow\n#only a comment\n'), ['numpy==2.1.0', 'Pillow']);
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
  assert.is(fs.readFileSync(path.join(v1.code, 'f.py'), 'utf8'), 'def f(e):\n    return 1\n', 'a running version\'s code is not changed under it');
  assert.equal(r.names(), ['a']);
});

registry.after(removeScratch);

registry.run();
