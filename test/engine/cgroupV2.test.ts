// What the engine does only on cgroup v2, tried for real where the engine takes v2 (a v2-only
// host; here, the guest `npm run test:cgroup2` boots): delegation from the root and from a
// cgroup of the worker's own (moving itself into a leaf), and its two refusals; lean sandboxes
// born in their cgroup (clone3 with CLONE_INTO_CGROUP); pause through cgroup.freeze and
// cgroup.events; emptying through cgroup.kill; the OOM kill read from memory.events.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { test } from 'uvu';
import {
  DEFAULT_LIMITS,
  findHierarchies,
  removeCgroupTree,
  type Hierarchy,
} from '../../engine/cgroups/cgroupHierarchy.js';
import { SELF_LEAF } from '../../engine/cgroups/cgroupDelegation.js';
import { chooseHierarchy, PooledCgroup } from '../../engine/cgroups/cgroupPool.js';
import { SockEngine } from '../../engine/sandbox/sockEngine.js';
import { StateDir } from '../../engine/state/stateDir.js';
import { engineCgroupRow } from '../../app/doctor.js';
import { skipWith } from '../helpers/helpers.js';
import { handler } from '../helpers/sandboxBehaviour.js';
import {
  BASE,
  engineScratch,
  inCgroup,
  lambda,
  post,
  removeScratch,
  startWorker,
  workerArgv,
} from '../helpers/sockWorker.js';

/** Why these tests cannot run here, or undefined where the engine would take cgroup v2. */
function whyNot(): string | undefined {
  let chosen: Hierarchy;
  try {
    chosen = chooseHierarchy();
  } catch (e) {
    return (e as Error).message;
  }
  if (chosen.version === 2) return undefined;
  const v2 = findHierarchies().find((h) => h.version === 2);
  return `the engine takes cgroup v1 on this host (cgroup v2 ${v2 ? `at ${v2.roots.unified} has ${v2.controllers.join(', ') || 'no'} controllers of its own` : 'is not mounted'}); npm run test:cgroup2 runs these in a v2-only guest`;
}

const why = whyNot();
const v2test = skipWith(why);
const MOUNT = why ? '' : chooseHierarchy(2).roots.unified!;
const read = (file: string) => fs.readFileSync(file, 'utf8').trim();
const words = (file: string) => read(file).split(/\s+/).filter(Boolean);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pooled cgroups of parent that hold a task now. */
const populated = (parent: string) =>
  fs
    .readdirSync(parent)
    .filter((n) => n.startsWith('pool-') && read(path.join(parent, n, 'cgroup.procs')) !== '')
    .map((n) => path.join(parent, n));
const usageUsec = (dir: string) => Number(/^usage_usec (\d+)$/m.exec(read(path.join(dir, 'cpu.stat')))![1]);

const CGROUP_OF = `
def f(event):
    return open("/proc/self/cgroup").read().strip()
`;

v2test(
  'the pool goes where delegation puts it (here, the root), with memory and pids enabled below it; a lean sandbox is born in its cgroup (clone3 CLONE_INTO_CGROUP) with its limits; shutdown removes the pool',
  async () => {
    const engine = await SockEngine.start({ stateDir: engineScratch(), base: BASE, capacity: 1 });
    const status = engine.status();
    const parent = status.cgroupParent as string;
    try {
      assert.is(status.cgroupVersion, 2);
      assert.is(status.cgroupEntry, 'clone3 CLONE_INTO_CGROUP');
      assert.ok(
        ['memory', 'pids'].every((c) => words(path.join(parent, 'cgroup.subtree_control')).includes(c)),
        "controllers enabled below the pool's parent",
      );
      const sandbox = await engine.create({ code: handler(CGROUP_OF), packages: {} });
      const seen = (await sandbox.invoke(null, 20_000)) as string;
      const [dir] = populated(parent);
      assert.is(seen, `0::/${path.relative(MOUNT, dir!)}`, 'the handler is in its pooled cgroup');
      assert.is(read(path.join(dir!, 'memory.max')), String(DEFAULT_LIMITS.memoryBytes));
      assert.is(read(path.join(dir!, 'pids.max')), String(DEFAULT_LIMITS.pids));
      await sandbox.destroy();
    } finally {
      await engine.shutdown();
    }
    assert.not.ok(fs.existsSync(parent), 'shutdown removed the pool');
  },
);

v2test(
  'pause freezes through cgroup.freeze: cgroup.events says frozen 1 and a spinning process gets no CPU; unpause thaws it',
  async () => {
    const engine = await SockEngine.start({ stateDir: engineScratch(), base: BASE, capacity: 1 });
    try {
      const sandbox = await engine.create({
        code: handler(`
import os
def f(event):
    if os.fork() == 0:
        while True:
            pass
    return "spinning"
`),
        packages: {},
      });
      assert.is(await sandbox.invoke(null, 20_000), 'spinning');
      const [dir] = populated(engine.status().cgroupParent as string);
      await sandbox.pause();
      assert.match(read(path.join(dir!, 'cgroup.events')), /^frozen 1$/m);
      const frozenAt = usageUsec(dir!);
      await sleep(300);
      assert.ok(usageUsec(dir!) - frozenAt < 5_000, `no CPU while frozen (${usageUsec(dir!) - frozenAt} µs)`);
      await sandbox.unpause();
      assert.match(read(path.join(dir!, 'cgroup.events')), /^frozen 0$/m);
      const thawedAt = usageUsec(dir!);
      await sleep(300);
      assert.ok(usageUsec(dir!) - thawedAt > 50_000, `it runs again (${usageUsec(dir!) - thawedAt} µs in 300 ms)`);
      await sandbox.destroy();
    } finally {
      await engine.shutdown();
    }
  },
);

v2test(
  'a cgroup on its way out is emptied by cgroup.kill, frozen and its tasks forking as fast as they can, and left thawed',
  async () => {
    const engine = await SockEngine.start({ stateDir: engineScratch(), base: BASE, capacity: 1 });
    const parent = engine.status().cgroupParent as string;
    try {
      const dir = path.join(parent, 'pool-0');
      // A process that forks sleepers as fast as it can, capped by the pool's pids.max.
      const forker = execFileSync(
        '/bin/sh',
        ['-c', `echo $$ > ${dir}/cgroup.procs; (while :; do sleep 60 & done) >/dev/null 2>&1 & echo $!`],
        { encoding: 'utf8' },
      ).trim();
      await sleep(200);
      fs.writeFileSync(path.join(dir, 'cgroup.freeze'), '1');
      const cg = new PooledCgroup(
        { version: 2, roots: { unified: parent }, controllers: ['memory', 'pids'] },
        { unified: dir },
      );
      assert.is(cg.killMethod('remove'), 'cgroup.kill');
      assert.ok(cg.pids().length > 5, `it forked (${cg.pids().length} tasks)`);
      await cg.empty(5_000, 'remove');
      assert.equal(cg.pids(), []);
      assert.match(read(path.join(dir, 'cgroup.events')), /^frozen 0$/m);
      assert.not.ok(cg.pids().includes(Number(forker)), 'the forker is gone');
    } finally {
      await engine.shutdown();
    }
  },
);

v2test(
  'a cgroup given back to the pool takes the next sandbox, born there again (a cgroup.kill would make the kernel kill it at birth)',
  async () => {
    const engine = await SockEngine.start({ stateDir: engineScratch(), base: BASE, capacity: 1 });
    try {
      const seen: string[] = [];
      for (let i = 0; i < 3; i++) {
        const sandbox = await engine.create({ code: handler(CGROUP_OF), packages: {} });
        seen.push((await sandbox.invoke(null, 20_000)) as string);
        await sandbox.destroy();
      }
      assert.is(new Set(seen).size, 1, `one pooled cgroup, three sandboxes: ${seen.join(', ')}`);
    } finally {
      await engine.shutdown();
    }
  },
);

v2test(
  'an OOM kill is read from memory.events: the invocation fails with kind oom and oom_kill counts it',
  async () => {
    const engine = await SockEngine.start({
      stateDir: engineScratch(),
      base: BASE,
      capacity: 1,
      limits: { ...DEFAULT_LIMITS, memoryBytes: 48 * 2 ** 20 },
    });
    try {
      const sandbox = await engine.create({
        code: handler(`
def f(event):
    hog = bytearray(200 * 2 ** 20)
    return len(hog)
`),
        packages: {},
      });
      const [dir] = populated(engine.status().cgroupParent as string);
      const kind = await sandbox.invoke(null, 20_000).then(
        () => 'no failure',
        (e) => e.kind,
      );
      assert.is(kind, 'oom');
      assert.ok(
        Number(/^oom_kill (\d+)$/m.exec(read(path.join(dir!, 'memory.events')))![1]) >= 1,
        'memory.events counted the kill',
      );
      await sandbox.destroy();
    } finally {
      await engine.shutdown();
    }
  },
);

v2test('doctor says the engine takes v2 here and where its pool goes', () => {
  const r = engineCgroupRow();
  assert.is(r.status, 'ok', r.detail);
  assert.match(r.detail, /^v2; (pool under the root|delegated)/);
});

/** A cgroup directory for a test (under the hierarchy's root), removed by the test. */
function testCgroup(name: string): string {
  const dir = path.join(MOUNT, `sb-test-${name}-${process.pid}`);
  fs.mkdirSync(dir);
  return dir;
}

/** Every cgroup directory at and below dir, deepest first. */
function cgroupsUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => [...cgroupsUnder(path.join(dir, e.name)), path.join(dir, e.name)]);
}

function removeCgroups(dir: string): void {
  if (fs.existsSync(dir)) removeCgroupTree(dir);
}

/** A service's cgroup, under a root that enables memory and pids for its children as systemd's does on a v2 host. */
function serviceCgroup(label: string): string {
  fs.writeFileSync(path.join(MOUNT, 'cgroup.subtree_control'), '+memory +pids');
  return testCgroup(label);
}

/** A registry with one lambda, `where`, that answers with its own cgroup. */
function whereRegistry(): string {
  const registry = engineScratch();
  lambda(registry, 'where', CGROUP_OF);
  return registry;
}

v2test(
  'delegated: a worker started in a cgroup of its own moves into a leaf, makes its pool beside it, serves from there, and on SIGTERM leaves the cgroup as it found it',
  async () => {
    const service = serviceCgroup('service');
    try {
      const worker = await startWorker({ registry: whereRegistry(), cgroup: service });
      try {
        const name = new StateDir(worker.stateDir).cgroupName;
        assert.is(
          read(`/proc/${worker.proc.pid}/cgroup`),
          `0::/${path.relative(MOUNT, path.join(service, SELF_LEAF))}`,
          'the worker moved into its leaf',
        );
        assert.ok(
          ['memory', 'pids'].every((c) => words(path.join(service, 'cgroup.subtree_control')).includes(c)),
          'and enabled the controllers below its cgroup',
        );
        assert.ok(fs.existsSync(path.join(service, name)), 'the pool is beside the leaf');
        const r = await post(worker.url, 'where', '{}');
        assert.is(r.status, 200, JSON.stringify(r.body));
        assert.match(r.body, `0::/${path.relative(MOUNT, path.join(service, name))}/pool-`);
      } finally {
        assert.is(await worker.stop(), 0, worker.log());
      }
      assert.equal(cgroupsUnder(service), [], 'no cgroup left below it');
      assert.equal(words(path.join(service, 'cgroup.subtree_control')), [], 'its controllers disabled again');
      assert.is(read(path.join(service, 'cgroup.procs')), '', 'and the worker gone');
    } finally {
      removeCgroups(service);
    }
  },
);

v2test(
  'delegated, after kill -9: the next worker, started in the leaf the dead one left, takes it as its own, removes the dead pool and serves',
  async () => {
    const service = serviceCgroup('crashed');
    try {
      const registry = whereRegistry();
      const first = await startWorker({ registry, cgroup: service });
      const name = new StateDir(first.stateDir).cgroupName;
      assert.is((await post(first.url, 'where', '{}')).status, 200);
      await first.stop('SIGKILL');
      assert.ok(fs.existsSync(path.join(service, name)), 'the dead worker left its pool');
      const leaf = path.join(service, SELF_LEAF);
      const second = await startWorker({ registry, stateDir: first.stateDir, cgroup: leaf });
      try {
        assert.is(read(`/proc/${second.proc.pid}/cgroup`), `0::/${path.relative(MOUNT, leaf)}`);
        assert.match(second.log(), 'removed what a previous engine left');
        const r = await post(second.url, 'where', '{}');
        assert.is(r.status, 200, JSON.stringify(r.body));
        assert.match(r.body, `0::/${path.relative(MOUNT, path.join(service, name))}/pool-`);
      } finally {
        assert.is(await second.stop(), 0, second.log());
      }
      assert.not.ok(fs.existsSync(path.join(service, name)), 'its pool is gone after a clean stop');
    } finally {
      for (const d of [...cgroupsUnder(service), service]) {
        for (const pid of read(path.join(d, 'cgroup.procs')).split('\n').filter(Boolean))
          process.kill(Number(pid), 'SIGKILL');
      }
      await sleep(200);
      removeCgroups(service);
    }
  },
);

/** `sock worker up` run to its end in the cgroup dir: exit code and stderr. */
function workerIn(dir: string): Promise<{ code: number; stderr: string }> {
  const [command, ...args] = inCgroup(dir, workerArgv(engineScratch(), engineScratch()));
  return new Promise((resolve) =>
    execFile(command!, args, (err, _stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
    ),
  );
}

v2test(
  'not delegated: a worker in a cgroup whose parent enables no memory and pids is refused with exit 3 and one line saying how to grant them',
  async () => {
    const parent = testCgroup('undelegated');
    try {
      const service = path.join(parent, 'service');
      fs.mkdirSync(service);
      const r = await workerIn(service);
      assert.is(r.code, 3, r.stderr);
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, `${service} was not delegated memory and pids`);
      assert.match(r.stderr, `echo '+memory +pids' > ${path.join(parent, 'cgroup.subtree_control')}`);
      assert.match(r.stderr, 'Delegate=yes');
      assert.equal(cgroupsUnder(service), [], 'nothing made below it');
    } finally {
      removeCgroups(parent);
    }
  },
);

v2test(
  'shared: a worker in a cgroup that holds a process it did not start is refused with exit 3 and one line; that process is left where it was',
  async () => {
    const service = serviceCgroup('shared');
    const other = execFileSync(
      '/bin/sh',
      ['-c', `echo $$ > ${service}/cgroup.procs; sleep 60 >/dev/null 2>&1 & echo $!`],
      { encoding: 'utf8' },
    ).trim();
    try {
      const r = await workerIn(service);
      assert.is(r.code, 3, r.stderr);
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, `${service} also holds processes it did not start (${other})`);
      assert.equal(cgroupsUnder(service), [], 'nothing made below it');
      assert.is(read(path.join(service, 'cgroup.procs')), other, 'the other process stays');
    } finally {
      process.kill(Number(other), 'SIGKILL');
      for (let i = 0; i < 100 && read(path.join(service, 'cgroup.procs')) !== ''; i++) await sleep(20);
      removeCgroups(service);
    }
  },
);

test.after(() => removeScratch());

test.run();
