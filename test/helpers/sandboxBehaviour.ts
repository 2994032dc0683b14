// The behaviour every sandbox backend must have, as one suite run against each (SOCK's lean
// containers and the Docker baseline): what a handler can see and do, the limits, the faults,
// and that shutdown leaves nothing behind.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Limits } from '../../engine/cgroups/cgroupHierarchy.js';
import { mountsUnder } from '../../engine/state/mountinfo.js';
import type { Sandbox, SandboxBackend } from '../../engine/sandbox/sandbox.js';
import type { StateDir } from '../../engine/state/stateDir.js';
import { engineScratch } from './sockWorker.js';

export const PROBE = `
import os, socket
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

/** A directory with f.py, readable by the sandbox's user. */
export function handler(source: string): string {
  const dir = engineScratch();
  fs.chmodSync(dir, 0o755);
  fs.writeFileSync(path.join(dir, 'f.py'), source);
  return dir;
}

export type StartBackend = (stateDir: string, limits: Limits) => Promise<SandboxBackend & { state: StateDir }>;

/** Small limits, so that the faults happen in a second or two. */
const LIMITS: Limits = { memoryBytes: 64 * 2 ** 20, pids: 32, cpuShares: 512 };

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no failure';
  } catch (e) {
    return (e as { kind?: string }).kind ?? String(e);
  }
}

export function sandboxBehaviour(
  name: string,
  start: StartBackend,
  leftovers: (stateDir: string) => Promise<string[]>,
): void {
  const s = suite(`${name}: the behaviour every backend shares`);
  let backend: SandboxBackend & { state: StateDir };
  let sandbox: Sandbox;
  let seen: any;

  s.before(async () => {
    backend = await start(engineScratch(), LIMITS);
    try {
      sandbox = await backend.create({ code: handler(PROBE), packages: {} });
      seen = await sandbox.invoke({ host_pid: process.pid }, 10_000);
    } catch (e) {
      // uvu reports a failed hook only as skipped tests: say why.
      console.error(`${name} setup failed:`, e);
      throw e;
    }
  });

  s.after(async () => {
    const root = backend.state.root;
    await backend.shutdown();
    assert.equal(mountsUnder(root), [], 'shutdown leaves no mount under the state directory');
    assert.equal(await leftovers(root), [], "and nothing else of the backend's");
  });

  s('the handler is PID 1 of its own PID namespace and sees no host process', () => {
    assert.is(seen.pid, 1);
    assert.equal(seen.procs, [1]);
    assert.is(seen.signal_host, 'No such process');
    for (const n of ['ipc', 'uts', 'pid']) assert.is.not(seen.ns[n], fs.readlinkSync(`/proc/self/ns/${n}`), n);
  });

  s('it runs as nobody with no capability in any set and no_new_privs; chroot and mknod are refused', () => {
    assert.equal(seen.caps, {
      CapInh: '0000000000000000',
      CapPrm: '0000000000000000',
      CapEff: '0000000000000000',
      CapBnd: '0000000000000000',
      CapAmb: '0000000000000000',
    });
    assert.is(seen.no_new_privs, '1');
    assert.equal([seen.uid, seen.gid], [65534, 65534]);
    assert.equal(
      seen.groups.filter((g: number) => g !== 65534),
      [],
      'no group beyond its own',
    );
    assert.is(seen.chroot, 'Operation not permitted');
    assert.is(seen.mknod, 'Operation not permitted');
  });

  s('it can write only its scratch directory and /tmp', () => {
    assert.equal(seen.write, {
      '/etc/x': 'Read-only file system',
      '/usr/x': 'Read-only file system',
      '/x': 'Read-only file system',
      '/handler/x': 'Read-only file system',
      '/sock/x': 'Read-only file system',
      '/host/x': 'allowed',
      '/tmp/x': 'allowed',
    });
  });

  s('pause freezes it (an invocation waits) and unpause lets it answer', async () => {
    await sandbox.pause();
    let answered = false;
    const pending = sandbox.invoke({ host_pid: process.pid }, 10_000).then((r) => {
      answered = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.is(answered, false);
    await sandbox.unpause();
    assert.is(((await pending) as { pid: number }).pid, 1);
    await sandbox.destroy();
    await sandbox.destroy();
  });

  s('a paused sandbox can be destroyed', async () => {
    const paused = await backend.create({ code: handler('def f(event):\n    return 1\n'), packages: {} });
    await paused.pause();
    await paused.destroy();
    assert.is(backend.status().alive, 0);
  });

  s('an exception, a bad f.py, a timeout, an OOM kill and a crash are each told apart', async () => {
    const run = async (source: string) => {
      const sb = await backend.create({ code: handler(source), packages: {} });
      try {
        return await sb.invoke(null, 1500);
      } finally {
        await sb.destroy();
      }
    };
    assert.is(await kindOf(run('def f(event):\n    raise ValueError("no")\n')), 'exception');
    assert.is(await kindOf(run('def f(event) oops\n')), 'bad-handler');
    assert.is(await kindOf(run('def f(event):\n    while True:\n        pass\n')), 'timeout');
    assert.is(
      await kindOf(run('def f(event):\n    x = []\n    while True:\n        x.append(bytearray(8 << 20))\n')),
      'oom',
    );
    assert.is(await kindOf(run('import ctypes\ndef f(event):\n    return ctypes.string_at(0)\n')), 'crash');
    assert.is(backend.status().alive, 0);
  });

  s(
    "it serves HTTP: the entry and environment its spec names, a WSGI app's status, headers and bytes, kept across requests",
    async () => {
      const code = handler('');
      fs.writeFileSync(
        path.join(code, 'main.py'),
        [
          'import os',
          'n = 0',
          'def web(environ, start_response):',
          '    global n',
          '    n += 1',
          '    body = environ["wsgi.input"].read()',
          '    start_response("201 Made", [("X-Env", os.environ["GREETING"]), ("X-Count", str(n))])',
          '    return [environ["PATH_INFO"].encode(), b"?", environ["QUERY_STRING"].encode(), b" ", body[::-1]]',
          '',
        ].join('\n'),
      );
      const sb = await backend.create({
        code,
        packages: {},
        entry: { file: 'main.py', wsgi: 'web', env: { GREETING: 'hi' } },
      });
      try {
        const request = {
          method: 'PUT',
          root: '/run/x',
          path: '/a/b',
          query: 'q=1',
          headers: [['Host', 'worker']] as [string, string][],
          body: Buffer.from([0, 1, 255]),
        };
        for (const count of ['1', '2']) {
          const answer = await sb.serve(request, 10_000);
          assert.equal([answer.status, answer.reason], [201, 'Made']);
          assert.equal(answer.headers, [
            ['X-Env', 'hi'],
            ['X-Count', count],
          ]);
          assert.equal([...answer.body], [...Buffer.from('/a/b?q=1 '), 255, 1, 0]);
        }
        assert.is(await kindOf(sb.invoke(null, 10_000)), 'exception', 'an app answers HTTP, not events');
      } finally {
        await sb.destroy();
      }
    },
  );

  s('a fork bomb stops at the pids limit', async () => {
    const sb = await backend.create({
      code: handler(
        'import os, time\ndef f(event):\n    n = 0\n    try:\n        while True:\n            if os.fork() == 0:\n                time.sleep(30)\n                os._exit(0)\n            n += 1\n    except OSError as e:\n        return [n, e.errno]\n',
      ),
      packages: {},
    });
    const [forked, errno] = (await sb.invoke(null, 10_000)) as [number, number];
    await sb.destroy();
    assert.is(errno, 11);
    assert.ok(forked < LIMITS.pids, String(forked));
  });

  s.run();
}
