// The handler cache: a frozen instance really uses no CPU and a thawed one runs again; hits,
// invalidation by a new version, and eviction by count and by memory.
import fs from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { HandlerCache } from '../../engine/caches/handlerCache.js';
import { mountsUnder } from '../../engine/state/mountinfo.js';
import { SockEngine } from '../../engine/sandbox/sockEngine.js';
import { handler } from '../helpers/sandboxBehaviour.js';
import { BASE, engineScratch, removeScratch } from '../helpers/sockWorker.js';

const h = suite('handler cache');
let engine: SockEngine;

h.before(async () => {
  engine = await SockEngine.start({ stateDir: engineScratch(), base: BASE, capacity: 2, reserve: 2 });
});

h.after(async () => {
  const root = engine.state.root;
  await engine.shutdown();
  assert.equal(mountsUnder(root), []);
  removeScratch();
});

/** CPU time (user + system, in clock ticks) of the process whose comm is name. */
function cpuOf(name: string): number {
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== name) continue;
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(fields[11]) + Number(fields[12]);
    } catch {
      /* it ended meanwhile */
    }
  }
  throw new Error(`no process named ${name}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

h('a frozen instance uses no CPU; thawed, it runs again', async () => {
  const name = `spin${process.pid % 10000}`;
  const sb = await engine.create({
    code: handler(
      `import threading\ndef spin():\n    while True:\n        pass\ndef f(event):\n    open("/proc/self/comm", "w").write("${name}")\n    threading.Thread(target=spin, daemon=True).start()\n    return 1\n`,
    ),
    packages: {},
  });
  await sb.invoke(null, 5000);
  await sleep(200);
  const running = cpuOf(name);
  await sleep(500);
  assert.ok(cpuOf(name) - running >= 10, 'it spins while thawed (at least 0.1 s of CPU in 0.5 s)');
  await sb.pause();
  const frozen = cpuOf(name);
  await sleep(500);
  assert.is(cpuOf(name), frozen, 'not one tick while frozen');
  await sb.unpause();
  await sleep(500);
  assert.ok(cpuOf(name) - frozen >= 10, 'it spins again once thawed');
  await sb.destroy();
});

h(
  'the next request of a version gets the frozen instance back; a new version gets a new one and the old is destroyed',
  async () => {
    const cache = new HandlerCache(engine, { maxIdle: 2, budgetBytes: 2 ** 30 });
    const spec = { code: handler('def f(event):\n    return event\n'), packages: {} };
    const first = await cache.acquire('echo', 'v1', spec);
    assert.is(first.hit, false);
    assert.is(await first.sandbox.invoke(1, 5000), 1);
    await cache.release('echo', 'v1', first.sandbox);
    const second = await cache.acquire('echo', 'v1', spec);
    assert.is(second.hit, true);
    assert.is(second.sandbox.id, first.sandbox.id);
    assert.is(await second.sandbox.invoke(2, 5000), 2, 'thawed, it answers');
    await cache.release('echo', 'v1', second.sandbox);
    const third = await cache.acquire('echo', 'v2', spec);
    assert.is(third.hit, false);
    assert.is(cache.status().invalidated, 1);
    assert.is(engine.status().alive, 1, 'the v1 instance is gone');
    await third.sandbox.destroy();
    await cache.close();
  },
);

h(
  'a kept instance is frozen once idle for freezeAfterMs: no CPU from then on; asked for sooner, it is handed back never frozen',
  async () => {
    const name = `idle${process.pid % 10000}`;
    const cache = new HandlerCache(engine, { maxIdle: 1, budgetBytes: 2 ** 30, freezeAfterMs: 100 });
    const spec = {
      code: handler(
        `import threading\ndef spin():\n    while True:\n        pass\ndef f(event):\n    open("/proc/self/comm", "w").write("${name}")\n    threading.Thread(target=spin, daemon=True).start()\n    return 1\n`,
      ),
      packages: {},
    };
    const first = await cache.acquire('spin', 'v', spec);
    await first.sandbox.invoke(null, 5000);
    await cache.release('spin', 'v', first.sandbox);
    assert.is(cache.status().unfrozen, 1, 'kept, not yet frozen');
    const soon = await cache.acquire('spin', 'v', spec);
    assert.ok(soon.hit && soon.sandbox.id === first.sandbox.id);
    assert.is(cache.status().unfrozenHits, 1, 'handed back without a freeze or a thaw');
    await cache.release('spin', 'v', soon.sandbox);
    await sleep(400);
    assert.is(cache.status().unfrozen, 0, 'frozen after 100 ms idle');
    const frozen = cpuOf(name);
    await sleep(500);
    assert.is(cpuOf(name), frozen, 'not one tick once frozen');
    const late = await cache.acquire('spin', 'v', spec);
    assert.ok(late.hit, 'thawed and handed back');
    assert.is(cache.status().unfrozenHits, 1);
    await late.sandbox.destroy();
    await cache.close();
  },
);

h('beyond its size or its memory budget the least recently used instance is evicted', async () => {
  const cache = new HandlerCache(engine, { maxIdle: 1, budgetBytes: 2 ** 30 });
  const spec = { code: handler('def f(event):\n    return 0\n'), packages: {} };
  const a = await cache.acquire('a', 'v', spec);
  const b = await cache.acquire('b', 'v', spec);
  await cache.release('a', 'v', a.sandbox);
  await cache.release('b', 'v', b.sandbox);
  assert.is(cache.status().evicted, 1);
  assert.is((await cache.acquire('a', 'v', spec)).hit, false, 'a was evicted');
  await cache.close();
  const tight = new HandlerCache(engine, { maxIdle: 4, budgetBytes: 1024 });
  const c = await tight.acquire('c', 'v', spec);
  await tight.release('c', 'v', c.sandbox);
  assert.is(tight.status().idle, 0, 'an instance bigger than the whole budget is not kept');
  await tight.close();
  await sleep(100);
  assert.is(engine.status().alive, 1, 'only the instance acquired last and never released');
});

h.run();
