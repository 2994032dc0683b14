import { renameSync, rmSync, writeFileSync } from 'node:fs';

/**
 * Writes through `<path>.tmp` and renames, so a run killed mid-write (Ctrl-C, OOM, a full
 * disk) never leaves a truncated file under the name that figure regeneration and `compare`
 * trust. rename(2) is atomic within one file system, and the temporary file sits beside the
 * target, so it is on the same one.
 */
export function writeFileAtomic(path: string, data: string): void {
  const tmp = `${path}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
