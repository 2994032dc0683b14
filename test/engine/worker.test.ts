// The worker end to end over HTTP, as a user runs it: a real `sock worker up` process, real
// sandboxes, real Python. Limits are set low so that every fault happens in a second or two.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mountsUnder } from '../../engine/state/mountinfo.js';
import {
  BASE,
  lambda,
  poolCgroups,
  post,
  removeScratch,
  sandboxMounts,
  SOCK_CLI,
  startWorker,
  tasksIn,
  type RunningWorker,
} from '../helpers/sockWorker.js';

/** The cgroup directories of a state directory's pool, in every tree they exist in. */
/** A worker with one invocation stuck in a 60 s handler, its sandbox mounted; the request's promise never rejects. */
async function busyWorker(): Promise<{ worker: RunningWorker; pending: Promise<unknown> }> {
  const worker = await startWorker();
  lambda(worker.registry, 'sleep', 'import time\ndef f(event):\n    time.sleep(60)\n');
  const pending = post(worker.url, 'sleep', '{}').catch(() => 'no answer');
  for (let i = 0; i < 200 && sandboxMounts(worker.stateDir).length === 0; i++)
    await new Promise((r) => setTimeout(r, 25));
  return { worker, pending };
}

async function settled(w: RunningWorker): Promise<void> {
  // A sandbox is destroyed just after its answer is sent; give the last one a moment.
  for (let i = 0; i < 200; i++) {
    const s = (await (await fetch(`${w.url}/status`)).json()) as { sandboxes: { alive: number } };
    if (s.sandboxes.alive === 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('sandboxes still alive');
}

const api = suite('worker: HTTP contract');
let w: RunningWorker;

api.before(async () => {
  w = await startWorker({ args: ['--timeout', '1500', '--memory-mb', '64', '--pids', '32', '--max-sandboxes', '4'] });
  lambda(w.registry, 'echo', 'def f(event):\n    return {"got": event}\n');
  lambda(w.registry, 'raise', 'def f(event):\n    raise ValueError("no such thing")\n');
  lambda(w.registry, 'bad', 'def f(event) oops\n');
  lambda(w.registry, 'nof', 'def g(event):\n    return 1\n');
  lambda(w.registry, 'hang', 'def f(event):\n    while True:\n        pass\n');
  lambda(w.registry, 'hog', 'def f(event):\n    x = []\n    while True:\n        x.append(bytearray(8 << 20))\n');
  lambda(
    w.registry,
    'fill',
    [
      'def f(event):',
      '    try:',
      '        with open("/tmp/big", "wb") as out:',
      '            for _ in range(256):',
      '                out.write(bytes(1 << 20))',
      '    except OSError as e:',
      '        return {"errno": e.errno}',
      '',
    ].join('\n'),
  );
  lambda(w.registry, 'segv', 'import ctypes\ndef f(event):\n    return ctypes.string_at(0)\n');
  lambda(
    w.registry,
    'bomb',
    [
      'import os, time',
      'def f(event):',
      '    n = 0',
      '    try:',
      '        while True:',
      '            if os.fork() == 0:',
      '                time.sleep(30)',
      '                os._exit(0)',
      '            n += 1',
      '    except OSError as e:',
      '        return {"forked": n, "errno": e.errno}',
      '',
    ].join('\n'),
  );
});

api.after(async () => {
  assert.is(await w.stop('SIGTERM'), 0, w.log());
  assert.equal(
    mountsUnder(fs.realpathSync(w.stateDir)),
    [],
    'a clean shutdown leaves no mount under the state directory',
  );
  assert.equal(poolCgroups(w.stateDir), [], 'and removes its cgroups');
});

api("POST /run/<name> answers 200 with the handler's JSON result", async () => {
  const r = await post(w.url, 'echo', '{"a": [1, 2, {"b": null}]}');
  assert.is(r.status, 200);
  assert.equal(r.body, { got: { a: [1, 2, { b: null }] } });
});

api('an empty body is the event {}, as in OpenLambda', async () => {
  assert.equal(await post(w.url, 'echo', ''), { status: 200, body: { got: {} } });
});

api('an unknown lambda is 404 with an error naming it', async () => {
  const r = await post(w.url, 'nosuch', '{}');
  assert.is(r.status, 404);
  assert.match(r.body.error, "no lambda named 'nosuch'");
});

api('a malformed body is 400', async () => {
  const r = await post(w.url, 'echo', '{"a": ');
  assert.is(r.status, 400);
  assert.match(r.body.error, 'not JSON');
});

api('a handler exception is 500 with its type, message and traceback', async () => {
  const r = await post(w.url, 'raise', '{}');
  assert.is(r.status, 500);
  assert.is(r.body.kind, 'exception');
  assert.match(r.body.error, 'ValueError: no such thing');
  assert.match(r.body.traceback, 'f.py');
});

api('an f.py that does not compile, or defines no f, is a 500 bad-handler', async () => {
  for (const name of ['bad', 'nof']) {
    const r = await post(w.url, name, '{}');
    assert.is(r.status, 500);
    assert.is(r.body.kind, 'bad-handler', JSON.stringify(r.body));
  }
});

api('a handler that runs past the timeout is killed and answered 504', async () => {
  const t0 = Date.now();
  const r = await post(w.url, 'hang', '{}');
  assert.is(r.status, 504);
  assert.is(r.body.kind, 'timeout');
  assert.match(r.body.error, '1500 ms');
  assert.ok(Date.now() - t0 < 6000);
});

api('a handler past its memory limit is reported as OOM, and the worker keeps serving', async () => {
  const r = await post(w.url, 'hog', '{}');
  assert.is(r.status, 500);
  assert.is(r.body.kind, 'oom', JSON.stringify(r.body));
  assert.is((await post(w.url, 'echo', '1')).status, 200);
});

api('a fork bomb is stopped at the pids limit and the host is untouched', async () => {
  const r = await post(w.url, 'bomb', '{}');
  assert.is(r.status, 200, JSON.stringify(r.body));
  assert.is(r.body.errno, 11, 'fork fails with EAGAIN');
  assert.ok(r.body.forked < 32, `forked ${r.body.forked}`);
  assert.is((await post(w.url, 'echo', '2')).status, 200);
});

api("a handler filling /tmp is stopped by its own memory limit, not by the host's disk", async () => {
  const r = await post(w.url, 'fill', '{}');
  assert.ok((r.status === 200 && r.body.errno === 28) || r.body.kind === 'oom', JSON.stringify(r.body));
  assert.is((await post(w.url, 'echo', '3')).status, 200);
});

api('a handler that crashes the interpreter is a 502 crash', async () => {
  const r = await post(w.url, 'segv', '{}');
  assert.is(r.status, 502);
  assert.is(r.body.kind, 'crash');
  assert.match(r.body.error, 'signal 11');
});

api('a lambda that declares packages is refused clearly while there is no install cache', async () => {
  lambda(w.registry, 'needs', 'import numpy\ndef f(event):\n    return 1\n');
  fs.writeFileSync(path.join(w.registry, 'needs', 'requirements.txt'), '# pinned\nnumpy==1.24.2\n\n');
  const r = await post(w.url, 'needs', '{}');
  assert.is(r.status, 501);
  assert.is(r.body.kind, 'packages');
  assert.match(r.body.error, 'numpy==1.24.2');
});

api('a new version of a lambda, and a lambda added while running, are served without a restart', async () => {
  lambda(w.registry, 'fresh', 'def f(event):\n    return "v1"\n');
  assert.equal((await post(w.url, 'fresh', '')).body, 'v1');
  lambda(w.registry, 'fresh', 'def f(event):\n    return "version two"\n');
  assert.equal((await post(w.url, 'fresh', '')).body, 'version two');
});

api('dozens of simultaneous invocations are all answered correctly, queued beyond the sandbox limit', async () => {
  const n = 40;
  const answers = await Promise.all(Array.from({ length: n }, (_, i) => post(w.url, 'echo', JSON.stringify({ i }))));
  answers.forEach((r, i) => assert.equal(r, { status: 200, body: { got: { i } } }));
});

api('GET /status reports sandboxes, memory and caches; nothing is left busy after the faults', async () => {
  await settled(w);
  const s = (await (await fetch(`${w.url}/status`)).json()) as any;
  assert.is(s.sandboxes.alive, 0);
  assert.is(s.sandboxes.pool.free, s.sandboxes.pool.size);
  assert.is(s.sandboxes.created, s.sandboxes.destroyed);
  assert.ok(s.memory.workerRssBytes > 0);
  assert.equal(s.caches, { handler: 'off', install: 'off', import: 'off' });
  assert.ok(s.worker.lambdas.includes('echo'));
  assert.equal(tasksIn(poolCgroups(w.stateDir)), [], 'no task left in a pool cgroup');
  assert.equal(sandboxMounts(w.stateDir), [], 'no sandbox mount left');
});

api.run();

const crash = suite('worker: after a crash');

crash("a killed worker's sandboxes die with it, and the next worker removes its mounts and cgroups", async () => {
  const { worker: first, pending } = await busyWorker();
  assert.ok(sandboxMounts(first.stateDir).length > 0, 'the sandbox is up');
  await first.stop('SIGKILL');
  await pending;
  assert.ok(sandboxMounts(first.stateDir).length > 0, 'a SIGKILLed worker cannot unmount');
  // The sandbox's first process had PR_SET_PDEATHSIG: killing it ends its PID namespace.
  for (let i = 0; i < 200 && tasksIn(poolCgroups(first.stateDir)).length > 0; i++)
    await new Promise((r) => setTimeout(r, 25));
  assert.equal(tasksIn(poolCgroups(first.stateDir)), []);
  const second = await startWorker({ registry: first.registry, stateDir: first.stateDir });
  assert.match(second.log(), 'removed what a previous engine left');
  assert.equal(sandboxMounts(second.stateDir), []);
  lambda(second.registry, 'ok', 'def f(event):\n    return "ok"\n');
  assert.equal(await post(second.url, 'ok', ''), { status: 200, body: 'ok' });
  assert.is(await second.stop('SIGINT'), 0);
  assert.equal(mountsUnder(fs.realpathSync(second.stateDir)), []);
  assert.equal(poolCgroups(second.stateDir), []);
});

crash('sock gc removes what a killed worker left, and refuses while a worker runs', async () => {
  const { worker: w1, pending } = await busyWorker();
  const refused = await sock(['gc', '--state-dir', w1.stateDir]);
  assert.is(refused.code, 1);
  assert.match(refused.stderr, 'in use by a running engine');
  await w1.stop('SIGKILL');
  await pending;
  const gc = await sock(['gc', '--state-dir', w1.stateDir]);
  assert.is(gc.code, 0, gc.stderr);
  assert.match(gc.stderr, 'mounts under');
  assert.equal(mountsUnder(fs.realpathSync(w1.stateDir)), []);
  assert.equal(poolCgroups(w1.stateDir), []);
});

crash('Ctrl-C under load answers every request (200 or 503) and leaves nothing behind', async () => {
  const busy = await startWorker({ args: ['--max-sandboxes', '2'] });
  lambda(busy.registry, 'slow', 'import time\ndef f(event):\n    time.sleep(0.4)\n    return event\n');
  let answered = 0;
  const answers = Array.from({ length: 12 }, (_, i) =>
    post(busy.url, 'slow', String(i))
      .then(
        (r) => r.status,
        (e) => `no answer: ${(e as Error).message}`,
      )
      .finally(() => answered++),
  );
  // Stopped once every request has reached the worker (a connection it never accepted cannot
  // be answered at all): on a slow machine, an emulated one, that takes more than a moment.
  for (let i = 0; i < 500; i++) {
    const { queue } = (
      (await (await fetch(`${busy.url}/status`)).json()) as { worker: { queue: { running: number; waiting: number } } }
    ).worker;
    if (queue.running + queue.waiting + answered >= 12) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.is(await busy.stop('SIGINT'), 0, busy.log());
  const statuses = await Promise.all(answers);
  for (const s of statuses) assert.ok(s === 200 || s === 503, String(s));
  assert.ok(statuses.includes(503), 'queued requests were refused, not dropped');
  assert.equal(mountsUnder(fs.realpathSync(busy.stateDir)), []);
  assert.equal(poolCgroups(busy.stateDir), []);
});

crash.run();

function sock(
  args: string[],
  options: { uid?: number; gid?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SOCK_CLI, ...args], options, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const cli = suite('sock CLI');

cli('sock invoke and sock status reach the worker of a state directory', async () => {
  const w2 = await startWorker();
  lambda(w2.registry, 'add', 'def f(event):\n    return event["a"] + event["b"]\n');
  const r = await sock(['invoke', 'add', '{"a": 2, "b": 3}', '--state-dir', w2.stateDir]);
  assert.equal(r, { code: 0, stdout: '5\n', stderr: '' });
  const missing = await sock(['invoke', 'nosuch', '--state-dir', w2.stateDir]);
  assert.is(missing.code, 1);
  assert.match(missing.stderr, 'HTTP 404');
  const status = await sock(['status', '--state-dir', w2.stateDir]);
  assert.is(status.code, 0);
  assert.ok(JSON.parse(status.stdout).sandboxes.pool.size >= 1);
  assert.is(await w2.stop(), 0);
});

for (const [args, mention, code] of [
  [['worker', 'up'], 'registry', 2],
  [['worker', 'up', '--registry', '/nonexistent-registry'], 'not a directory', 2],
  [['worker', 'up', '--registry', '/tmp', '--port', 'abc'], '--port', 2],
  [['invoke', 'x', '{not json'], 'not JSON', 2],
  [
    ['worker', 'up', '--registry', '/tmp', '--base', '/nonexistent-base', '--state-dir', '/tmp/sock-none'],
    'no usable base',
    3,
  ],
  [['invoke', 'x', '--port', '1'], 'no worker answers', 1],
] as [string[], string, number][]) {
  cli(`sock ${args.join(' ')}: exit ${code}, one line naming ${mention}`, async () => {
    const r = await sock(args);
    assert.is(r.code, code, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, mention);
  });
}

cli('sock worker up as a user without root is refused with exit 3', async () => {
  const r = await sock(
    ['worker', 'up', '--registry', '/tmp', '--base', BASE, '--state-dir', '/tmp/sock-unprivileged'],
    { uid: 65534, gid: 65534 },
  );
  assert.is(r.code, 3, r.stderr);
  assert.match(r.stderr, 'must run as root');
  assert.not.ok(fs.existsSync('/tmp/sock-unprivileged'));
});

cli.after(removeScratch);

cli.run();
