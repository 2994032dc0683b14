// A backend's count of its sandboxes: which are alive (to destroy at shutdown), how many were
// made and destroyed, and whether it still takes new ones.
import { SandboxError } from '../errors.js';
import type { Sandbox } from './sandbox.js';

export class SandboxLedger<S extends Sandbox> {
  readonly alive = new Set<S>();
  private made = 0;
  private gone = 0;
  private closing = false;

  /** The next sandbox's id ("<prefix>-<n>"); refused once the backend is shutting down. */
  nextId(prefix: string): string {
    if (this.closing) throw new SandboxError('sandbox', 'the engine is shutting down');
    return `${prefix}-${++this.made}`;
  }

  /** A sandbox that failed before it was added still counts as made and gone. */
  failed(): void {
    this.gone++;
  }

  add(sandbox: S): void {
    this.alive.add(sandbox);
  }

  forget(sandbox: S): void {
    if (this.alive.delete(sandbox)) this.gone++;
  }

  counts(): { alive: number; created: number; destroyed: number } {
    return { alive: this.alive.size, created: this.made, destroyed: this.gone };
  }

  /** Takes no new sandbox from now on and destroys those alive. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.alive].map((s) => s.destroy().catch(() => {})));
  }
}
