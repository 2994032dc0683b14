// `sockbench kernels`: bad input is refused with exit 2 and one line; the initramfs is a real
// cpio archive with the init, busybox and the modules in dependency order; a real guest (Debian's
// 6.1 kernel under TCG, fetched once into the kernel cache) runs a command, sees its own kernel,
// and writes through the output share; compare says when one run was emulated.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readCsv, writeCsv } from '../../harness/csv.js';
import { cgroupMounts, guestEnv } from '../../harness/kernels/guestEnv.js';
import { buildInitramfs, cpioNewc, moduleClosure, shellAssignments } from '../../harness/kernels/initramfs.js';
import { BUSYBOX, bzImageVersion, KERNEL_CACHE, parseKernelArg } from '../../harness/kernels/kernelSource.js';
import { summarize } from '../cgroup2.js';
import { cli, scratchDir, scratchLeft } from '../helpers/helpers.js';

const CGROUP2 = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../cgroup2.js');

/** The kernel the real boot uses: Debian bookworm's 6.1, fetched with apt-get download and cached. */
const GUEST_KERNEL = 'linux-image-6.1.0-50-amd64';

for (const [args, mention] of [
  [[], '--kernel'],
  [['--kernel', 'host', '--studies', 'netns,nosuch'], "--studies: unknown or unsupported study 'nosuch'"],
  [['--kernel', 'host', '--studies', 'sock-vs-docker'], '--studies'],
  [['--kernel', '/nonexistent/vmlinuz-6.1'], '/nonexistent/vmlinuz-6.1: no such kernel image file'],
  [['--kernel', '/etc/hostname'], 'not an x86 Linux kernel image'],
  [['--kernel', '/nonexistent/k.deb'], 'no such .deb'],
  [['--kernel', 'not a kernel'], "--kernel: 'not a kernel'"],
  [['--kernel', 'host', '--accel', 'fast'], "--accel: 'fast' is not auto, kvm or tcg"],
  [['--kernel', 'host', '--fail-on-regression', 'ten'], '--fail-on-regression'],
  [['--kernel', 'host', '--study-args=--concurrency $(reboot)'], "--study-args: '$(reboot)'"],
  [['--kernel', 'host', '--no-such-flag'], 'no-such-flag'],
  [['--kernel', 'host', '--cgroups', 'v3'], "--cgroups: 'v3' is not host or v2"],
  [['--kernel', 'host:ipv6.disable=1'], "this machine's boot parameters cannot be changed"],
  [['--kernel', '6.1.0-50-amd64:'], "no boot parameters after ':'"],
  [['--kernel', '6.1.0-50-amd64:rdinit=/bin/sh'], 'rdinit= is set by kernels itself'],
  [['--kernel', '6.1.0-50-amd64:a;reboot'], "boot parameter 'a;reboot'"],
  [['--from', '/nonexistent/out'], '--from: /nonexistent/out: no such directory'],
  [['--from', '/etc', '--kernel', 'host'], '--from compares runs already made: --kernel'],
] as [string[], string][]) {
  test(`kernels: bad input ${args.join(' ') || '(no --kernel)'}: exit 2, one line naming it, nothing written`, async () => {
    const out = scratchDir();
    try {
      const r = await cli(['kernels', ...args, '--out', out]);
      assert.is(r.code, 2, r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.is(lines.length, 1, `expected one line, got:\n${r.stderr}`);
      assert.match(lines[0]!, mention);
      assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(fs.readdirSync(out), []);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
}

test("a v2-only guest gets cgroup2 alone at /sys/fs/cgroup; a host-layout guest gets this machine's mounts", () => {
  const plan = {
    repo: '/r',
    node: '/n',
    out: '/o',
    shares: [],
    runDir: '/d',
    studies: [],
    studyArgs: [],
    memoryMb: 512,
    overlayMb: 256,
  };
  assert.is(guestEnv({ ...plan, cgroups: 'v2' }).SB_MOUNTS, 'cgroup2|nsdelegate|/sys/fs/cgroup');
  assert.is(guestEnv({ ...plan, cgroups: 'host' }).SB_MOUNTS, cgroupMounts());
  assert.ok(
    guestEnv({ ...plan, cgroups: 'v2' })
      .SB_PRELOAD.split(' ')
      .includes('tun'),
    'slirp4netns needs /dev/net/tun',
  );
});

test("test:cgroup2: bad input is exit 2 and one line; the guest's totals are read through the kernels prefix and colours", async () => {
  for (const args of [['--suites', 'engine,nosuch'], ['--kernel'], ['--frobnicate', 'x']]) {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, [CGROUP2, ...args], (err, _out, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
      ),
    );
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const output = [
    '[6.1.0-50-amd64]   Total:     12',
    '[6.1.0-50-amd64] \x1b[32m  Passed:    10\x1b[39m',
    '[6.1.0-50-amd64]   Skipped:   \x1b[33m2\x1b[39m',
  ].join('\n');
  assert.equal(summarize(output), { passed: 10, failed: 2, skipped: 2 });
  assert.is(summarize('the guest crashed'), undefined);
});

test('kernels: not root is exit 3 with a hint', async () => {
  const r = await cli(['kernels', '--kernel', 'host'], { uid: 65534, gid: 65534 });
  assert.is(r.code, 3, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, 'root');
});

test('kernel arguments: package, short form, .deb, vmlinuz and host are told apart', () => {
  assert.equal(parseKernelArg('host'), { kind: 'host', arg: 'host' });
  assert.equal(parseKernelArg('linux-image-6.1.0-50-amd64'), {
    kind: 'package',
    arg: 'linux-image-6.1.0-50-amd64',
    package: 'linux-image-6.1.0-50-amd64',
  });
  assert.equal(parseKernelArg('6.1.0-50-rt-amd64'), {
    kind: 'package',
    arg: '6.1.0-50-rt-amd64',
    package: 'linux-image-6.1.0-50-rt-amd64',
  });
  assert.equal(parseKernelArg('6.12.43+deb12-amd64').kind, 'package');
  assert.equal(parseKernelArg('6.1.0-50-amd64:ipv6.disable=1  mitigations=off'), {
    kind: 'package',
    arg: '6.1.0-50-amd64:ipv6.disable=1  mitigations=off',
    package: 'linux-image-6.1.0-50-amd64',
    params: 'ipv6.disable=1 mitigations=off',
  });
});

/** Name, type letter and size of every member, from busybox's own cpio reader. */
function cpioList(archive: string): { name: string; type: string; size: number }[] {
  // "-rwxr-xr-x 0/0 1234 1970-01-01 00:00:00 bin/busybox", "lrwxrwxrwx ... bin/sh -> busybox"
  return execFileSync(BUSYBOX, ['cpio', '-tv', '-F', archive], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  })
    .trim()
    .split('\n')
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return { name: f[5]!, type: l[0]!, size: Number(f[2]) };
    });
}

test('initramfs: a newc archive busybox cpio reads, with init, busybox, /dev/console and the modules, dependencies first', () => {
  const dir = scratchDir();
  try {
    // A modules tree shaped like a Debian kernel's after depmod: 9p needs 9pnet, netfs, fscache.
    const mods = path.join(dir, 'lib/modules/6.1.0-test');
    const files: Record<string, string[]> = {
      'kernel/net/9p/9pnet.ko': [],
      'kernel/net/9p/9pnet_virtio.ko': [
        'kernel/net/9p/9pnet.ko',
        'kernel/drivers/virtio/virtio_ring.ko',
        'kernel/drivers/virtio/virtio.ko',
      ],
      'kernel/fs/netfs/netfs.ko': [],
      'kernel/fs/fscache/fscache.ko': ['kernel/fs/netfs/netfs.ko'],
      'kernel/fs/9p/9p.ko': ['kernel/net/9p/9pnet.ko', 'kernel/fs/fscache/fscache.ko', 'kernel/fs/netfs/netfs.ko'],
      'kernel/drivers/virtio/virtio.ko': [],
      'kernel/drivers/virtio/virtio_ring.ko': [],
      'kernel/drivers/virtio/virtio_pci.ko': [
        'kernel/drivers/virtio/virtio_ring.ko',
        'kernel/drivers/virtio/virtio.ko',
      ],
      'kernel/drivers/net/veth.ko': [],
    };
    for (const f of Object.keys(files)) {
      fs.mkdirSync(path.join(mods, path.dirname(f)), { recursive: true });
      fs.writeFileSync(path.join(mods, f), `module ${f}\n`);
    }
    fs.writeFileSync(
      path.join(mods, 'modules.dep'),
      Object.entries(files)
        .map(([f, d]) => `${f}: ${d.join(' ')}\n`)
        .join(''),
    );
    fs.writeFileSync(path.join(mods, 'modules.builtin'), 'kernel/fs/overlayfs/overlay.ko\n');

    const closure = moduleClosure(mods, ['virtio_pci', '9pnet_virtio', '9p', 'overlay', 'nosuch']);
    assert.equal(closure.missing, ['nosuch'], 'overlay is built in; nosuch is neither');
    assert.not.ok(closure.ordered.includes('kernel/drivers/net/veth.ko'), 'only what was asked for');
    const at = (m: string) => closure.ordered.findIndex((f) => f.endsWith(`/${m}.ko`));
    for (const [after, before] of [
      ['9p', '9pnet'],
      ['9p', 'fscache'],
      ['fscache', 'netfs'],
      ['9pnet_virtio', 'virtio_ring'],
      ['virtio_pci', 'virtio'],
    ]) {
      assert.ok(
        at(before!) >= 0 && at(before!) < at(after!),
        `${before} is loaded before ${after}: ${closure.ordered.join(' ')}`,
      );
    }
    assert.is(new Set(closure.ordered).size, closure.ordered.length, 'each module once');

    const init = fs.readFileSync(
      path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../harness/kernels/guest-init.sh'),
      'utf8',
    );
    const archive = path.join(dir, 'initramfs.cpio');
    fs.writeFileSync(
      archive,
      buildInitramfs({
        busybox: BUSYBOX,
        init,
        env: { SB_OUT: "/tmp/it's here" },
        modulesDir: mods,
        modules: closure.ordered,
      }),
    );
    const members = cpioList(archive);
    const byName = new Map(members.map((m) => [m.name, m]));
    assert.is(byName.get('init')?.type, '-');
    assert.is(byName.get('bin/busybox')?.size, fs.statSync(BUSYBOX).size);
    assert.is(byName.get('dev/console')?.type, 'c');
    for (const m of closure.ordered) assert.ok(byName.has(`modules/${m}`), `modules/${m} in the archive`);

    // Unpacked, the files are what went in, and the settings survive shell quoting.
    const x = path.join(dir, 'x');
    fs.mkdirSync(x);
    execFileSync(BUSYBOX, ['cpio', '-i', '-d', '-F', archive], { cwd: x, stdio: 'ignore' });
    assert.is(fs.readFileSync(path.join(x, 'init'), 'utf8'), init);
    assert.is(fs.readFileSync(path.join(x, 'modules/kernel/fs/9p/9p.ko'), 'utf8'), 'module kernel/fs/9p/9p.ko\n');
    const env = execFileSync('sh', ['-c', '. ./sockbench.env && printf "%s|%s" "$SB_OUT" "$SB_BOOT_MODULES"'], {
      cwd: x,
      encoding: 'utf8',
    });
    assert.is(env, `/tmp/it's here|${closure.ordered.join(' ')}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('cpio writer: header fields and 4-byte alignment as newc wants them', () => {
  const b = cpioNewc([{ name: 'a', mode: 0o644, kind: 'file', data: Buffer.from('xyz') }]);
  assert.is(b.toString('latin1', 0, 6), '070701');
  assert.is(parseInt(b.toString('latin1', 14, 22), 16), 0o100644, 'mode');
  assert.is(parseInt(b.toString('latin1', 54, 62), 16), 3, 'file size');
  assert.is(b.toString('latin1', 112, 115), 'xyz', 'data after the 4-aligned name');
  assert.ok(b.toString('latin1').includes('TRAILER!!!'));
  assert.is(b.length % 4, 0);
  assert.is(shellAssignments({ A: "x'y" }), "A='x'\\''y'\n");
});

test('kernels host --exec: runs on this machine, records the exit status, leaves nothing in /run/sockbench', async () => {
  const out = scratchDir();
  try {
    const r = await cli([
      'kernels',
      '--kernel',
      'host',
      '--exec',
      'uname -r > "$SOCKBENCH_RUN_DIR/uname"',
      '--out',
      out,
    ]);
    assert.is(r.code, 0, r.stderr);
    const stamp = fs.readdirSync(path.join(out, 'results/kernels'));
    assert.is(stamp.length, 1);
    const dir = path.join(out, 'results/kernels', stamp[0]!);
    assert.is(fs.readFileSync(path.join(dir, '1-host/uname'), 'utf8').trim(), os.release());
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
    assert.is(meta.status, 'complete');
    assert.is(meta.kernels[0].studies.exec.exitStatus, 0);
    assert.equal(scratchLeft('kernels'), []);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test(`a real guest: ${GUEST_KERNEL} under TCG, booted with a parameter added, sees its own kernel and writes through the output share`, async () => {
  const out = scratchDir();
  try {
    const started = Date.now();
    const r = await cli([
      'kernels',
      '--kernel',
      `${GUEST_KERNEL}:ipv6.disable=1`,
      '--accel',
      'tcg',
      '--timeout',
      '240',
      '--out',
      out,
      '--exec',
      'uname -r > "$SOCKBENCH_OUT/results/guest-release"; grep -c cgroup /proc/mounts > "$SOCKBENCH_RUN_DIR/cgroup-mounts"; cat /proc/cmdline > "$SOCKBENCH_RUN_DIR/cmdline"; ls /proc/net/if_inet6 > "$SOCKBENCH_RUN_DIR/inet6" 2>&1; touch "$SOCKBENCH_OUT/not-shared"',
    ]);
    assert.is(r.code, 0, r.stderr.slice(-3000));
    const guestRelease = fs.readFileSync(path.join(out, 'results/guest-release'), 'utf8').trim();
    assert.not.ok(
      fs.existsSync(path.join(out, 'not-shared')),
      'only results/ and figures/ of the output directory are writable to the guest',
    );
    assert.is(guestRelease, '6.1.0-50-amd64');
    assert.is.not(guestRelease, os.release(), "the guest runs its own kernel, not the host's");
    const dir = path.join(out, 'results/kernels', fs.readdirSync(path.join(out, 'results/kernels'))[0]!);
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8'));
    assert.is(meta.kernels[0].accel, 'tcg');
    assert.is(meta.kernels[0].emulated, true);
    assert.is(meta.kernels[0].release, '6.1.0-50-amd64');
    const kernelDir = path.join(dir, meta.kernels[0].label);
    assert.ok(
      Number(fs.readFileSync(path.join(kernelDir, 'cgroup-mounts'), 'utf8')) > 0,
      'cgroups mounted in the guest',
    );
    // The parameter reached the kernel, and took effect: no IPv6 in the guest.
    assert.is(meta.kernels[0].params, 'ipv6.disable=1');
    assert.is(meta.kernels[0].name, `${GUEST_KERNEL} [ipv6.disable=1]`);
    assert.match(fs.readFileSync(path.join(kernelDir, 'cmdline'), 'utf8'), / ipv6\.disable=1\s*$/);
    assert.match(fs.readFileSync(path.join(kernelDir, 'inet6'), 'utf8'), 'No such file');
    // The console was streamed with a prefix and kept.
    assert.match(r.stderr, '[6.1.0-50-amd64] sockbench-guest: init on 6.1.0-50-amd64');
    assert.match(fs.readFileSync(meta.kernels[0].console, 'utf8'), 'sockbench-guest: done');
    // Cached for the next run, and the host reads the release from the image's own header.
    assert.match(
      bzImageVersion(path.join(KERNEL_CACHE, GUEST_KERNEL, 'root/boot/vmlinuz-6.1.0-50-amd64')) ?? '',
      /^6\.1\.0-50-amd64 /,
    );
    process.stderr.write(`  (guest boot and command: ${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
    const ours = fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`path=${out}/results,`);
        } catch {
          return false;
        }
      });
    assert.equal(ours, [], 'no qemu of this run left');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

/** A kernels run of the netns study on this machine, small: the plain clone and a network namespace. */
async function hostNetnsRun(out: string): Promise<void> {
  const r = await cli([
    'kernels',
    '--kernel',
    'host',
    '--studies',
    'netns',
    '--study-args=--concurrency 1,2 --duration 0.2 --repeat 2 --warmup 0 --namespaces none,net',
    '--out',
    out,
  ]);
  assert.is(r.code, 0, r.stderr.slice(-2000));
}

test('kernels --from: runs made elsewhere are found where they now lie, compared in shape, and refused across accelerators', async () => {
  const root = scratchDir();
  try {
    const a = path.join(root, 'job1');
    const made = path.join(root, 'job2');
    await hostNetnsRun(a);
    await hostNetnsRun(made);
    // As a CI artifact arrives: the whole --out somewhere else than where it ran.
    const b = path.join(root, 'downloaded/job2');
    fs.mkdirSync(path.dirname(b));
    fs.renameSync(made, b);
    const out = path.join(root, 'compared');
    // No gate here: two 0.2 s sweeps of one machine can differ by any factor in a tail latency.
    const ok = await cli(['kernels', '--from', a, '--from', b, '--out', out]);
    assert.is(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, '## netns: host');
    assert.match(ok.stdout, 'Shape: each rate over the same kernel');
    const stamp = (d: string) => path.join(d, 'results/kernels', fs.readdirSync(path.join(d, 'results/kernels'))[0]!);
    const meta = JSON.parse(fs.readFileSync(path.join(stamp(out), 'meta.json'), 'utf8'));
    assert.equal(
      meta.kernels.map((k: { label: string }) => k.label),
      ['1-host', '2-host'],
    );
    assert.is(meta.comparisons[0].result, 'ok');
    assert.ok(meta.kernels[1].studies.netns.runDir.startsWith(b), 'the moved run is read where it lies now');
    const rates = readCsv(path.join(stamp(out), 'summary.csv'));
    const net = rates.find((r) => r.kernel === '2-host' && r.config === 'net' && r.concurrency === 1)!;
    const plain = rates.find((r) => r.kernel === '2-host' && r.config === 'none' && r.concurrency === 1)!;
    assert.ok(Math.abs(Number(net.relative_to_plain) - Number(net.ops_per_sec) / Number(plain.ops_per_sec)) < 1e-9);
    assert.is(plain.relative_to_plain, 1);

    // The same runs, as if the second job's runner had no KVM: its guest ran under TCG.
    const metaB = path.join(stamp(b), 'meta.json');
    const recorded = JSON.parse(fs.readFileSync(metaB, 'utf8'));
    recorded.kernels[0].accel = 'tcg';
    fs.writeFileSync(metaB, JSON.stringify(recorded));
    const out2 = path.join(root, 'compared2');
    const refused = await cli(['kernels', '--from', a, '--from', b, '--fail-on-regression', '1000', '--out', out2]);
    assert.is(refused.code, 1, 'a gate that could not compare kernels does not pass');
    assert.match(
      refused.stdout,
      'not a kernel comparison: A ran under this machine, no VM, B under TCG software emulation',
    );
    assert.match(refused.stdout, 'Shape: each rate', 'the shape still compares');
    const metaRefused = JSON.parse(fs.readFileSync(path.join(stamp(out2), 'meta.json'), 'utf8'));
    assert.match(metaRefused.comparisons[0].result, /^not a kernel comparison/);
    assert.equal(scratchLeft('kernels'), []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('compare says when one run was emulated and the other was not', async () => {
  const root = scratchDir();
  try {
    const run = (name: string, vm?: object) => {
      const d = path.join(root, name);
      fs.mkdirSync(d);
      writeCsv(
        path.join(d, 'data.csv'),
        [1000, 1010, 990].map((r, i) => ({
          experiment: 'netns',
          config: 'net',
          concurrency: 1,
          repeat: i + 1,
          ops: r,
          seconds: 1,
          ops_per_sec: r,
          p50_us: 1e6 / r,
          p99_us: 2e6 / r,
          mean_us: 1e6 / r,
        })),
      );
      fs.writeFileSync(
        path.join(d, 'meta.json'),
        JSON.stringify({
          experiment: 'netns',
          status: 'complete',
          options: {},
          environment: { hostname: 'vm', kernel: { release: '6.18' } },
          ...(vm ? { vm } : {}),
        }),
      );
      return d;
    };
    const emulated = run('a', { kernel: '6.1.0-50-amd64', accel: 'tcg', emulated: true });
    const r = await cli(['compare', emulated, run('b'), '--out', root]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, 'A ran under software emulation, B on bare metal: absolute numbers are not comparable');
    const same = await cli([
      'compare',
      emulated,
      run('c', { kernel: '6.1.0-47-amd64', accel: 'tcg', emulated: true }),
      '--out',
      root,
    ]);
    assert.not.match(same.stderr, 'not comparable');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test.run();
