// Waits until the kernel has really freed the network namespaces a run created.
//
// A netns dies asynchronously: its last reference queues it for cleanup_net, which runs on
// an ordered workqueue and takes every queued namespace as one batch. Slab counters cannot
// tell when that work is done (SLUB counts objects on per-CPU slabs as in use, so
// /proc/slabinfo's net_namespace line stays tens of objects high after everything is
// freed). Instead we watch two sentinel namespaces, each holding one end of a veth pair
// whose other end is in the host namespace (down, no address, no traffic): cleanup_net
// deletes the host end when it tears the sentinel down.
//   1. After the run, kill sentinel A. When its veth is gone, A's batch, which holds every
//      namespace the run released before A, is being torn down.
//   2. Then kill sentinel B. B joins a later batch, which the ordered workqueue starts only
//      after A's batch has finished completely; when B's veth is gone, the run's namespaces
//      are freed.
// The wait so overstates teardown by the part of one single-namespace cleanup that runs
// before its devices go (a few ms; see `sentinelOnlySeconds`).
// Sentinels die with this process (PR_SET_PDEATHSIG), and their veths with them.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { constants, spawn, watchExit } from '../../native/index.js';

const run = promisify(execFile);
const RELEASE_TIMEOUT_MS = 120_000;

class Sentinel {
  private constructor(
    readonly pid: number,
    readonly hostLink: string,
  ) {}

  static async create(): Promise<Sentinel> {
    const pid = spawn({ cloneFlags: constants.CLONE_NEWNET, steps: [{ op: 'hold' }] });
    const hostLink = `sbtd${pid}`;
    try {
      await run('ip', ['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', 'sentinel', 'netns', String(pid)]);
    } catch (e) {
      process.kill(pid, 'SIGKILL');
      await watchExit(pid);
      throw e;
    }
    return new Sentinel(pid, hostLink);
  }

  /**
   * Releases the namespace and resolves once cleanup_net has deleted its devices. Not
   * cut short by Ctrl-C: it is the cleanup of what the run made, and a stuck kernel is
   * bounded by the timeout instead.
   */
  async release(timeoutMs = RELEASE_TIMEOUT_MS): Promise<void> {
    process.kill(this.pid, 'SIGKILL');
    await watchExit(this.pid);
    const deadline = performance.now() + timeoutMs;
    while (fs.existsSync(`/sys/class/net/${this.hostLink}`)) {
      if (performance.now() > deadline) throw new Error(`netns teardown not finished after ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

export class NetnsTeardownProbe {
  private armed: [Sentinel, Sentinel] | undefined;

  /** Makes the two sentinels; call before the run so they are not part of it. */
  async arm(): Promise<void> {
    await this.disarm();
    const a = await Sentinel.create();
    try {
      this.armed = [a, await Sentinel.create()];
    } catch (e) {
      await a.release();
      throw e;
    }
  }

  /** Seconds from now until every netns released before this call has been freed. */
  async wait(): Promise<number> {
    if (!this.armed) throw new Error('NetnsTeardownProbe.wait() before arm()');
    const [a, b] = this.armed;
    this.armed = undefined;
    const t0 = performance.now();
    await a.release();
    await b.release();
    return (performance.now() - t0) / 1000;
  }

  /** Releases sentinels left armed (after an error or Ctrl-C). */
  async disarm(): Promise<void> {
    const armed = this.armed;
    this.armed = undefined;
    if (armed) for (const s of armed) await s.release();
  }
}

/**
 * Seconds one sentinel pair takes to be freed when nothing else is queued: an upper bound on
 * the wait's own bias. Also the check that this machine can make sentinels at all (it throws
 * without `ip` or veth).
 */
export async function sentinelOnlySeconds(): Promise<number> {
  const probe = new NetnsTeardownProbe();
  await probe.arm();
  return probe.wait();
}
