// At most `limit` holders at once; the rest wait in arrival order, up to a queue limit.

export class QueueFullError extends Error {}

export class Slots {
  private held = 0;
  private readonly queue: { grant: () => void; refuse: (e: Error) => void }[] = [];

  constructor(
    readonly limit: number,
    readonly queueLimit: number,
  ) {}

  get inUse(): number {
    return this.held;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** Resolves once a slot is free; call the returned function to give it back (once). */
  acquire(): Promise<() => void> {
    if (this.held < this.limit) {
      this.held++;
      return Promise.resolve(this.releaser());
    }
    if (this.queue.length >= this.queueLimit)
      return Promise.reject(new QueueFullError(`${this.queue.length} requests are already waiting for a sandbox`));
    return new Promise((resolve, reject) => {
      this.queue.push({ grant: () => resolve(this.releaser()), refuse: reject });
    });
  }

  /** Refuses everyone still waiting. */
  refuseWaiting(e: Error): void {
    for (const w of this.queue.splice(0)) w.refuse(e);
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queue.shift();
      if (next) next.grant();
      else this.held--;
    };
  }
}
