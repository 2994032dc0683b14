// Attacks from inside, performed for real against a real worker: what a hostile handler, or a
// hostile package imported by a zygote, tried against the engine before it was a sandbox. Each
// test does the attack and checks the host saw nothing of it: the worker's terminal, the host's
// files and processes, its mounts, its loopback and abstract sockets, the worker's own port,
// another sandbox. (The seccomp filter, the reply channel, the registry and the installers have
// attack files of their own: attacks-*.test.ts.)
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  lambda,
  postStarted as post,
  removeScratch,
  startWorker,
  engineScratch,
  workerArgv,
  type RunningWorker,
} from '../../helpers/sockWorker.js';
import { wheel } from '../../helpers/wheelhouse.js';

const NO_CACHES = ['--installer', 'off', '--handler-cache', 'off'];
/** Starts: lean (no zygotes), and forks of the root zygote. */
const STARTS: [string, string[]][] = [
  ['lean', ['--zygotes', 'off']],
  ['zygote fork', ['--zygotes', 'on']],
];

const unique = () => crypto.randomBytes(6).toString('hex');

// ---------------------------------------------------------------------------------------------
// The terminal: the worker started from a shell, as the README shows; the shell runs whatever
// line it reads from the terminal, as an interactive shell would.

const TTY_ATTACK = `
import fcntl, os, termios
def f(event):
    out = {"tty_nr": int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[4])}
    out["session_leader"] = os.getsid(0) == os.getpid()
    out["dev"] = sorted(os.listdir("/dev"))
    try:
        fd = os.open("/dev/tty", os.O_RDWR)
    except OSError as e:
        out["open"] = e.strerror
        return out
    out["open"] = "allowed"
    try:
        for ch in event["line"]:
            fcntl.ioctl(fd, termios.TIOCSTI, ch.encode())
        out["typed"] = "allowed"
    except OSError as e:
        out["typed"] = e.strerror
    return out
`;

const terminal = suite('attack: a handler types into the terminal the worker was started from');

for (const [start, flags] of STARTS) {
  terminal(`${start}: no controlling terminal, no /dev/tty; the typed command never runs`, async () => {
    const registry = engineScratch();
    const stateDir = engineScratch();
    lambda(registry, 'tty', TTY_ATTACK);
    const proof = `/tmp/sockbench-typed-${unique()}`;
    // script(1) gives the shell a terminal; the shell starts the worker in the background and
    // runs each line typed at it. Its standard input is a pipe kept open, so it never sees EOF.
    const worker = workerArgv(registry, stateDir, [...NO_CACHES, ...flags]).join(' ');
    const victim = spawn(
      'script',
      ['-qfec', `sh -c '${worker} 2>&1 & while read -r line; do eval "$line"; done'`, '/dev/null'],
      { stdio: ['pipe', 'pipe', 'ignore'], detached: true },
    );
    let seen = '';
    victim.stdout!.setEncoding('utf8');
    victim.stdout!.on('data', (chunk: string) => {
      seen += chunk;
    });
    try {
      const url = await waitFor(
        () => /listening on (http:\/\/[\d.]+:\d+)/.exec(seen)?.[1],
        20_000,
        () => `the worker did not start: ${seen}`,
      );
      const r = await post(url, 'tty', JSON.stringify({ line: `touch ${proof}\n` }));
      assert.is(r.status, 200, JSON.stringify(r.body));
      assert.is(r.start, start === 'lean' ? 'lean' : 'zygote:root');
      assert.is(r.body.tty_nr, 0, 'no controlling terminal');
      assert.ok(r.body.session_leader, 'a session of its own');
      assert.is(r.body.open, 'No such file or directory', '/dev/tty is not there');
      assert.equal(r.body.dev, ['fd', 'full', 'null', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'urandom', 'zero']);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.not.ok(fs.existsSync(proof), 'the shell ran the typed command');
      const status = (await (await fetch(`${url}/status`)).json()) as { worker: { pid: number } };
      process.kill(status.worker.pid, 'SIGTERM');
      await waitFor(
        () => !isAlive(status.worker.pid),
        15_000,
        () => 'the worker did not stop',
      );
    } finally {
      fs.rmSync(proof, { force: true });
      try {
        process.kill(-victim.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

terminal.after(() => removeScratch());
terminal.run();

// ---------------------------------------------------------------------------------------------
// A hostile package, installed through the real install cache (pip, from a wheel directory),
// imported by a zygote: its import-time code attacks the host, then leaves its findings for
// the handler forked from that zygote to return.

function hostilePackage(wheels: string, target: { hostDir: string; victimPid: number; otherCode: string }): void {
  const code = `
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
REPORT = {"pid": os.getpid(), "uid": os.getuid()}
def attempt(name, fn):
    try:
        REPORT[name] = fn() or "allowed"
    except OSError as e:
        REPORT[name] = e.strerror or str(e)
def mount_tmpfs():
    if libc.mount(b"sockbench-hostile", b"/mnt", b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
def escape():
    # The classic chroot escape: chroot into a directory below, climb out with .., chroot there.
    os.chroot("/usr")
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
    return "host root" if os.path.isdir(${JSON.stringify(target.hostDir)}) else "still inside"
def write_host():
    with open(${JSON.stringify(path.join(target.hostDir, 'written-by-package'))}, "w") as f:
        f.write("pwned")
def read_shadow():
    return "read " + str(len(open("/etc/shadow").read())) + " bytes"
def other_lambda():
    open(${JSON.stringify(target.otherCode)}, "a").close()
attempt("mount", mount_tmpfs)
attempt("escape", escape)
attempt("write_host", write_host)
attempt("shadow", read_shadow)
attempt("other_lambda", other_lambda)
attempt("signal_host", lambda: os.kill(${target.victimPid}, signal.SIGKILL))
`;
  wheel(wheels, 'sbhostile', '6.6');
  // The wheel's module, replaced by the attack (wheel() writes a harmless one).
  const built = path.join(wheels, 'sbhostile-6.6-py3-none-any.whl');
  const rewrite = `
import base64, hashlib, sys, zipfile
path, code = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(path) as z:
    files = {n: z.read(n).decode() for n in z.namelist()}
files["sbhostile/__init__.py"] = code
dist = "sbhostile-6.6.dist-info/RECORD"
digest = lambda t: base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b"=").decode()
files[dist] = "".join(f"{p},sha256={digest(t)},{len(t.encode())}\\n" for p, t in files.items() if p != dist) + f"{dist},,\\n"
with zipfile.ZipFile(path, "w") as z:
    for p, t in files.items():
        z.writestr(p, t)
`;
  const made = spawnSync('python3', ['-c', rewrite, built, code], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`rewriting the hostile wheel: ${made.stderr}`);
}

const pkg = suite('attack: a package imported by a zygote attacks the host');

pkg(
  "chroot escape, mount, host file, /etc/shadow, another lambda's code, a host process: all refused; the host saw nothing",
  async () => {
    const hostDir = fs.mkdtempSync('/tmp/sockbench-host-');
    fs.chmodSync(hostDir, 0o777); // even a world-writable host directory stays out of reach
    const victim = spawn('sleep', ['600'], { stdio: 'ignore' });
    const wheels = fs.mkdtempSync('/tmp/sb-test-wheels-');
    fs.chmodSync(wheels, 0o755);
    let w: RunningWorker | undefined;
    try {
      const registry = engineScratch();
      lambda(registry, 'other', 'def f(event):\n    return "other"\n');
      const otherCode = path.join(registry, 'other', 'f.py');
      hostilePackage(wheels, { hostDir, victimPid: victim.pid!, otherCode });
      for (const f of fs.readdirSync(wheels)) fs.chmodSync(path.join(wheels, f), 0o644);
      w = await startWorker({
        caches: true,
        registry,
        args: ['--zygote-threshold', '1', '--handler-cache', 'off', '--installer', 'pip', '--pip-find-links', wheels],
      });
      lambda(registry, 'uses', 'import sbhostile\ndef f(event):\n    return sbhostile.REPORT\n');
      fs.writeFileSync(path.join(registry, 'uses', 'requirements.txt'), 'sbhostile==6.6\n');
      const r = await post(w.url, 'uses', '');
      assert.is(r.status, 200, JSON.stringify(r.body));
      assert.is(r.start, 'zygote:sbhostile', 'the handler was forked from the zygote that imported the package');
      const report = r.body as Record<string, unknown>;
      assert.is(report.uid, 0, 'the package ran as the zygote: root, but of its own user namespace');
      assert.is.not(report.escape, 'host root', "the chroot escape reached the host's root");
      assert.is(report.write_host, 'No such file or directory');
      assert.not.ok(fs.existsSync(path.join(hostDir, 'written-by-package')));
      assert.not.match(String(report.shadow), /^read/, `/etc/shadow: ${String(report.shadow)}`);
      assert.is(report.other_lambda, 'No such file or directory');
      assert.is(report.signal_host, 'No such process');
      assert.ok(isAlive(victim.pid!), 'the host process lives');
      // A tmpfs the zygote may mount lands in its own mount namespace, never in the host's.
      assert.not.match(
        fs.readFileSync('/proc/self/mountinfo', 'utf8'),
        'sockbench-hostile',
        `the host has the package's tmpfs (${String(report.mount)})`,
      );
    } finally {
      if (w) await w.stop('SIGTERM');
      victim.kill('SIGKILL');
      fs.rmSync(hostDir, { recursive: true, force: true });
      fs.rmSync(wheels, { recursive: true, force: true });
    }
  },
);

pkg.after(() => removeScratch());
pkg.run();

// ---------------------------------------------------------------------------------------------
// The network: each sandbox has a network namespace of its own with loopback only.

const NET_ATTACK = `
import os, socket
def attempt(fn):
    try:
        fn()
        return "allowed"
    except OSError as e:
        return e.strerror or str(e)
def tcp(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.close()
def abstract(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect("\\0" + name)
    s.close()
def call_worker(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(b"GET /status HTTP/1.0\\r\\n\\r\\n")
    s.recv(100)
    s.close()
LISTENER = None
def listen(port):
    global LISTENER
    LISTENER = socket.socket()
    LISTENER.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    LISTENER.bind(("0.0.0.0", port))
    LISTENER.listen(16)
def f(event):
    out = {
        "worker": attempt(lambda: call_worker(event["worker_port"])),
        "host_loopback": attempt(lambda: tcp(event["host_port"])),
        "abstract": attempt(lambda: abstract(event["abstract"])),
        "interfaces": sorted(n for _, n in socket.if_nameindex()),
        "unix_sockets": [l.split()[-1] for l in open("/proc/net/unix").read().splitlines()[1:] if len(l.split()) > 7],
    }
    if event.get("peer_port"):
        out["peer"] = attempt(lambda: tcp(event["peer_port"]))
    if event.get("listen_port"):
        out["listen"] = attempt(lambda: listen(event["listen_port"]))
    return out
`;

const network = suite("attack: a handler reaches the worker, the host's loopback, abstract sockets, another sandbox");
let hostServer: net.Server;
let abstractServer: net.Server;
let connections = 0;
const abstractName = `sockbench-test-${unique()}`;

network.before(async () => {
  hostServer = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  abstractServer = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((resolve) => hostServer.listen(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => abstractServer.listen(`\0${abstractName}`, resolve));
});

network.after(async () => {
  hostServer.close();
  abstractServer.close();
  removeScratch();
});

for (const [start, flags] of STARTS) {
  network(
    `${start}: the worker's port, the host's loopback and its abstract sockets are unreachable; two sandboxes cannot reach each other`,
    async () => {
      const w = await startWorker({
        caches: true,
        args: [...NO_CACHES.slice(0, 2), ...flags, '--handler-cache', 'on'],
      });
      try {
        lambda(w.registry, 'net', NET_ATTACK);
        lambda(w.registry, 'net2', NET_ATTACK);
        const workerPort = Number(new URL(w.url).port);
        const listenPort = 20000 + Math.floor(Math.random() * 20000);
        const event = {
          worker_port: workerPort,
          host_port: (hostServer.address() as net.AddressInfo).port,
          abstract: abstractName,
          listen_port: listenPort,
        };
        const a = await post(w.url, 'net', JSON.stringify(event));
        assert.is(a.status, 200, JSON.stringify(a.body));
        assert.is(a.start, start === 'lean' ? 'lean' : 'zygote:root');
        assert.is(a.body.worker, 'Connection refused');
        assert.is(a.body.host_loopback, 'Connection refused');
        assert.is(a.body.abstract, 'Connection refused');
        assert.equal(a.body.interfaces, ['lo'], 'loopback only');
        assert.equal(
          a.body.unix_sockets.filter((s: string) => s.includes('docker') || s.includes(abstractName)),
          [],
          "the host's Unix sockets are not listed",
        );
        assert.is(a.body.listen, 'allowed', 'it may listen on its own loopback');
        // Its listener is frozen in the handler cache, bound in its own namespace: not on the host's.
        assert.is(await connectable(listenPort), false, "the host reaches the sandbox's port");
        // Another lambda's sandbox cannot reach it either.
        const b = await post(w.url, 'net2', JSON.stringify({ ...event, listen_port: 0, peer_port: listenPort }));
        assert.is(b.body.peer, 'Connection refused');
        assert.is(connections, 0, "the host's servers saw no connection");
        // A kill -9 of the worker leaves the frozen instance's port nowhere on the host.
        await w.stop('SIGKILL');
        assert.is(await connectable(listenPort), false);
      } finally {
        await w.stop('SIGKILL');
        // The next worker on that state directory removes what the killed one left (frozen instances).
        const next = await startWorker({ stateDir: w.stateDir, registry: w.registry });
        await next.stop('SIGTERM');
      }
    },
  );
}

network(
  "outbound network only for the lambda that asks for it, and never to the host's loopback or the worker",
  async () => {
    // An "outside" host of the test's own, in a network namespace it makes, behind a veth pair.
    const tag = unique().slice(0, 6);
    const ns = `sbtest-out-${tag}`;
    const run = (...args: string[]) => {
      const r = spawnSync('ip', args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
    };
    const third = 100 + Math.floor(Math.random() * 100);
    const [hostSide, outside] = [`10.211.${third}.1`, `10.211.${third}.2`];
    run('netns', 'add', ns);
    let server: ReturnType<typeof spawn> | undefined;
    const w = await startWorker({ caches: true, args: ['--installer', 'off', '--handler-cache', 'off'] });
    try {
      run('link', 'add', `sbo-${tag}`, 'type', 'veth', 'peer', 'name', `sbi-${tag}`);
      run('link', 'set', `sbi-${tag}`, 'netns', ns);
      run('addr', 'add', `${hostSide}/30`, 'dev', `sbo-${tag}`);
      run('link', 'set', `sbo-${tag}`, 'up');
      run('-n', ns, 'addr', 'add', `${outside}/30`, 'dev', `sbi-${tag}`);
      run('-n', ns, 'link', 'set', `sbi-${tag}`, 'up');
      run('-n', ns, 'link', 'set', 'lo', 'up');
      server = spawn(
        'ip',
        [
          'netns',
          'exec',
          ns,
          'python3',
          '-c',
          `import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("${outside}", 8080)); s.listen(8)\nwhile True:\n    c, _ = s.accept(); c.sendall(b"outside"); c.close()`,
        ],
        { stdio: 'ignore' },
      );
      await waitFor(
        () =>
          spawnSync('ip', [
            'netns',
            'exec',
            ns,
            'python3',
            '-c',
            `import socket; socket.create_connection(("${outside}", 8080), timeout=1)`,
          ]).status === 0 || undefined,
        10_000,
        () => 'the outside host did not listen',
      );
      const probe = `
import socket
def reach(host, port):
    try:
        s = socket.create_connection((host, port), timeout=3)
        data = s.recv(16).decode()
        s.close()
        return data or "connected"
    except OSError as e:
        return e.strerror or str(e)
def f(event):
    return {"outside": reach("${outside}", 8080), "worker_via_gateway": reach("10.0.2.2", event["worker_port"]),
            "worker_loopback": reach("127.0.0.1", event["worker_port"]), "host_loopback": reach("10.0.2.2", event["host_port"])}
`;
      lambda(w.registry, 'asks', probe);
      fs.writeFileSync(path.join(w.registry, 'asks', 'sock.json'), '{"network": "outbound"}\n');
      lambda(w.registry, 'quiet', probe);
      const event = JSON.stringify({
        worker_port: Number(new URL(w.url).port),
        host_port: (hostServer.address() as net.AddressInfo).port,
      });
      const asks = await post(w.url, 'asks', event);
      assert.is(asks.status, 200, JSON.stringify(asks.body));
      assert.is(asks.start, 'lean', 'outbound network is given on a lean start');
      assert.is(asks.body.outside, 'outside', 'the lambda that asked reaches the outside host');
      assert.is(asks.body.worker_loopback, 'Connection refused');
      assert.is.not(asks.body.worker_via_gateway, 'connected', "through slirp4netns's gateway to the worker");
      assert.is.not(asks.body.host_loopback, 'connected', "through slirp4netns's gateway to the host's loopback");
      const quiet = await post(w.url, 'quiet', event);
      assert.is(quiet.status, 200, JSON.stringify(quiet.body));
      assert.is(quiet.body.outside, 'Network is unreachable', 'a lambda that did not ask has loopback only');
      assert.is(connections, 0, "the host's servers saw no connection");
      // A sock.json that says something else is its author's mistake, said in one line.
      lambda(w.registry, 'typo', probe);
      fs.writeFileSync(path.join(w.registry, 'typo', 'sock.json'), '{"network": "everywhere"}\n');
      const typo = await post(w.url, 'typo', event);
      assert.is(typo.status, 403);
      assert.is(typo.body.kind, 'bad-lambda');
      assert.match(typo.body.error, /sock\.json: "network" is "loopback" or "outbound", not "everywhere"$/);
      // --no-outbound: the operator's word wins over the lambda's.
      const strict = await startWorker({ registry: w.registry, args: ['--no-outbound'] });
      try {
        const refused = await post(strict.url, 'asks', event);
        assert.is(refused.status, 403);
        assert.is(refused.body.kind, 'network');
      } finally {
        await strict.stop('SIGTERM');
      }
    } finally {
      await w.stop('SIGTERM');
      server?.kill('SIGKILL');
      spawnSync('ip', ['link', 'del', `sbo-${tag}`]);
      spawnSync('ip', ['netns', 'del', ns]);
    }
    assert.equal(spawnSync('pgrep', ['-x', 'slirp4netns']).stdout.toString().trim(), '', 'no slirp4netns left running');
  },
);

network('a killed worker leaves no network namespace behind', async () => {
  const before = netNamespaces();
  const w = await startWorker({ caches: true, args: ['--installer', 'off', '--zygote-threshold', '1'] });
  lambda(w.registry, 'a', 'def f(event):\n    return 1\n');
  for (let i = 0; i < 3; i++) assert.is((await post(w.url, 'a', '')).status, 200);
  assert.ok(netNamespaces().size > before.size, 'the worker held namespaces of its own');
  await w.stop('SIGKILL');
  const next = await startWorker({ stateDir: w.stateDir, registry: w.registry });
  await next.stop('SIGTERM');
  // Namespaces are freed as their last holder goes: give the kernel a moment.
  await waitFor(
    () => [...netNamespaces()].every((ns) => before.has(ns)) || undefined,
    5_000,
    () => `left: ${[...netNamespaces()].filter((ns) => !before.has(ns))}`,
  );
});

network.run();

// ---------------------------------------------------------------------------------------------

/** Network namespaces any process holds now (by inode). */
function netNamespaces(): Set<string> {
  const found = new Set<string>();
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      found.add(fs.readlinkSync(`/proc/${pid}/ns/net`));
    } catch {
      /* ended */
    }
  }
  return found;
}

function connectable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, timeout: 1000 }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.on('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

async function waitFor<T>(probe: () => T | undefined, ms: number, why: () => string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = probe();
    if (got !== undefined && got !== false) return got;
    if (Date.now() > deadline) throw new Error(why());
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
