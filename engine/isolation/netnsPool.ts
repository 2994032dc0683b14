// Network namespaces made ahead of need, one per lean sandbox, never reused. Creating one costs
// about a millisecond of the kernel's time (registering per-namespace sysctl and proc entries,
// see DESIGN.md), and tearing one down more, on a workqueue; joining a ready one with setns
// costs microseconds. So the pool keeps some ready, made on a thread of libuv's pool
// (native/src/namespaces.cc), and refills in the background. A namespace is held only by its
// descriptor here and then by the sandbox's processes: the worker's death, even by SIGKILL,
// frees every one it held. Each has only loopback, up: a sandbox reaches nothing outside it,
// not the host's loopback, the worker's port, the host's abstract Unix sockets, nor another
// sandbox.
import fs from 'node:fs';
import { makeNetns } from '../../native/index.js';

export interface NetnsPoolStatus {
  ready: number;
  target: number;
  made: number;
  taken: number;
  /** Sandboxes that found the pool empty and waited for a namespace to be made. */
  waited: number;
}

export class NetnsPool {
  private ready: number[] = [];
  private filling: Promise<void> | undefined;
  private closed = false;
  private readonly counts = { made: 0, taken: 0, waited: 0 };

  private constructor(readonly target: number) {}

  /** A pool with target namespaces ready. */
  static async create(target: number): Promise<NetnsPool> {
    const pool = new NetnsPool(Math.max(1, target));
    await pool.fill();
    return pool;
  }

  /**
   * A descriptor of a fresh namespace for one sandbox; the caller closes it once the sandbox's
   * first process has joined (the process then holds the namespace).
   */
  async take(): Promise<number> {
    let fd = this.ready.pop();
    if (fd === undefined) this.counts.waited++;
    while (fd === undefined) {
      if (this.closed) throw new Error('the network namespace pool is closed');
      await this.fill();
      fd = this.ready.pop();
    }
    this.counts.taken++;
    if (this.ready.length < this.target / 2) this.fill().catch(() => {});
    return fd;
  }

  /** Makes namespaces until target are ready; one fill at a time. */
  private fill(): Promise<void> {
    this.filling ??= (async () => {
      try {
        const fds = await makeNetns(Math.max(1, this.target - this.ready.length));
        this.counts.made += fds.length;
        if (this.closed) fds.forEach((fd) => fs.closeSync(fd));
        else this.ready.push(...fds);
      } finally {
        this.filling = undefined;
      }
    })();
    return this.filling;
  }

  status(): NetnsPoolStatus {
    return { ready: this.ready.length, target: this.target, ...this.counts };
  }

  /** Closes the ready namespaces' descriptors (which frees them). */
  async close(): Promise<void> {
    this.closed = true;
    await this.filling?.catch(() => {});
    for (const fd of this.ready.splice(0)) fs.closeSync(fd);
  }
}
