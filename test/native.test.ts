// The addon against the real kernel: namespaces really differ, steps really happen, errors
// carry errno and the call that failed.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChurnRun, NAMESPACES, constants, namespaceFlags, reap, spawn, type SyscallError } from '../native/index.js';

const nsOf = (pid: number | 'self', ns: string) => fs.readlinkSync(`/proc/${pid}/ns/${ns}`);

async function kill(pid: number) {
  process.kill(pid, 'SIGKILL');
  const r = await reap(pid, 5000);
  assert.not.ok(r.timedOut, `child ${pid} was not reaped`);
}

test('spawn: a child born with each namespace flag is in a new namespace of that kind only', async () => {
  for (const ns of NAMESPACES) {
    const pid = spawn({ cloneFlags: namespaceFlags([ns]), steps: [{ op: 'hold' }] });
    try {
      for (const other of NAMESPACES) {
        const child = nsOf(pid, other);
        const parent = nsOf('self', other);
        if (other === ns) assert.is.not(child, parent, `${ns}: child's ${other} namespace should differ`);
        else assert.is(child, parent, `${ns}: child's ${other} namespace should be the parent's`);
      }
    } finally {
      await kill(pid);
    }
  }
});

test('spawn: unshare and sethostname steps act on the child, not on us', async () => {
  const pid = spawn({ steps: [{ op: 'unshare', flags: constants.CLONE_NEWUTS | constants.CLONE_NEWNET }, { op: 'sethostname', name: 'sb-test' }, { op: 'hold' }] });
  try {
    assert.is.not(nsOf(pid, 'uts'), nsOf('self', 'uts'));
    assert.is.not(nsOf(pid, 'net'), nsOf('self', 'net'));
    assert.is(nsOf(pid, 'ipc'), nsOf('self', 'ipc'));
    assert.is.not(os.hostname(), 'sb-test');
    const theirs = execFileSync('nsenter', ['-t', String(pid), '-u', 'hostname'], { encoding: 'utf8' }).trim();
    assert.is(theirs, 'sb-test');
  } finally {
    await kill(pid);
  }
});

test('spawn: setns joins the namespace another process holds', async () => {
  const a = spawn({ cloneFlags: constants.CLONE_NEWUTS | constants.CLONE_NEWIPC, steps: [{ op: 'hold' }] });
  try {
    const b = spawn({ steps: [{ op: 'setns', path: `/proc/${a}/ns/uts`, flags: constants.CLONE_NEWUTS }, { op: 'hold' }] });
    try {
      assert.is(nsOf(b, 'uts'), nsOf(a, 'uts'));
      assert.is(nsOf(b, 'ipc'), nsOf('self', 'ipc'), 'only the uts namespace was joined');
    } finally {
      await kill(b);
    }
  } finally {
    await kill(a);
  }
});

test('spawn: a mount made in a new mount namespace is invisible to the host', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-mnt-'));
  try {
    const pid = spawn({
      steps: [
        { op: 'unshare', flags: constants.CLONE_NEWNS },
        { op: 'mount', target: '/', flags: constants.MS_REC | constants.MS_PRIVATE },
        { op: 'mount', source: 'sbtest', target: dir, fstype: 'tmpfs', flags: 0, data: 'size=1m' },
        { op: 'hold' },
      ],
    });
    try {
      const theirs = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
      const ours = fs.readFileSync('/proc/self/mountinfo', 'utf8');
      assert.ok(theirs.includes(` ${dir} `) && theirs.includes('sbtest'), 'the tmpfs is mounted in the child');
      assert.not.ok(ours.includes(` ${dir} `), 'the tmpfs is not mounted on the host');
    } finally {
      await kill(pid);
    }
  } finally {
    fs.rmdirSync(dir);
  }
});

test('spawn: chroot changes the child root; exec runs a program and reports its exit', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-root-'));
  try {
    const pid = spawn({ steps: [{ op: 'chroot', path: dir }, { op: 'chdir', path: '/' }, { op: 'hold' }] });
    try {
      assert.is(fs.readlinkSync(`/proc/${pid}/root`), dir);
    } finally {
      await kill(pid);
    }
    const child = spawn({ steps: [{ op: 'exec', argv: ['/bin/sh', '-c', 'exit 7'] }] });
    const r = await reap(child, 5000);
    assert.equal(r, { timedOut: false, exitCode: 7, signal: null });
  } finally {
    fs.rmdirSync(dir);
  }
});

test('spawn: a failing step names the call and errno, and leaves no child behind', () => {
  try {
    spawn({ steps: [{ op: 'chroot', path: '/nonexistent-sockbench' }, { op: 'hold' }] });
    assert.unreachable('chroot into a missing directory should throw');
  } catch (e) {
    const err = e as SyscallError;
    assert.is(err.code, 'ENOENT');
    assert.is(err.syscall, 'chroot');
    assert.is(err.errno, 2);
    assert.match(err.message, 'chroot(/nonexistent-sockbench) failed');
  }
  try {
    spawn({ steps: [{ op: 'exec', argv: ['/nonexistent-program'] }] });
    assert.unreachable('exec of a missing program should throw');
  } catch (e) {
    assert.is((e as SyscallError).syscall, 'execve');
  }
  assert.is(fs.readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8').trim(), '');
});

test('churn: an op-bounded run does exactly that many operations and times each', async () => {
  const r = await new ChurnRun({ flags: namespaceFlags(['ipc', 'net', 'uts']), concurrency: 4, ops: 60 }).start();
  assert.is(r.ops, 60);
  assert.is(r.latenciesUs.length, 60);
  assert.ok(r.latenciesUs.every((x) => x > 0 && Number.isFinite(x)));
  assert.ok(r.seconds > 0);
  assert.not.ok(r.stopped);
});

test('churn: the unshare method makes the same namespaces after a plain clone', async () => {
  const r = await new ChurnRun({ flags: namespaceFlags(['mnt', 'net', 'pid']), concurrency: 2, ops: 20, useUnshare: true }).start();
  assert.is(r.ops, 20);
});

test('churn: a timed run lasts its duration and Node stays responsive meanwhile', async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 20);
  const r = await new ChurnRun({ flags: 0, concurrency: 2, durationSeconds: 0.4 }).start();
  clearInterval(timer);
  assert.ok(r.seconds >= 0.4 && r.seconds < 1.5, `seconds ${r.seconds}`);
  assert.ok(r.ops > 10);
  assert.ok(ticks >= 10, `the event loop ran only ${ticks} timer ticks during the run`);
});

test('churn: stop() ends a long run promptly', async () => {
  const run = new ChurnRun({ flags: namespaceFlags(['uts']), concurrency: 8, durationSeconds: 60 });
  const t0 = Date.now();
  const pending = run.start();
  setTimeout(() => run.stop(), 200);
  const r = await pending;
  assert.ok(r.stopped);
  assert.ok(Date.now() - t0 < 5000);
});

test('churn: after children that were init of a PID namespace, our own children are still ours to reap', async () => {
  // A PID-namespace init sets SIGCHLD to SIG_IGN in its handler table as it exits; if churn
  // children shared ours, the kernel would auto-reap every later child of this process.
  await new ChurnRun({ flags: namespaceFlags(['pid']), concurrency: 2, ops: 20 }).start();
  const pid = spawn({ steps: [{ op: 'hold' }] });
  process.kill(pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 50));
  const r = await reap(pid, 5000);
  assert.is(r.signal, 9);
  await new ChurnRun({ flags: namespaceFlags(['net']), concurrency: 2, ops: 20 }).start();
});

test('churn: bad options are refused before any thread starts', () => {
  assert.throws(() => new ChurnRun({ flags: 0, concurrency: 0, ops: 1 }), /concurrency/);
  assert.throws(() => new ChurnRun({ flags: 0, concurrency: 1 }), /durationSeconds|ops/);
  assert.throws(() => new ChurnRun({ flags: 1 << 3, concurrency: 1, ops: 1 }), /flags/);
});

test('churn: a kernel refusal comes back with errno and the failing call', () => {
  // A real EPERM: the same churn as an unprivileged user.
  const script = `
    import('${path.resolve(path.dirname(new URL(import.meta.url).pathname), '../native/index.js')}').then(async (n) => {
      try { await new n.ChurnRun({ flags: n.namespaceFlags(['net']), concurrency: 2, ops: 10 }).start(); console.log('no error'); }
      catch (e) { console.log(JSON.stringify({ code: e.code, errno: e.errno, syscall: e.syscall, message: e.message })); }
    });`;
  const out = execFileSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
  const e = JSON.parse(out) as { code: string; errno: number; syscall: string; message: string };
  assert.is(e.code, 'EPERM');
  assert.is(e.errno, 1);
  assert.is(e.syscall, 'clone');
  assert.match(e.message, 'clone(CLONE_NEWNET) failed');
});

test.run();
