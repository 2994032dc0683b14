// The /dev every sandbox sees: null, zero, full, random and urandom, and the usual links into
// /proc/self/fd; nothing that reaches the host. The base from debootstrap ships /dev/tty,
// /dev/console and /dev/ptmx at mode 0666: through them a handler could type into the terminal
// the worker was started from. The directory is made once per engine, on the host's disk
// (device nodes need a mount that allows them), and bound read-only over the base's /dev in
// every root, which is itself mounted nodev.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** name -> character device major, minor: what a Python handler may need and nothing else. */
const NODES: Record<string, [number, number]> = {
  null: [1, 3],
  zero: [1, 5],
  full: [1, 7],
  random: [1, 8],
  urandom: [1, 9],
};
const LINKS: Record<string, string> = {
  fd: '/proc/self/fd',
  stdin: '/proc/self/fd/0',
  stdout: '/proc/self/fd/1',
  stderr: '/proc/self/fd/2',
  shm: '/tmp',
};

/** Makes dir anew with the sandbox's device nodes and links; returns dir. */
export function makeDevices(dir: string): string {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { mode: 0o755 });
  for (const [name, [major, minor]] of Object.entries(NODES)) {
    // Node has no mknod; coreutils' runs once per engine start.
    execFileSync('mknod', ['-m', '666', path.join(dir, name), 'c', String(major), String(minor)]);
  }
  // shm -> /tmp: POSIX semaphores and shared memory (multiprocessing) land in the sandbox's own scratch.
  for (const [name, target] of Object.entries(LINKS)) fs.symlinkSync(target, path.join(dir, name));
  return dir;
}
