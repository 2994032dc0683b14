// The extra mounts of the host namespace that the mount-namespace study sweeps over. They live
// on the run's private tmpfs (ownedTmpfs): nothing propagates to or from the rest of the
// machine, and one lazy unmount of the tmpfs takes them all away.
import fs from 'node:fs';
import path from 'node:path';
import { constants, mount, umount2 } from '../../native/index.js';

export class HostMounts {
  private count = 0;
  private readonly source: string;

  /** root: an empty directory on a private tmpfs. */
  constructor(private readonly root: string) {
    this.source = path.join(root, 'source');
    fs.mkdirSync(this.source);
    fs.mkdirSync(path.join(root, 'mounts'));
  }

  /** An empty directory on the same tmpfs, e.g. the root the chroot configuration enters. */
  directory(name: string): string {
    const dir = path.join(this.root, name);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  get size(): number {
    return this.count;
  }

  /** Adds or removes bind mounts until exactly n are present. */
  resize(n: number): void {
    for (; this.count < n; this.count++) {
      const target = path.join(this.root, 'mounts', String(this.count));
      fs.mkdirSync(target, { recursive: true });
      mount(this.source, target, null, constants.MS_BIND);
    }
    for (; this.count > n; this.count--) umount2(path.join(this.root, 'mounts', String(this.count - 1)));
  }
}
