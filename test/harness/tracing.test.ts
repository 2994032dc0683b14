// The tracing layer: attribution and parsing on output recorded from real bpftrace runs
// (test/fixtures), degradation when bpftrace or root is missing, and one real traced run.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { attribute, Kallsyms, lockKind, stackAddresses } from '../../harness/attribution.js';
import { readCsv } from '../../harness/csv.js';
import {
  BPF_MAPS,
  histPercentile,
  lockRows,
  MarkStream,
  parseLockKey,
  syscallRows,
  TRACE_FAMILIES,
  type Snapshot,
} from '../../harness/tracer.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.resolve(here, '../../../test/fixtures');
const BPF_DIR = path.resolve(here, '../../../bpf');
const CLI = path.resolve(here, '../../app/cli.js');

function recorded(name: string): Snapshot {
  const stream = new MarkStream();
  let mark: number | undefined;
  for (const line of fs.readFileSync(path.join(FIXTURES, name), 'utf8').split('\n')) {
    const r = stream.feed(line);
    if (typeof r === 'number') mark = r;
  }
  assert.ok(mark !== undefined, `${name} holds a complete mark`);
  return stream.take(mark!);
}

const kallsyms = () => Kallsyms.parse(fs.readFileSync(path.join(FIXTURES, 'kallsyms-netns.txt'), 'utf8'));

test('lock kinds from contention_begin flags', () => {
  assert.is(lockKind(1), 'spinlock');
  assert.is(lockKind(1 | 2), 'rwlock read');
  assert.is(lockKind(1 | 4), 'rwlock write');
  assert.is(lockKind(32), 'mutex');
  assert.is(lockKind(32 | 1), 'mutex (spinning)');
  assert.is(lockKind(2), 'rwsem read');
  assert.is(lockKind(4), 'rwsem write');
  assert.is(lockKind(16 | 2), 'percpu-rwsem read');
  assert.is(lockKind(8), 'rtmutex');
});

test('kallsyms: an address resolves to the function containing it; data symbols name locks', () => {
  const syms = Kallsyms.parse(
    [
      'ffffffff81000000 T alpha',
      'ffffffff81000100 t beta',
      'ffffffff83000000 d rtnl_mutex',
      '0000000000000000 T hidden',
    ].join('\n'),
  );
  assert.is(syms.functionAt(0xffffffff81000050n), 'alpha');
  assert.is(syms.functionAt(0xffffffff81000100n), 'beta');
  assert.is(syms.functionAt(0xffffffff80000000n), undefined);
  assert.is(syms.dataAt(0xffffffff83000000n), 'rtnl_mutex');
  assert.ok(syms.hasDataSymbols);
  const stack = '\n\tffffffff81000010 whatever+16\n\tffffffff81000120 beta+32\n';
  assert.equal(stackAddresses(stack), [0xffffffff81000010n, 0xffffffff81000120n]);
  assert.is(attribute(stack, 0xffffffff83000000n, 32, syms).lock, 'rtnl_mutex');
});

test('attribution skips locking machinery and names call path and operation', () => {
  const syms = Kallsyms.parse(
    [
      'ffffffff81000000 T __mutex_lock',
      'ffffffff81000100 T mutex_lock',
      'ffffffff81000200 T register_nexthop_notifier',
      'ffffffff81000300 T ops_init',
      'ffffffff81000400 T setup_net',
      'ffffffff81000500 T copy_net_ns',
    ].join('\n'),
  );
  const stack = [
    'ffffffff81000010',
    'ffffffff81000110',
    'ffffffff81000210',
    'ffffffff81000310',
    'ffffffff81000410',
    'ffffffff81000510',
  ]
    .map((a) => `\t${a} x+1`)
    .join('\n');
  const a = attribute(stack, 0xffff888012345678n, 32, syms);
  assert.is(a.callPath, 'register_nexthop_notifier <- ops_init <- setup_net');
  assert.is(a.operation, 'setup_net');
  assert.is(a.lock, 'mutex in register_nexthop_notifier');
  assert.is(a.lockSymbol, null);
});

test('attribution stops at an RCU callback: the interrupted task is not the operation', () => {
  const syms = Kallsyms.parse(
    [
      'ffffffff81000000 T _raw_spin_lock',
      'ffffffff81000100 T free_percpu',
      'ffffffff81000200 T delayed_free_vfsmnt',
      'ffffffff81000300 T rcu_do_batch',
      'ffffffff81000400 T rcu_core',
      'ffffffff81000500 T copy_utsname',
    ].join('\n'),
  );
  const stack = [
    'ffffffff81000010',
    'ffffffff81000110',
    'ffffffff81000210',
    'ffffffff81000310',
    'ffffffff81000410',
    'ffffffff81000510',
  ]
    .map((a) => `\t${a} x+1`)
    .join('\n');
  const a = attribute(stack, 0n, 1, syms);
  assert.is(a.operation, 'rcu: delayed_free_vfsmnt');
  assert.is(a.callPath, 'free_percpu <- delayed_free_vfsmnt <- rcu_do_batch');
});

test('recorded netns churn: lock waits resolve to setup_net and teardown paths, never to bare addresses', () => {
  // Recorded with every contention timed: the program's sampling argument was 1.
  const rows = lockRows(recorded('locks-netns.jsonl'), kallsyms(), 1);
  assert.ok(rows.length > 5);
  for (const r of rows) {
    assert.not.match(r.lock, /^0x/);
    assert.not.match(r.call_path, /^0x[0-9a-f]+$/);
    assert.ok(r.contentions > 0 && r.wait_total_us > 0 && r.wait_max_us <= r.wait_total_us + 1e-9, JSON.stringify(r));
  }
  const ops = new Set(rows.map((r) => r.operation));
  assert.ok(ops.has('setup_net'), `operations seen: ${[...ops].join(', ')}`);
  const short = rows.filter((r) => r.operation === '(short waits)');
  assert.ok(short.length > 0 && short.every((r) => r.wait_max_us < 10), 'waits under the threshold are kept, by kind');
  assert.ok(rows.some((r) => r.call_path.includes(' <- ')));
  // Sorted heaviest first.
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1]!.wait_total_us >= rows[i]!.wait_total_us);
});

test('sampled spinlock and rwlock waits are scaled back up; mutex waits, spinning or not, are not', () => {
  const snap = recorded('locks-netns.jsonl');
  const whole = lockRows(snap, kallsyms(), 1);
  const scaled = lockRows(snap, kallsyms(), 8);
  const sampled = (r: { kind: string }) => /^(spinlock|rwlock)/.test(r.kind);
  assert.ok(whole.some(sampled) && whole.some((r) => !sampled(r)), 'the recording has both kinds');
  assert.ok(
    whole.some((r) => r.kind === 'mutex (spinning)'),
    'the recording has a mutex wait that only spun',
  );
  for (const r of whole) {
    const s = scaled.find((x) => x.lock === r.lock && x.kind === r.kind && x.call_path === r.call_path)!;
    const factor = sampled(r) ? 8 : 1;
    assert.is(s.contentions, r.contentions * factor, r.lock);
    assert.ok(Math.abs(s.wait_total_us - r.wait_total_us * factor) < 1e-6 * s.wait_total_us + 1e-9, r.lock);
    assert.is(s.wait_max_us, r.wait_max_us, 'a maximum is what was seen, never scaled');
  }
});

test('recorded netns churn: syscall histograms give calls, percentiles and totals', () => {
  const rows = syscallRows(recorded('syscalls-netns.jsonl'));
  const unshare = rows.find((r) => r.syscall === 'unshare');
  assert.ok(unshare, 'unshare is traced');
  assert.ok(unshare!.calls > 100);
  assert.ok(unshare!.p50_us > 0 && unshare!.p99_us >= unshare!.p50_us);
  assert.ok(unshare!.total_us > unshare!.p50_us);
});

test('each program prints and clears at a mark exactly the maps BPF_MAPS lists for its family', () => {
  for (const family of TRACE_FAMILIES) {
    const source = fs.readFileSync(path.join(BPF_DIR, `${family}.bt`), 'utf8');
    const afterEnd = /printf\("sockbench-end[^\n]*\n([\s\S]*?)\n\}/.exec(source);
    const printed = [...source.matchAll(/\bprint\((@\w+)\)/g)].map((m) => m[1]!);
    const cleared = [...(afterEnd?.[1] ?? '').matchAll(/\bclear\((@\w+)\)/g)].map((m) => m[1]!);
    const listed = Object.values(BPF_MAPS[family]) as string[];
    assert.equal(printed.sort(), [...listed].sort(), `${family}.bt prints`);
    assert.equal(cleared.sort(), [...listed].sort(), `${family}.bt clears after the end line`);
  }
});

test('parsing: lock keys, percentiles inside log2 buckets, garbage and unmatched marks', () => {
  assert.equal(parseLockKey('\n\tffffffff81000010 a+1\n,33'), { stack: '\n\tffffffff81000010 a+1\n', flags: 33 });
  assert.is(parseLockKey('no flags here'), undefined);
  const buckets = [
    { min: 0, max: 1, count: 0 },
    { min: 2, max: 3, count: 10 },
    { min: 4, max: 7, count: 10 },
  ];
  assert.is(histPercentile(buckets, 0.5), 4);
  assert.is(histPercentile(buckets, 0.25), 3);
  assert.ok(Number.isNaN(histPercentile([], 0.5)));
  const s = new MarkStream();
  assert.is(s.feed('Attaching 4 probes...'), undefined);
  assert.is(s.feed('{"type": "attached_probes", "data": {"probes": 4}}'), 'attached');
  assert.is(
    s.feed('{"type": "printf", "data": "sockbench-end 3\\n"}'),
    undefined,
    'an end without its mark is ignored',
  );
  s.feed('{"type": "printf", "data": "sockbench-mark 4\\n"}');
  assert.is(s.feed('{"type": "printf", "data": "sockbench-end 4\\n"}'), 4);
  assert.equal(s.take(4), {}, 'empty maps give an empty snapshot');
});

function run(args: string[], options: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      args,
      { ...options, env: { ...process.env, CI: 'true', ...options.env } },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const openSession = `
  import('${path.resolve(here, '../../harness/traceSession.js')}').then(async ({ TraceSession }) => {
    const { Progress } = await import('${path.resolve(here, '../../harness/progress.js')}');
    const s = await TraceSession.open(['locks', 'syscalls'], new Progress(process.stderr, false));
    await s.close();
    console.log(JSON.stringify(s.info));
  });`;

test('degradation: without bpftrace nothing is traced and each family says why', async () => {
  const r = await run(['-e', openSession], { env: { PATH: '/nonexistent' } });
  assert.is(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.active, []);
  assert.match(info.unavailable.locks, /bpftrace/);
  assert.match(r.stderr, /not tracing locks/);
});

test('degradation: not root, nothing is traced and each family says why', async () => {
  const r = await run(['-e', openSession], { uid: 65534, gid: 65534 });
  assert.is(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.active, []);
  assert.match(info.unavailable.syscalls, /root/);
});

test('a real traced run names setup_net / cleanup_net waits and times unshare per namespace set', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-trace-'));
  try {
    const r = await run([
      CLI,
      'run',
      'netns',
      '--namespaces',
      'net,ipc+mnt+net+pid+uts',
      '--concurrency',
      '2',
      '--duration',
      '0.5',
      '--repeat',
      '1',
      '--warmup',
      '0',
      '--trace',
      'locks,syscalls',
      '--out',
      out,
    ]);
    assert.is(r.code, 0, r.stderr);
    const dir = path.join(out, 'results/netns', fs.readdirSync(path.join(out, 'results/netns'))[0]!);
    const locks = readCsv(path.join(dir, 'locks.csv'));
    const ops = new Set(locks.filter((l) => Number(l.wait_total_us) > 0).map((l) => l.operation));
    assert.ok(ops.has('setup_net'), `operations seen: ${[...ops].join(', ')}`);
    assert.ok(ops.has('cleanup_net'), `operations seen: ${[...ops].join(', ')}`);
    for (const c of [
      'config',
      'concurrency',
      'lock',
      'kind',
      'call_path',
      'contentions',
      'wait_total_us',
      'wait_max_us',
    ])
      assert.ok(c in locks[0]!, `locks.csv lacks ${c}`);
    const sys = readCsv(path.join(dir, 'syscalls.csv'));
    for (const config of ['net', 'ipc+mnt+net+pid+uts']) {
      const u = sys.find((s) => s.config === config && s.syscall === 'unshare');
      assert.ok(u && Number(u.calls) > 0 && Number(u.p50_us) > 0, `unshare timed for ${config}`);
    }
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
    assert.equal(meta.trace.active, ['locks', 'syscalls']);
    assert.ok(fs.readFileSync(path.join(out, 'figures/netns-locks.svg'), 'utf8').startsWith('<svg'));
    assert.equal(
      fs
        .readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('bpf/locks.bt');
          } catch {
            return false;
          }
        }),
      [],
      'bpftrace left running',
    );
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test.run();
