// Attacks on the install cache, performed for real. With --installer pip a lambda's author picks
// the package, and an sdist's setup.py runs during `pip download` and again during `pip install`:
// the hostile sdist here tries, each time, what install-time code would try on the worker's
// host (write in its /tmp and /root, read /etc/shadow, kill a root process, overwrite a package
// installed before, reach a server on 127.0.0.1, ptrace the sandbox's first process to keep
// alive past its install, and leave a daemon behind), and writes down what happened in a file
// it ships in its own wheel. Every attack worked while pip ran as root on the host; each must be
// refused now, and no process of the install user may outlive its install: not after it ends,
// not after the cache is closed mid-install, not after the worker is killed with SIGKILL.
import { spawn as spawnProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { reclaimStateDir } from '../../../engine/sandbox/gc.js';
import { InstallCache, InstallError } from '../../../engine/caches/installCache.js';
import { INSTALL_USER, InstallWork } from '../../../engine/installers/installSandbox.js';
import { PipProvider } from '../../../engine/installers/pip.js';
import {
  BASE,
  engineScratch,
  lambda,
  post,
  removeScratch,
  startWorker,
  type RunningWorker,
} from '../../helpers/sockWorker.js';
import { sdist, wheel } from '../../helpers/wheelhouse.js';
import { rejection } from '../../helpers/helpers.js';

const TOKEN = crypto.randomBytes(4).toString('hex');
/** In the command line of every daemon the hostile packages start, so the test can find them. */
const MARKER = `sbhostile-daemon-${TOKEN}`;

/** Python shared by the hostile setup.py files: the phase (setup.py's command) and a daemon that outlives setup.py (its output away from pip's pipes, which pip reads to their end). */
const PRELUDE = `
import ctypes, errno, json, os, signal, socket, sys, time
from setuptools import setup
PHASE = next((a for a in sys.argv[1:] if not a.startswith('-')), '?')

def daemon():
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            null = os.open('/dev/null', os.O_RDWR)
            for fd in range(3):
                os.dup2(null, fd)
            os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)', '${MARKER}'])
        os._exit(0)
    os.waitpid(pid, 0)
`;

/** setup.py of sbhostile: every attack in every phase, results appended to ~/report.json and shipped in the wheel by the build. */
function hostileSetup(sleeperPid: number, port: number, victim: string): string {
  return `${PRELUDE}
def attempt(action):
    try:
        action()
        return 'done'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))

def write(p):
    with open(p, 'w') as f:
        f.write('written by sbhostile\\n')

def read_shadow():
    with open('/etc/shadow') as f:
        f.read()

def connect():
    with socket.create_connection(('127.0.0.1', ${port}), timeout=5) as s:
        s.sendall(PHASE.encode())

def ptrace_first_process():
    libc = ctypes.CDLL(None, use_errno=True)
    PTRACE_SEIZE = 0x4206
    if libc.ptrace(PTRACE_SEIZE, 1, None, None) != 0:
        raise OSError(ctypes.get_errno(), 'ptrace')

status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)
record = {
    'phase': PHASE,
    'uid': os.getuid(),
    'capEff': status['CapEff'],
    'noNewPrivs': status['NoNewPrivs'],
    'seccomp': status['Seccomp'],
    'tty': int(open('/proc/self/stat').read().rsplit(')', 1)[1].split()[4]),
    'tmp': attempt(lambda: write('/tmp/sbhostile-${TOKEN}-' + PHASE)),
    'root': attempt(lambda: write('/root/sbhostile-${TOKEN}-' + PHASE)),
    'shadow': attempt(read_shadow),
    'kill': attempt(lambda: os.kill(${sleeperPid}, signal.SIGKILL)),
    'package': attempt(lambda: write('${victim}')),
    'tcp': attempt(connect),
    'ptrace': attempt(ptrace_first_process),
    'daemon': attempt(daemon),
}
report = os.path.expanduser('~/sbhostile-report.json')
records = json.load(open(report)) if os.path.exists(report) else []
records.append(record)
json.dump(records, open(report, 'w'))
if PHASE == 'bdist_wheel':
    json.dump(records, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sbhostile', 'report.json'), 'w'))
setup(name='sbhostile', version='1.0', packages=['sbhostile'], package_data={'sbhostile': ['report.json']})
`;
}

/** setup.py of sbhang: its build starts a daemon and then never ends. */
const HANG_SETUP = `${PRELUDE}
if PHASE == 'bdist_wheel':
    daemon()
    time.sleep(600)
setup(name='sbhang', version='1.0', packages=['sbhang'])
`;

interface AttackRecord {
  phase: string;
  uid: number;
  capEff: string;
  noNewPrivs: string;
  seccomp: string;
  tty: number;
  tmp: string;
  root: string;
  shadow: string;
  kill: string;
  package: string;
  tcp: string;
  ptrace: string;
  daemon: string;
}

/** Pids of the processes running as uid. */
function processesOf(uid: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return new RegExp(`^Uid:\\s+${uid}\\s`, 'm').test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/** Pids of the hostile packages' daemons, whoever they run as. */
function daemons(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(MARKER);
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function waitFor<T>(what: string, probe: () => T | undefined, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = probe();
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits (a kill takes a moment to land) until nothing of the install user runs. */
async function noInstallProcessLeft(): Promise<void> {
  await waitFor(
    "the install user's processes to end",
    () => (processesOf(INSTALL_USER.uid).length === 0 && daemons().length === 0 ? true : undefined),
    5000,
  ).catch(() =>
    assert.unreachable(`left running: install user's ${processesOf(INSTALL_USER.uid)}, daemons ${daemons()}`),
  );
}

/** Every entry under dir, dir included: [path, lstat]. */
function walk(dir: string): [string, fs.Stats][] {
  const st = fs.lstatSync(dir);
  return [[dir, st], ...(st.isDirectory() ? fs.readdirSync(dir).flatMap((e) => walk(path.join(dir, e))) : [])];
}

const entries = (scratch: string) => fs.readdirSync(path.join(scratch, 'packages', 'pip')).sort();

function pipCache(scratch: string, wheelhouse: string): InstallCache {
  return InstallCache.open(
    path.join(scratch, 'packages'),
    new PipProvider({ findLinks: [wheelhouse], noIndex: true, base: BASE, workDir: path.join(scratch, 'work') }),
  );
}

test.after(() => removeScratch());

test("a hostile sdist: each attack of its setup.py is refused in the download and the install; nothing it started survives; its package is root's and imports", async () => {
  const scratch = engineScratch();
  const wheelhouse = path.join(scratch, 'wheels');
  wheel(wheelhouse, 'sbdemo', '1.2');
  const received: string[] = [];
  const server = net.createServer((s) => s.on('data', (d) => received.push(d.toString())));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sleeper = spawnProcess('sleep', ['600'], { stdio: 'ignore' });
  try {
    const cache = pipCache(scratch, wheelhouse);
    const [demo] = await cache.ensure(['sbdemo==1.2']);
    const victim = path.join(demo!.dir, 'python/sbdemo/__init__.py');
    const before = fs.readFileSync(victim, 'utf8');
    sdist(
      wheelhouse,
      'sbhostile',
      '1.0',
      hostileSetup(sleeper.pid!, (server.address() as net.AddressInfo).port, victim),
    );

    const [p] = await cache.ensure(['sbhostile']);
    const records = JSON.parse(
      fs.readFileSync(path.join(p!.dir, 'python/sbhostile/report.json'), 'utf8'),
    ) as AttackRecord[];
    // pip download prepares the sdist's metadata (egg_info); pip install does it again, then builds.
    assert.equal(
      records.map((r) => r.phase),
      ['egg_info', 'egg_info', 'bdist_wheel'],
    );
    for (const r of records) {
      const where = `${r.phase}: ${JSON.stringify(r)}`;
      assert.equal([r.uid, r.capEff, r.noNewPrivs], [INSTALL_USER.uid, '0000000000000000', '1'], where);
      assert.equal([r.seccomp, r.tty], ['2', 0], `${where}: under the seccomp filter, with no controlling terminal`);
      assert.is(r.tmp, 'done', `its /tmp is a private one: ${where}`);
      assert.not.ok(fs.existsSync(`/tmp/sbhostile-${TOKEN}-${r.phase}`), `the host's /tmp: ${where}`);
      assert.is(r.root, 'ENOENT', `no /root in its root: ${where}`);
      assert.not.ok(fs.existsSync(`/root/sbhostile-${TOKEN}-${r.phase}`), where);
      assert.is(r.shadow, 'EACCES', where);
      assert.is(r.kill, 'ESRCH', `the host's processes are not in its PID namespace: ${where}`);
      assert.is(r.package, 'ENOENT', `other packages are not in its root: ${where}`);
      assert.is(r.ptrace, 'EPERM', `its PID 1 is root's: ${where}`);
      assert.is(r.daemon, 'done', where);
    }
    assert.equal(
      records.map((r) => r.tcp),
      ['done', 'ENETUNREACH', 'ENETUNREACH'],
      "the download keeps the host's network; the install has none",
    );
    await waitFor("the download's connection", () => (received.length > 0 ? true : undefined), 2000);
    assert.equal(received, ['egg_info']);
    assert.is(sleeper.exitCode, null, 'the root process it tried to kill is alive');
    assert.is(sleeper.signalCode, null);
    assert.is(fs.readFileSync(victim, 'utf8'), before, 'the package installed before is untouched');
    await noInstallProcessLeft();

    for (const [file, st] of walk(p!.dir)) {
      assert.equal([st.uid, st.gid], [0, 0], `root's: ${file}`);
      if (!st.isSymbolicLink()) assert.is(st.mode & 0o6022, 0, `no set-id bit, no write for group or others: ${file}`);
    }
    const work = InstallWork.create(path.join(scratch, 'check'), 'check');
    try {
      const out = await work.inBase(BASE, { sbhostile: p!.dir }, false, {
        argv: ['/usr/bin/python3', '-B', '-c', 'import sbhostile; print(sbhostile.VERSION)'],
        env: ['PYTHONPATH=/packages/sbhostile/python'],
      });
      assert.is(out.trim(), '1.0');
    } finally {
      work.remove();
    }
    assert.equal(fs.readdirSync(path.join(scratch, 'work')), [], "the install's work directory is gone");
  } finally {
    sleeper.kill('SIGKILL');
    server.close();
  }
});

test('a find-links directory or wheel the install user cannot read: one line naming it and the uid; nothing installed', async () => {
  const scratch = engineScratch();
  const wheelhouse = path.join(scratch, 'wheels');
  wheel(wheelhouse, 'sbdemo', '1.2');
  const cache = pipCache(scratch, wheelhouse);
  fs.chmodSync(wheelhouse, 0o700);
  let e = await rejection(cache.ensure(['sbdemo']));
  assert.instance(e, InstallError);
  assert.is(
    e.message,
    `cannot install sbdemo (pip): --pip-find-links ${wheelhouse} is not readable by the install user (uid ${INSTALL_USER.uid}), which runs pip: mode 0700 (chmod o+rX)`,
  );
  fs.chmodSync(wheelhouse, 0o755);
  const file = path.join(wheelhouse, 'sbdemo-1.2-py3-none-any.whl');
  fs.chmodSync(file, 0o600);
  e = await rejection(cache.ensure(['sbdemo']));
  assert.match(e.message, `--pip-find-links ${file} is not readable by the install user (uid ${INSTALL_USER.uid})`);
  assert.equal(entries(scratch), []);
  fs.chmodSync(file, 0o644);
  const [p] = await cache.ensure(['sbdemo']);
  assert.is(p!.version, '1.2');
});

test("closing the cache mid-install kills the install's every process; the install fails and leaves nothing", async () => {
  const scratch = engineScratch();
  const wheelhouse = path.join(scratch, 'wheels');
  sdist(wheelhouse, 'sbhang', '1.0', HANG_SETUP);
  const cache = pipCache(scratch, wheelhouse);
  const installing = rejection(cache.ensure(['sbhang']));
  const [daemon] = await waitFor(
    'the daemon of the hanging build',
    () => (daemons().length > 0 ? daemons() : undefined),
    60_000,
  );
  assert.match(fs.readFileSync(`/proc/${daemon}/status`, 'utf8'), new RegExp(`^Uid:\\s+${INSTALL_USER.uid}\\s`, 'm'));
  await cache.close();
  const e = await installing;
  assert.instance(e, InstallError);
  assert.is(e.message, 'cannot install sbhang (pip): the install cache was closed (the worker is shutting down)');
  await noInstallProcessLeft();
  assert.equal(entries(scratch), []);
  assert.equal(fs.readdirSync(path.join(scratch, 'work')), []);
});

test('kill -9 of the worker mid-install: no install process survives it; the next start removes the partial install and its work directory', async () => {
  const wheelhouse = engineScratch();
  fs.chmodSync(wheelhouse, 0o755);
  sdist(wheelhouse, 'sbhang', '1.0', HANG_SETUP);
  const args = ['--installer', 'pip', '--pip-find-links', wheelhouse, '--zygotes', 'off'];
  const first = await startWorker({ caches: true, args });
  let second: RunningWorker | undefined;
  try {
    lambda(first.registry, 'hang', 'import sbhang\ndef f(event):\n    return 1\n');
    fs.writeFileSync(path.join(first.registry, 'hang', 'requirements.txt'), 'sbhang\n');
    const pending = post(first.url, 'hang', '').catch(() => 'no answer');
    await waitFor('the daemon of the hanging build', () => (daemons().length > 0 ? true : undefined), 60_000);
    await first.stop('SIGKILL');
    assert.is(await pending, 'no answer');
    await noInstallProcessLeft();
    const packages = path.join(first.stateDir, 'packages/pip');
    assert.equal(
      fs.readdirSync(packages).filter((e) => e.startsWith('.partial-sbhang-')).length,
      1,
      'the half-done install is still there',
    );
    assert.ok(fs.readdirSync(path.join(first.stateDir, 'install-work')).length > 0);

    second = await startWorker({ caches: true, registry: first.registry, stateDir: first.stateDir, args });
    assert.match(second.log(), /removed what a previous engine left: .*entries in .*install-work/);
    assert.match(second.log(), /install cache: removed .*\.partial-sbhang-.* \(left by an interrupted install\)/);
    assert.equal(fs.readdirSync(packages), []);
    assert.not.ok(fs.existsSync(path.join(first.stateDir, 'install-work')), 'made again by the next install');
    // Answered once the worker is past announcing itself, and so has its SIGTERM handler.
    assert.is((await fetch(`${second.url}/status`)).status, 200);
    assert.is(await second.stop('SIGTERM'), 0);
  } finally {
    // A failed assertion must not leave a worker running, nor its mounts and cgroups.
    for (const w of [first, second])
      if (w && w.proc.exitCode === null && w.proc.signalCode === null) await w.stop('SIGKILL');
    await reclaimStateDir(first.stateDir);
  }
});

test.run();
