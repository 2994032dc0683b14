// The addon against the real kernel: namespaces really differ, steps really happen, errors
// carry errno and the call that failed.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { findHierarchies } from '../../engine/cgroups/cgroupHierarchy.js';
import { skipWith } from '../helpers/helpers.js';
import {
  ChurnRun,
  NAMESPACES,
  constants,
  namespaceFlags,
  spawn,
  watchExit,
  type SyscallError,
} from '../../native/index.js';

const nsOf = (pid: number | 'self', ns: string) => fs.readlinkSync(`/proc/${pid}/ns/${ns}`);
/** The compiled front door, for scripts run in a separate node process. */
const INDEX_JS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../native/index.js');
/** No process has this pid: pids are below pid_max. */
const NO_SUCH_PID = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));

/** Runs an ES module script in a fresh node; a hang is a failure, not a stuck test run. */
function runNode(script: string, opts: { timeoutMs?: number; viaShell?: string } = {}) {
  const args = ['--input-type=module', '-e', script];
  // uvu sets FORCE_COLOR, which would colour console.log(number).
  const options = {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 10000,
    env: { ...process.env, FORCE_COLOR: '0' },
  } as const;
  const r = opts.viaShell
    ? spawnSync('/bin/sh', ['-c', `${opts.viaShell}; exec "$0" "$@"`, process.execPath, ...args], options)
    : spawnSync(process.execPath, args, options);
  assert.is(r.error, undefined, `node did not finish by itself: ${r.error}`);
  return r;
}

/** Fails instead of hanging when p does not settle in time. */
async function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A cgroup v1 pids or memory hierarchy if one is mounted, else the cgroup2 mount. */
function cgroupHierarchy(): string {
  let v2: string | undefined;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [mount, fsInfo] = line.split(' - ');
    if (!fsInfo) continue;
    const mountPoint = mount.split(' ')[4];
    const [fsType, , superOptions = ''] = fsInfo.split(' ');
    if (fsType === 'cgroup' && superOptions.split(',').some((o) => o === 'pids' || o === 'memory')) return mountPoint;
    if (fsType === 'cgroup2') v2 ??= mountPoint;
  }
  if (!v2) throw new Error('no cgroup hierarchy is mounted');
  return v2;
}

async function kill(pid: number) {
  process.kill(pid, 'SIGKILL');
  await within(5000, watchExit(pid), `reaping child ${pid}`);
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
  const pid = spawn({
    steps: [
      { op: 'unshare', flags: constants.CLONE_NEWUTS | constants.CLONE_NEWNET },
      { op: 'sethostname', name: 'sb-test' },
      { op: 'hold' },
    ],
  });
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
    const b = spawn({
      steps: [{ op: 'setns', path: `/proc/${a}/ns/uts`, flags: constants.CLONE_NEWUTS }, { op: 'hold' }],
    });
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
    assert.equal(await within(5000, watchExit(child), 'reaping the child'), { exitCode: 7, signal: null });
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

test('spawn: a write step moves the child into a cgroup from inside; watchExit sees it killed', async () => {
  const cg = fs.mkdtempSync(path.join(cgroupHierarchy(), 'sb-test-'));
  try {
    const pid = spawn({ steps: [{ op: 'write', path: `${cg}/cgroup.procs`, value: '0' }, { op: 'hold' }] });
    const exited = watchExit(pid);
    try {
      const members = fs.readFileSync(`${cg}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
      assert.equal(members, [pid]);
    } finally {
      process.kill(pid, 'SIGKILL');
    }
    assert.equal(await within(5000, exited, 'watchExit'), { exitCode: null, signal: 9 });
    assert.is(fs.readFileSync(`${cg}/cgroup.procs`, 'utf8').trim(), '', 'the reaped child left the cgroup');
  } finally {
    fs.rmdirSync(cg);
  }
});

// On cgroup v2 a child can be born in its cgroup. It then needs no write step, and runs its
// first instruction there: a shell that prints /proc/self/cgroup as its first act shows it.
const v2Root = findHierarchies().find((h) => h.version === 2)?.roots.unified;
skipWith(v2Root ? undefined : 'no cgroup v2 hierarchy on this host')(
  'spawn: intoCgroup (clone3 CLONE_INTO_CGROUP) starts the child in the cgroup, sharing memory until exec and, with a reaper, forked',
  async () => {
    const cg = fs.mkdtempSync(path.join(v2Root!, 'sb-test-'));
    const fd = fs.openSync(cg, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-test-'));
    try {
      const expected = `0::/${path.relative(v2Root!, cg)}`;
      for (const [label, first] of [
        ['exec', []],
        ['reaper', [{ op: 'reaper' as const }]],
      ] as const) {
        const log = path.join(out, `${label}.log`);
        const pid = spawn({
          intoCgroup: fd,
          steps: [...first, { op: 'redirect', path: log }, { op: 'exec', argv: ['/bin/cat', '/proc/self/cgroup'] }],
        });
        assert.equal(await within(5000, watchExit(pid), 'watchExit'), { exitCode: 0, signal: null }, label);
        assert.equal(
          fs
            .readFileSync(log, 'utf8')
            .split('\n')
            .filter((l) => l.startsWith('0::')),
          [expected],
          label,
        );
      }
      assert.is(fs.readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').trim(), '', 'nothing left in it');
      // A descriptor that is not a cgroup v2 directory is refused by clone3, named.
      const notCgroup = fs.openSync(out, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      try {
        spawn({ intoCgroup: notCgroup, steps: [{ op: 'exec', argv: ['/bin/true'] }] });
        assert.unreachable('clone3 into a plain directory should fail');
      } catch (e) {
        assert.is((e as SyscallError).syscall, 'clone3');
        assert.match((e as Error).message, 'CLONE_INTO_CGROUP');
      } finally {
        fs.closeSync(notCgroup);
      }
    } finally {
      fs.closeSync(fd);
      fs.rmSync(out, { recursive: true, force: true });
      fs.rmdirSync(cg);
    }
  },
);

test('spawn: a failing write step names open or write, with the path', () => {
  try {
    spawn({ steps: [{ op: 'write', path: '/nonexistent-sockbench/cgroup.procs', value: '0' }, { op: 'hold' }] });
    assert.unreachable('write to a missing file should throw');
  } catch (e) {
    const err = e as SyscallError;
    assert.is(err.syscall, 'open');
    assert.is(err.code, 'ENOENT');
    assert.match(err.message, 'open(/nonexistent-sockbench/cgroup.procs) failed');
  }
  const procs = path.join(cgroupHierarchy(), 'cgroup.procs');
  try {
    spawn({ steps: [{ op: 'write', path: procs, value: 'not-a-pid' }, { op: 'hold' }] });
    assert.unreachable('writing a non-pid to cgroup.procs should throw');
  } catch (e) {
    const err = e as SyscallError;
    assert.is(err.syscall, 'write');
    assert.is(err.code, 'EINVAL');
    assert.match(err.message, `write(${procs}) failed`);
  }
  assert.is(fs.readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8').trim(), '');
});

test('spawn: redirect appends stdout and stderr to a new 0600 file and gives stdin /dev/null', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-log-'));
  const log = path.join(dir, 'init.log');
  try {
    // `cat` would wait on our stdin if the child still had it.
    const argv = ['/bin/sh', '-c', 'echo hi; echo err >&2; cat'];
    const first = spawn({
      steps: [
        { op: 'redirect', path: log },
        { op: 'exec', argv },
      ],
    });
    assert.equal(await within(5000, watchExit(first), 'first child'), { exitCode: 0, signal: null });
    assert.is(fs.readFileSync(log, 'utf8'), 'hi\nerr\n');
    assert.is(fs.statSync(log).mode & 0o777, 0o600);
    const second = spawn({
      steps: [
        { op: 'redirect', path: log },
        { op: 'exec', argv: ['/bin/sh', '-c', 'echo again >&2'] },
      ],
    });
    assert.equal(await within(5000, watchExit(second), 'second child'), { exitCode: 0, signal: null });
    assert.is(fs.readFileSync(log, 'utf8'), 'hi\nerr\nagain\n', 'opened for append');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('spawn: dropPrivileges leaves no capabilities, no new privileges and only the ids given', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-drop-'));
  fs.chmodSync(dir, 0o777);
  const out = path.join(dir, 'status');
  try {
    const grep = `grep -E "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Uid|Gid|Groups)" /proc/self/status > ${out}`;
    const pid = spawn({
      steps: [
        { op: 'dropPrivileges', uid: 65534, gid: 65534 },
        { op: 'exec', argv: ['/bin/sh', '-c', grep] },
      ],
    });
    assert.equal(await within(5000, watchExit(pid), 'watchExit'), { exitCode: 0, signal: null });
    const fields = Object.fromEntries(
      fs
        .readFileSync(out, 'utf8')
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
    );
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'])
      assert.is(fields[set], '0000000000000000', set);
    assert.is(fields.NoNewPrivs, '1');
    assert.is(fields.Uid, '65534\t65534\t65534\t65534');
    assert.is(fields.Gid, '65534\t65534\t65534\t65534');
    assert.is(fields.Groups, '');
    assert.is(fs.statSync(out).uid, 65534);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // Steps after the drop run unprivileged.
  try {
    spawn({ steps: [{ op: 'dropPrivileges', uid: 65534, gid: 65534 }, { op: 'chroot', path: '/' }, { op: 'hold' }] });
    assert.unreachable('chroot without CAP_SYS_CHROOT should throw');
  } catch (e) {
    assert.is((e as SyscallError).syscall, 'chroot');
    assert.is((e as SyscallError).code, 'EPERM');
  }
  assert.throws(() => spawn({ steps: [{ op: 'dropPrivileges', uid: -1, gid: 0 }, { op: 'hold' }] }), /uid/);
});

test('spawn: a child that dropped privileges still dies with its parent', async () => {
  // Changing ids clears the parent-death signal; the step must set it again. (The holder
  // lets go of node's stdout, so that node's own exit ends runNode even if the holder lives.)
  const r = runNode(`
    import { spawn } from '${INDEX_JS}';
    const steps = [{ op: 'redirect', path: '/dev/null' }, { op: 'dropPrivileges', uid: 65534, gid: 65534 }, { op: 'hold' }];
    console.log(String(spawn({ steps })));`);
  assert.is(r.status, 0, r.stderr);
  const pid = Number(r.stdout.trim());
  assert.ok(pid > 0, `stdout ${JSON.stringify(r.stdout)} stderr ${JSON.stringify(r.stderr)}`);
  const alive = () => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return !/^\d+ \(.*\) [ZX]/.test(stat);
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + 3000;
  while (alive() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
  const survived = alive();
  if (survived) process.kill(pid, 'SIGKILL');
  assert.not.ok(survived, 'the holder outlived the process that spawned it');
});

test('spawn: a reaper is PID 1, root, without descriptors; it exits with the status of the child that carries on (128 + a signal), ending the namespace', async () => {
  const pidNamespace = (pid: number | string) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/ns/pid`);
    } catch {
      return undefined; // gone meanwhile
    }
  };
  const steps = (script: string) => [
    { op: 'reaper' as const },
    { op: 'dropPrivileges' as const, uid: 65534, gid: 65534 },
    { op: 'exec' as const, argv: ['/bin/sh', '-c', script] },
  ];
  // The child leaves a daemon behind (its own session, its output away from ours).
  const reaper = spawn({
    cloneFlags: constants.CLONE_NEWPID,
    steps: steps('setsid sleep 600 </dev/null >/dev/null 2>&1 & sleep 0.5; exit 7'),
  });
  const ns = pidNamespace(reaper)!;
  const status = fs.readFileSync(`/proc/${reaper}/status`, 'utf8');
  assert.match(status, /^NSpid:\s+\d+\s+1$/m);
  assert.match(status, /^Uid:\s+0\s/m);
  const deadline = Date.now() + 1000;
  while (fs.readdirSync(`/proc/${reaper}/fd`).length > 0 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 10));
  assert.equal(fs.readdirSync(`/proc/${reaper}/fd`), [], "Node's descriptors, copied by the fork, are closed");
  assert.equal(await within(5000, watchExit(reaper), 'watchExit'), { exitCode: 7, signal: null });
  const left = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p) && pidNamespace(p) === ns);
  assert.equal(left, [], 'the daemon died with the namespace');

  const killed = spawn({ cloneFlags: constants.CLONE_NEWPID, steps: steps('kill -9 $$') });
  assert.equal(await within(5000, watchExit(killed), 'watchExit'), { exitCode: 128 + 9, signal: null });
});

test('spawn: exec passes fds 0-2 only, even ones the parent holds without close-on-exec', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-fds-'));
  const out = path.join(dir, 'fds');
  try {
    // The shell opens fd 5 without O_CLOEXEC and node inherits it.
    const r = runNode(
      `
      import fs from 'node:fs';
      import { spawn, watchExit } from '${INDEX_JS}';
      const ours = fs.readdirSync('/proc/self/fd');
      const pid = spawn({ steps: [{ op: 'redirect', path: '${out}' }, { op: 'exec', argv: ['/bin/ls', '/proc/self/fd'] }] });
      const exit = await watchExit(pid);
      console.log(JSON.stringify({ ours, exit }));`,
      { viaShell: 'exec 5</dev/null' },
    );
    assert.is(r.status, 0, r.stderr);
    const { ours, exit } = JSON.parse(r.stdout) as { ours: string[]; exit: unknown };
    assert.ok(ours.includes('5'), 'the node process has the inherited fd 5');
    assert.equal(exit, { exitCode: 0, signal: null });
    // 3 is the directory ls itself is reading.
    assert.equal(fs.readFileSync(out, 'utf8').trim().split('\n'), ['0', '1', '2', '3']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('watchExit: reports an exit code or the killing signal, and rejects for a missing pid', async () => {
  const child = spawn({ steps: [{ op: 'exec', argv: ['/bin/sh', '-c', 'exit 7'] }] });
  assert.equal(await within(5000, watchExit(child), 'exit 7'), { exitCode: 7, signal: null });
  const holder = spawn({ steps: [{ op: 'hold' }] });
  const killed = watchExit(holder);
  process.kill(holder, 'SIGKILL');
  assert.equal(await within(5000, killed, 'killed holder'), { exitCode: null, signal: 9 });
  assert.not.ok(fs.existsSync(`/proc/${holder}`), 'the child was reaped');
  try {
    await watchExit(NO_SUCH_PID);
    assert.unreachable('watchExit of a missing pid should reject');
  } catch (e) {
    const err = e as SyscallError;
    assert.is(err.code, 'ESRCH');
    assert.is(err.syscall, 'pidfd_open');
  }
  assert.throws(() => watchExit(-1), /pid/);
});

test('watchExit: twenty pending watches hold no libuv pool thread, and each gets its own result', async () => {
  const signals = ['SIGKILL', 'SIGTERM', 'SIGUSR1', 'SIGUSR2', 'SIGHUP', 'SIGINT', 'SIGALRM'] as const;
  const pids = Array.from({ length: 20 }, () => spawn({ steps: [{ op: 'hold' }] }));
  let settled = 0;
  const exits = pids.map((pid) => watchExit(pid).finally(() => settled++));
  try {
    // More fs jobs than the pool has threads: a wait parked in the pool would occupy one per child.
    const self = fileURLToPath(import.meta.url);
    const t0 = performance.now();
    await within(
      2000,
      Promise.all([
        fs.promises.readFile(self),
        fs.promises.readFile('/proc/self/status'),
        fs.promises.stat('/'),
        fs.promises.readdir('/proc/self/fd'),
        fs.promises.readFile(self),
      ]),
      'fs work while 20 watches are pending',
    );
    assert.ok(performance.now() - t0 < 1000);
    assert.is(settled, 0, 'no watched child has exited yet');
  } finally {
    pids.forEach((pid, i) => process.kill(pid, signals[i % signals.length]));
  }
  const results = await within(5000, Promise.all(exits), 'twenty exits');
  results.forEach((r, i) =>
    assert.equal(r, { exitCode: null, signal: os.constants.signals[signals[i % signals.length]] }, `child ${i}`),
  );
});

test('watchExit: holds the event loop open only while a watch is pending', () => {
  // Were the loop not held, node would quit at the first await (unsettled top-level await,
  // status 13); were it held after, node would never quit.
  const t0 = Date.now();
  const r = runNode(`
    import { spawn, watchExit } from '${INDEX_JS}';
    const a = await watchExit(spawn({ steps: [{ op: 'exec', argv: ['/bin/sh', '-c', 'sleep 0.2; exit 5'] }] }));
    const b = await watchExit(spawn({ steps: [{ op: 'exec', argv: ['/bin/sh', '-c', 'sleep 0.2; kill -9 $$'] }] }));
    const c = await watchExit(${NO_SUCH_PID}).catch((e) => e.code);
    console.log(JSON.stringify({ a, b, c }));`);
  assert.is(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout), {
    a: { exitCode: 5, signal: null },
    b: { exitCode: null, signal: 9 },
    c: 'ESRCH',
  });
  assert.ok(Date.now() - t0 < 8000);
});

test('watchExit: node exits cleanly with watches pending, by process.exit or worker teardown', () => {
  const exiting = runNode(`
    import { spawn, watchExit } from '${INDEX_JS}';
    watchExit(spawn({ steps: [{ op: 'redirect', path: '/dev/null' }, { op: 'hold' }] }));
    setTimeout(() => process.exit(3), 100);`);
  assert.is(exiting.signal, null, exiting.stderr);
  assert.is(exiting.status, 3, exiting.stderr);

  // The worker's own watcher thread must be stopped and joined as its environment goes.
  const worker = runNode(`
    import { Worker } from 'node:worker_threads';
    const w = new Worker(\`
      import { parentPort } from 'node:worker_threads';
      import { spawn, watchExit } from '${INDEX_JS}';
      watchExit(spawn({ steps: [{ op: 'exec', argv: ['/bin/sh', '-c', 'exit 4'] }] })).then((r) => {
        watchExit(spawn({ steps: [{ op: 'redirect', path: '/dev/null' }, { op: 'hold' }] }));
        parentPort.postMessage(r);
      });\`, { eval: true });
    w.on('message', async (r) => {
      await w.terminate();
      console.log(JSON.stringify(r));
    });`);
  assert.is(worker.signal, null, worker.stderr);
  assert.is(worker.status, 0, worker.stderr);
  assert.equal(JSON.parse(worker.stdout), { exitCode: 4, signal: null });
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
  const r = await new ChurnRun({
    flags: namespaceFlags(['mnt', 'net', 'pid']),
    concurrency: 2,
    ops: 20,
    useUnshare: true,
  }).start();
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
  const r = await within(5000, watchExit(pid), 'reaping our child');
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
    import('${path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../native/index.js')}').then(async (n) => {
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
