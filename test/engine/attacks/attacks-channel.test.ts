// Attacks on the reply channel between the worker and a sandbox (or a zygote), performed for
// real: hostile handlers and hostile packages that write to their Unix socket behind the
// runtime's back. Each attack worked on the previous channel (a string rescanned per chunk,
// lines kept for whoever asked next): a reply without a newline stalled the worker's event loop
// for seconds, a stray line became a later caller's answer, a garbage line was noticed only
// seconds later. Here each is refused at once and the sandbox or zygote destroyed.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SockEngine } from '../../../engine/sandbox/sockEngine.js';
import { handler } from '../../helpers/sandboxBehaviour.js';
import {
  BASE,
  engineScratch,
  lambda,
  postStarted as post,
  removeScratch,
  SOCK_CLI,
  startWorker,
  type RunningWorker,
} from '../../helpers/sockWorker.js';
import { wheelWithInit } from '../../helpers/wheelhouse.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Python: the runtime's socket to the worker, found the way hostile code finds it, in a caller's frame. */
const CONN_FD = `
import os, sys, threading, time
def conn_fd():
    frame = sys._getframe()
    while "conn" not in frame.f_locals:
        frame = frame.f_back
    return frame.f_locals["conn"].fileno()
`;

/** 50 MiB straight to the socket, in 64 KiB writes, with no newline. */
const FLOOD = `${CONN_FD}
def flood(fd):
    block = b"x" * (1 << 16)
    for _ in range(800):
        os.write(fd, block)
`;

/** Runs no-op requests back to back until `until` settles; the time each took, in ms. */
async function noopsWhile(url: string, until: Promise<unknown>, atLeastMs: number): Promise<number[]> {
  let settled = false;
  until.then(
    () => (settled = true),
    () => (settled = true),
  );
  const started = performance.now();
  const took: number[] = [];
  while (!settled || performance.now() - started < atLeastMs) {
    const t0 = performance.now();
    const r = await post(url, 'noop', '');
    assert.is(r.status, 200, JSON.stringify(r.body));
    took.push(performance.now() - t0);
    await sleep(20);
  }
  return took;
}

/** Waits until no request holds a sandbox: an instance that answered is frozen in the handler cache by then, or gone. */
async function idleAgain(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const s = (await (await fetch(`${url}/status`)).json()) as { worker: { queue: { running: number } } };
    if (s.worker.queue.running === 0) return;
    await sleep(10);
  }
  throw new Error('a sandbox is still held after 2 s');
}

async function waitForLog(w: RunningWorker, pattern: RegExp, ms: number): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end && !pattern.test(w.log());) await sleep(50);
  assert.match(w.log(), pattern);
}

const replies = suite("channel attacks: a handler's reply");
let w: RunningWorker;

replies.before(async () => {
  // The handler cache on: a kept instance is where a stray line could reach a later caller.
  w = await startWorker({
    caches: true,
    args: ['--zygotes', 'off', '--installer', 'off', '--timeout', '10000', '--max-sandboxes', '4'],
  });
  lambda(w.registry, 'noop', 'def f(event):\n    return None\n');
  lambda(w.registry, 'flood', `${FLOOD}\ndef f(event):\n    flood(conn_fd())\n    return "sent"\n`);
  lambda(w.registry, 'big', 'def f(event):\n    return "x" * (20 << 20)\n');
  lambda(
    w.registry,
    'forge',
    [
      'import sys',
      'def f(event):',
      '    main = sys.modules["server"]  # the runtime itself, its send() patched from inside',
      '    if not getattr(main, "forging", False):',
      '        real = main.send',
      '        def send(conn, line):',
      '            real(conn, line + "\\n" + \'{"id": "00000000-0000-4000-8000-000000000000", "result": "pwned"}\')',
      '        main.send = send',
      '        main.forging = True',
      '    return event',
      '',
    ].join('\n'),
  );
  lambda(
    w.registry,
    'garbage',
    `${CONN_FD}\ndef f(event):\n    os.write(conn_fd(), b"this is not JSON\\n")\n    time.sleep(30)\n`,
  );
  lambda(
    w.registry,
    'fieldless',
    `${CONN_FD}\ndef f(event):\n    os.write(conn_fd(), b'{"surprise": true}\\n')\n    time.sleep(30)\n`,
  );
  assert.is((await post(w.url, 'noop', '')).status, 200, 'noop is warm from here on');
});

replies.after(async () => {
  assert.is(await w.stop('SIGTERM'), 0, w.log());
});

replies(
  "50 MB without a newline fails fast as reply-too-large, and another lambda's requests answer promptly meanwhile",
  async () => {
    const t0 = performance.now();
    const flooding = post(w.url, 'flood', '');
    const noops = await noopsWhile(w.url, flooding, 300);
    const r = await flooding;
    const elapsed = performance.now() - t0;
    assert.ok(Math.max(...noops) < 1000, `no-op latencies (ms): ${noops.map((t) => t.toFixed(0)).join(' ')}`);
    assert.is(r.status, 502, JSON.stringify(r.body));
    assert.is(r.body.kind, 'reply-too-large');
    assert.match(r.body.error, String(6 * 2 ** 20));
    assert.ok(elapsed < 5000, `the flood was refused after ${elapsed.toFixed(0)} ms`);
    assert.ok(noops.length >= 3, `no-ops answered: ${noops.length}`);
  },
);

replies("a 20 MB result is refused as reply-too-large; the lambda's next request gets a new instance", async () => {
  const r = await post(w.url, 'big', '');
  assert.is(r.status, 502, JSON.stringify(r.body).slice(0, 300));
  assert.is(r.body.kind, 'reply-too-large');
  assert.not.match(r.body.error, '\n');
  assert.is((await post(w.url, 'noop', '')).status, 200);
});

replies(
  'an extra line after an answer never reaches the next caller: the violation is logged and the instance replaced',
  async () => {
    // The first call installs the forger, which sends a forged line after each answer from then on.
    const answers = [];
    for (const event of ['first', 'second', 'third']) {
      answers.push(await post(w.url, 'forge', JSON.stringify(event)));
      await idleAgain(w.url);
    }
    assert.equal(
      answers.map((a) => a.body),
      ['first', 'second', 'third'],
      'no caller was handed "pwned"',
    );
    assert.equal(
      answers.map((a) => a.status),
      [200, 200, 200],
    );
    assert.is(answers[1]!.start, 'warm');
    assert.is.not(answers[2]!.start, 'warm', 'the instance that forged was not kept');
    await waitForLog(w, /sb-\d+ sent .*while no request was outstanding.*destroyed/, 3000);
  },
);

replies('a line that is not JSON fails the request at once (not at the timeout) and names what came', async () => {
  const t0 = performance.now();
  const r = await post(w.url, 'garbage', '');
  assert.is(r.status, 502, JSON.stringify(r.body));
  assert.is(r.body.kind, 'protocol');
  assert.match(r.body.error, 'not JSON');
  assert.match(r.body.error, 'this is not JSON');
  assert.not.match(r.body.error, '\n');
  assert.ok(performance.now() - t0 < 3000, `answered after ${(performance.now() - t0).toFixed(0)} ms`);
});

replies("JSON without the request's id and fields fails the request at once", async () => {
  const t0 = performance.now();
  const r = await post(w.url, 'fieldless', '');
  assert.is(r.status, 502, JSON.stringify(r.body));
  assert.is(r.body.kind, 'protocol');
  assert.match(r.body.error, 'surprise');
  assert.ok(performance.now() - t0 < 3000);
});

replies.run();

const idle = suite('channel attacks: between requests, and before the first');

idle(
  'is noticed when it arrives: the sandbox is destroyed, and a later invocation is refused, never handed the line',
  async () => {
    const engine = await SockEngine.start({ stateDir: engineScratch(), base: BASE, capacity: 1 });
    try {
      const code = handler(`${CONN_FD}
def f(event):
    fd = conn_fd()
    def later():
        time.sleep(0.3)
        os.write(fd, b'{"result": "pwned"}\\n')
    threading.Thread(target=later).start()
    return "ok"
`);
      const sandbox = await engine.create({ code, packages: {} });
      assert.is(await sandbox.invoke(null, 10_000), 'ok');
      for (let i = 0; i < 100 && engine.status().alive > 0; i++) await sleep(30);
      assert.is(engine.status().alive, 0, 'destroyed once the line came, before any request');
      assert.is(sandbox.alive, false);
      let refused: { kind?: string; message?: string } = {};
      try {
        refused = { message: `answered ${JSON.stringify(await sandbox.invoke(null, 10_000))}` };
      } catch (e) {
        refused = e as typeof refused;
      }
      assert.is(refused.kind, 'protocol', refused.message);
      assert.match(refused.message!, 'while no request was outstanding');
    } finally {
      await engine.shutdown();
    }
  },
);

idle(
  "a runtime that connects and then hangs in the handler's import, saying nothing, is refused at the start timeout",
  async () => {
    const engine = await SockEngine.start({ stateDir: engineScratch(), base: BASE, capacity: 1, startTimeoutMs: 1500 });
    try {
      const t0 = performance.now();
      let kind = 'made';
      let message = '';
      // Bounded here too: without the start timeout the create would wait for ever.
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(Object.assign(new Error('create still waiting after 10 s'), { kind: 'hung' })),
          10_000,
        );
      });
      try {
        await Promise.race([engine.create({ code: handler('while True:\n    pass\n'), packages: {} }), hung]);
      } catch (e) {
        ({ kind, message } = e as { kind: string; message: string });
      } finally {
        clearTimeout(timer);
      }
      assert.is(kind, 'sandbox', message);
      assert.match(message, 'did not load its handler within 1500 ms');
      assert.ok(performance.now() - t0 < 5000);
      assert.is(engine.status().alive, 0);
    } finally {
      await engine.shutdown();
    }
  },
);

idle.after(removeScratch);

idle.run();

const zygotes = suite('channel attacks: a hostile package in a zygote');
let z: RunningWorker;
let wheels: string;

/** Python for a package's __init__: at import (in its zygote) find the zygote's socket, and after a delay write to it from a thread. */
const noisyPackage = (delay: number, write: string) => `${FLOOD}
fd = conn_fd()
def later():
    time.sleep(${delay})
    ${write}
threading.Thread(target=later, daemon=True).start()
`;

zygotes.before(async () => {
  wheels = fs.mkdtempSync('/tmp/sb-test-wheels-');
  // pip runs as the install user: the wheel directory must be readable by others.
  fs.chmodSync(wheels, 0o755);
  wheelWithInit(wheels, 'sbgarbage', '1.0', noisyPackage(1.0, 'os.write(fd, b"garbage from a package\\n")'));
  wheelWithInit(wheels, 'sbflood', '1.0', noisyPackage(0.5, 'flood(fd)'));
  z = await startWorker({
    caches: true,
    args: ['--installer', 'pip', '--pip-find-links', wheels, '--zygote-threshold', '1', '--handler-cache', 'off'],
  });
  lambda(z.registry, 'noop', 'def f(event):\n    return None\n');
  for (const [name, pkg] of [
    ['garbage1', 'sbgarbage'],
    ['garbage2', 'sbgarbage'],
    ['flooder', 'sbflood'],
  ]) {
    lambda(z.registry, name!, `import ${pkg}\ndef f(event):\n    return "${name}"\n`);
    fs.writeFileSync(path.join(z.registry, name!, 'requirements.txt'), `${pkg}\n`);
  }
  assert.is((await post(z.url, 'noop', '')).status, 200);
});

zygotes.after(async () => {
  assert.is(await z.stop('SIGTERM'), 0, z.log());
  fs.rmSync(wheels, { recursive: true, force: true });
});

zygotes(
  'a garbage line from an idle zygote destroys it when it arrives; the next fork of its packages still answers',
  async () => {
    assert.equal((await post(z.url, 'garbage1', '')).status, 200);
    await waitForLog(z, /zygote zy-\d+ \(sbgarbage\) sent .*while no request was outstanding/, 5000);
    const r = await post(z.url, 'garbage2', '');
    assert.equal(
      [r.status, r.body],
      [200, 'garbage2'],
      "forked from a new zygote, never handed the garbage as its fork's answer",
    );
  },
);

zygotes('50 MB from a zygote is cut off at the limit, and other requests answer promptly meanwhile', async () => {
  const made = post(z.url, 'flooder', '');
  assert.is((await made).status, 200);
  const noops = await noopsWhile(
    z.url,
    waitForLog(z, /zygote zy-\d+ \(sbflood\) sent a line longer than/, 10_000),
    1000,
  );
  assert.ok(Math.max(...noops) < 1000, `no-op latencies (ms): ${noops.map((t) => t.toFixed(0)).join(' ')}`);
});

zygotes.run();

const flag = suite('channel attacks: --max-reply-bytes');

flag("the limit is the worker's flag: a reply under it passes, one over it is refused naming it", async () => {
  const small = await startWorker({ args: ['--max-reply-bytes', '65536'] });
  try {
    lambda(small.registry, 'sized', 'def f(event):\n    return "x" * event\n');
    assert.is((await post(small.url, 'sized', '60000')).status, 200);
    const r = await post(small.url, 'sized', '70000');
    assert.is(r.status, 502);
    assert.is(r.body.kind, 'reply-too-large');
    assert.match(r.body.error, '65536');
  } finally {
    assert.is(await small.stop(), 0);
  }
});

flag('a limit too small for a hello is refused: exit 2, one line naming the flag', async () => {
  const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [SOCK_CLI, 'worker', 'up', '--registry', '/tmp', '--max-reply-bytes', '10'],
      (err, _out, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr });
      },
    );
  });
  assert.is(r.code, 2, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, '--max-reply-bytes');
});

flag.after(removeScratch);

flag.run();
