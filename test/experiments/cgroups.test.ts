// The cgroup study: a created cgroup really exists with its limits and is really gone after
// release; a pooled one is really reset; a moved process really lands; a dead run's cgroups
// are removed; bad input refused.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readCsv } from '../../harness/csv.js';
import { ownerTag } from '../../harness/ownedDirs.js';
import { createScript, moveScript, reuseScript, targetDirs } from '../../experiments/cgroups/hierarchies.js';
import {
  DEFAULT_LIMITS,
  findHierarchies,
  makeParents,
  removeCgroupTree,
  type Hierarchy,
} from '../../engine/cgroups/cgroupHierarchy.js';
import { ChurnRun, ScriptRun, type ScriptStep } from '../../native/index.js';
import { CLI, cli, onlyRun, refusesBadInput, scratchDir, skipWith } from '../helpers/helpers.js';

const once = (steps: ScriptStep[]) => new ScriptRun({ concurrency: 1, ops: 1, phases: [{ name: 'p', steps }] }).start();
const read = (file: string) => fs.readFileSync(file, 'utf8').trim();
const v1 = () => findHierarchies().find((h) => h.version === 1);
const v2 = () => findHierarchies().find((h) => h.version === 2);
const onV1 = skipWith(v1() ? undefined : 'no cgroup v1 hierarchy on this host');
const onV2 = skipWith(v2() ? undefined : 'no cgroup v2 hierarchy on this host');

function withParent(h: Hierarchy, body: (name: string, dirs: string[]) => Promise<void>) {
  const name = ownerTag('sockbench-cgroups-test');
  const dirs = makeParents(h, name);
  return body(name, dirs).finally(() => dirs.forEach(removeCgroupTree));
}

onV1('create (v1): the cgroup exists in every controller with its limits, and release removes it', async () => {
  const h = v1()!;
  await withParent(h, async (name) => {
    const script = createScript(h, name);
    await once(script.ready);
    const memory = path.join(h.roots.memory!, name, 'c0-0');
    assert.is(read(path.join(memory, 'memory.limit_in_bytes')), String(DEFAULT_LIMITS.memoryBytes));
    if (h.roots.pids) assert.is(read(path.join(h.roots.pids, name, 'c0-0', 'pids.max')), String(DEFAULT_LIMITS.pids));
    if (h.roots.cpu)
      assert.is(read(path.join(h.roots.cpu, name, 'c0-0', 'cpu.shares')), String(DEFAULT_LIMITS.cpuShares));
    await once(script.release);
    for (const c of h.controllers)
      assert.not.ok(fs.existsSync(path.join(h.roots[c]!, name, 'c0-0')), `${c} cgroup removed`);
  });
});

onV1(
  'reuse (v1): a pooled cgroup gets its limits back and a frozen one is thawed; one with a task is refused',
  async () => {
    const h = v1()!;
    await withParent(h, async (name) => {
      const script = reuseScript(h, name);
      await once(script.prepare);
      const pool = (c: string) => path.join(h.roots[c]!, name, 'pool-0');
      fs.writeFileSync(path.join(pool('memory'), 'memory.limit_in_bytes'), String(64 * 1024 * 1024));
      if (h.roots.freezer) fs.writeFileSync(path.join(pool('freezer'), 'freezer.state'), 'FROZEN');
      await once(script.ready);
      assert.is(read(path.join(pool('memory'), 'memory.limit_in_bytes')), String(DEFAULT_LIMITS.memoryBytes));
      if (h.roots.freezer) assert.is(read(path.join(pool('freezer'), 'freezer.state')), 'THAWED');
      await once(script.release);
      // A real leftover task: a sleeping child moved into the pooled memory cgroup.
      const child = execFileSync('sh', ['-c', `sleep 30 >/dev/null 2>&1 & echo $!`], { encoding: 'utf8' }).trim();
      fs.writeFileSync(path.join(pool('memory'), 'cgroup.procs'), child);
      try {
        let error: { code?: string; syscall?: string } = {};
        await once(script.release).catch((e) => (error = e));
        assert.is(error.code, 'ENOTEMPTY');
        assert.is(error.syscall, 'read');
      } finally {
        process.kill(Number(child), 'SIGKILL');
        for (let i = 0; i < 100 && read(path.join(pool('memory'), 'cgroup.procs')) !== ''; i++)
          await new Promise((r) => setTimeout(r, 20));
      }
      await once(script.cleanup);
    });
  },
);

test('move: the holder process really lands in the cgroup its pid is written to; cleanup leaves neither cgroup', async () => {
  const h = findHierarchies()[0]!;
  await withParent(h, async (name) => {
    const { prepare, toA, cleanup } = moveScript(h, name);
    const aProcs = (toA[0] as { path: string }).path;
    // Right after the move, an emptiness check of the destination must fail: a task is there.
    let error: { code?: string } = {};
    await new ScriptRun({
      concurrency: 1,
      ops: 1,
      holder: true,
      prepare,
      cleanup,
      phases: [{ name: 'a', steps: [...toA, { op: 'empty', path: aProcs }] }],
    })
      .start()
      .catch((e) => (error = e));
    assert.is(error.code, 'ENOTEMPTY');
    for (const step of prepare)
      assert.not.ok(fs.existsSync((step as { path: string }).path), 'the holder was killed, then both cgroups removed');
  });
});

// A child that lands in a frozen cgroup stops there until it is thawed: the operation then
// takes at least as long as the cgroup stays frozen. That shows where the child really went.
for (const how of ['intoCgroup', 'moveTo'] as const) {
  onV2(`clone (${how}): the new process really lands in the target cgroup`, async () => {
    const h = v2()!;
    await withParent(h, async (name) => {
      const [target] = targetDirs(h, name);
      fs.mkdirSync(target!);
      fs.writeFileSync(path.join(target!, 'cgroup.freeze'), '1');
      const run = new ChurnRun({
        flags: 0,
        concurrency: 1,
        ops: 1,
        ...(how === 'intoCgroup' ? { intoCgroup: target! } : { moveTo: [path.join(target!, 'cgroup.procs')] }),
      }).start();
      await new Promise((r) => setTimeout(r, 300));
      fs.writeFileSync(path.join(target!, 'cgroup.freeze'), '0');
      const r = await run;
      assert.is(r.ops, 1);
      assert.ok(r.latenciesUs[0]! >= 250_000, `the child waited frozen (${r.latenciesUs[0]} µs)`);
      fs.rmdirSync(target!);
    });
  });
}

onV2("v2: a created cgroup appears under the run's parent and is gone after release", async () => {
  const h = v2()!;
  await withParent(h, async (name) => {
    const script = createScript(h, name);
    await once(script.ready);
    const dir = path.join(h.roots.unified!, name, 'c0-0');
    assert.ok(fs.existsSync(path.join(dir, 'cgroup.procs')));
    if (h.controllers.includes('memory'))
      assert.is(read(path.join(dir, 'memory.max')), String(DEFAULT_LIMITS.memoryBytes));
    await once(script.release);
    assert.not.ok(fs.existsSync(dir));
  });
});

test("a run: config and cgroup_version columns for every hierarchy here; no cgroup left behind; a dead run's are removed", async () => {
  const h = findHierarchies()[0]!;
  // A leftover as a killed run leaves it: named for a pid that is gone.
  const deadPid = Number(execFileSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).trim());
  const orphan = path.join(Object.values(h.roots)[0]!, `sockbench-cgroups-${deadPid}-1`);
  fs.mkdirSync(path.join(orphan, 'pool-0'), { recursive: true });
  const out = scratchDir();
  try {
    const r = await cli([
      'run',
      'cgroups',
      '--concurrency',
      '1,2',
      '--duration',
      '0.2',
      '--repeat',
      '1',
      '--warmup',
      '0',
      '--out',
      out,
    ]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, `removed ${orphan}`);
    assert.not.ok(fs.existsSync(orphan));
    const rows = readCsv(path.join(onlyRun(out, 'cgroups'), 'data.csv'));
    const versions = findHierarchies().map((x) => x.version);
    const configsOf = (v: number) => ['create', 'reuse', 'move', 'clone-move', ...(v === 2 ? ['clone-into'] : [])];
    assert.is(
      rows.length,
      versions.reduce((n, v) => n + configsOf(v).length * 2, 0),
    );
    for (const v of versions)
      for (const c of configsOf(v))
        assert.ok(
          rows.some((x) => x.config === c && Number(x.cgroup_version) === v),
          `${c} v${v}`,
        );
    for (const x of findHierarchies())
      for (const root of Object.values(x.roots)) {
        assert.equal(
          fs.readdirSync(root).filter((n) => n.startsWith('sockbench-cgroups-')),
          [],
          `nothing left in ${root}`,
        );
      }
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
    if (fs.existsSync(orphan)) removeCgroupTree(orphan);
  }
});

test('a v2-only host: with only cgroup2 mounted at /sys/fs/cgroup, the study finds it there and measures v2 alone', async () => {
  const out = scratchDir();
  try {
    // A private mount namespace where /sys/fs/cgroup holds nothing but cgroup2, as on a host
    // without v1: the same kernel hierarchy, at the path such a host uses.
    const script = [
      'set -e',
      'mount --make-rprivate /',
      'umount -R /sys/fs/cgroup',
      'mount -t cgroup2 none /sys/fs/cgroup',
      `exec "${process.execPath}" "${CLI}" run cgroups --configs create,reuse,clone-into --concurrency 1 --duration 0.2 --repeat 1 --warmup 0 --out "${out}"`,
    ].join('\n');
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        'unshare',
        ['--mount', 'sh', '-c', script],
        { env: { ...process.env, CI: 'true' } },
        (err, _stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });
    assert.is(r.code, 0, r.stderr);
    const dir = onlyRun(out, 'cgroups');
    const rows = readCsv(path.join(dir, 'data.csv'));
    assert.equal([...new Set(rows.map((x) => Number(x.cgroup_version)))], [2]);
    assert.equal(rows.map((x) => x.config).sort(), ['clone-into', 'create', 'reuse']);
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
    assert.is(meta.environment.cgroup.version, 'v2');
    // Nothing of the run is left in the hierarchy (seen here at its usual place).
    const v2 = findHierarchies().find((h) => h.version === 2)!;
    assert.equal(
      fs.readdirSync(v2.roots.unified!).filter((n) => n.startsWith('sockbench-cgroups-')),
      [],
    );
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

refusesBadInput('cgroups', [
  [['--configs', 'create,bogus'], '--configs', 2],
  [['--versions', '3'], '--versions', 2],
]);

test.run();
