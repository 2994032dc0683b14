// Tracing capabilities are found by attaching real probes: on this kernel tracepoints attach,
// kprobes do not, and without bpftrace or root every probe says why, instead of failing.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bpftraceComplaint, probeTracing, PROBE_TYPES, type TracingCapabilities } from '../../harness/capabilities.js';

const CAPABILITIES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../harness/capabilities.js');
const PROBE_SCRIPT = `import { probeTracing } from '${CAPABILITIES}'; console.log(JSON.stringify(await probeTracing()));`;

function probeInChild(options: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv }): Promise<TracingCapabilities> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', PROBE_SCRIPT],
      { ...options, timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as TracingCapabilities);
      },
    );
  });
}

test('as root on this machine: tracepoints attach, kprobes only where the kernel has them', async () => {
  const caps = await probeTracing();
  assert.is(caps.root, true);
  assert.match(caps.bpftrace ?? '', /^v?\d+\.\d+/);
  assert.ok('path' in caps.tracefs, JSON.stringify(caps.tracefs));
  assert.equal(caps.tracepoint, { ok: true });
  assert.equal(caps.lockTracepoints, { ok: true });
  assert.is(caps.btf, true);
  // A kernel without CONFIG_KPROBES (this one) has no kprobe_events in tracefs.
  const tracefs = (caps.tracefs as { path: string }).path;
  assert.is(caps.kprobe.ok, fs.existsSync(path.join(tracefs, 'kprobe_events')));
  if (!caps.kprobe.ok) assert.ok((caps.kprobe.why ?? '').length > 0);
  for (const type of PROBE_TYPES) {
    const why = caps[type].why ?? '';
    assert.not.match(why, 'RLIMIT_MEMLOCK');
    assert.not.match(why, '\n');
  }
});

test('probed once per process', async () => {
  assert.is(probeTracing(), probeTracing());
  assert.is(await probeTracing(), await probeTracing());
});

test('without bpftrace on PATH every probe says bpftrace is not installed', async () => {
  const caps = await probeInChild({ env: { PATH: '/nonexistent' } });
  assert.is(caps.bpftrace, null);
  for (const type of PROBE_TYPES) assert.equal(caps[type], { ok: false, why: 'bpftrace not installed' });
});

test('as an unprivileged user every probe says it needs root', async () => {
  const caps = await probeInChild({ uid: 65534, gid: 65534 });
  assert.is(caps.root, false);
  assert.ok(caps.bpftrace !== null);
  for (const type of PROBE_TYPES) assert.equal(caps[type], { ok: false, why: 'needs root' });
});

test("bpftrace's complaint is the line naming the cause, not a warning or the RLIMIT_MEMLOCK noise", () => {
  const memlock =
    'ERROR: Unknown error -1: couldn\'t set RLIMIT_MEMLOCK for bpftrace. If your program is not loading, you can try "ulimit -l 8192" to fix the problem';
  const kprobe = [
    memlock,
    'kprobe.bt:1-7: WARNING: do_nanosleep is not traceable (either non-existing, inlined, or marked as "notrace"); attaching to it will likely fail',
    'Attaching 2 probes...',
    'create_probe_event: open(/sys/kernel/tracing/kprobe_events): No such file or directory',
    "ERROR: Error attaching probe: 'kprobe:do_nanosleep'",
  ].join('\n');
  assert.is(
    bpftraceComplaint(kprobe),
    'create_probe_event: open(/sys/kernel/tracing/kprobe_events): No such file or directory',
  );
  const kfunc = [
    memlock,
    'stdin:1:1-19: ERROR: kfunc/kretfunc not available for your kernel version.',
    'kfunc:do_nanosleep { }',
    '~~~~~~~~~~~~~~~~~~',
  ].join('\n');
  assert.is(bpftraceComplaint(kfunc), 'kfunc/kretfunc not available for your kernel version.');
  assert.is(bpftraceComplaint('x.bt:1-6: WARNING: only a warning\n'), 'WARNING: only a warning');
  assert.is(bpftraceComplaint(`${memlock}\n\n`), null);
});

test.run();
