// A lambda packed as OpenLambda's registry keeps it: <registry>/<name>.tar.gz. Read whole into
// memory, never unpacked by a tool onto disk: the registry writes the snapshot itself from the
// bytes read here, so an archive cannot place anything outside it. The same rules as a lambda
// directory's (registry.ts), said for an archive:
// - the archive is opened without following a link, must be a regular file its owner can
//   read, and not a hard link (st_nlink > 1), which could be a root-only file under this name;
// - only regular files and directories are taken; a link of either kind, a device, a fifo or
//   an entry whose path is absolute or climbs out with ".." refuses the whole archive;
// - its size unpacked is bounded (MAX_UNPACKED_BYTES by default), so a small archive cannot fill memory.
// The entries' permission bits are kept as a directory's files' are; owners and times are not.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import type { LambdaFile } from '../../native/index.js';
import { BadLambdaError } from './lambdaConfig.js';

/** A lambda's code, unpacked; far above any handler's, far below the worker's memory. */
export const MAX_UNPACKED_BYTES = 256 * 2 ** 20;

/** What tells a change without reading the archive: its inode, size and times. */
export interface TarballStat {
  signature: string;
}

/** <registry>/<name>.tar.gz's stat, or undefined when there is none; throws BadLambdaError for a link or a special file. */
export function statTarball(registry: string, name: string): TarballStat | undefined {
  const file = path.join(registry, `${name}.tar.gz`);
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  if (!st) return undefined;
  if (!st.isFile()) throw new BadLambdaError(`lambda '${name}': ${name}.tar.gz is not a regular file`);
  return { signature: `${st.ino}\0${st.size}\0${st.mtimeMs}\0${st.ctimeMs}` };
}

/** The archive's regular files with their contents, checked as above. */
export function readTarball(
  registry: string,
  name: string,
  maxUnpackedBytes = MAX_UNPACKED_BYTES,
): { files: LambdaFile[]; signature: string } {
  const refuse = (why: string) => new BadLambdaError(`lambda '${name}': ${name}.tar.gz ${why}`);
  let fd: number;
  try {
    fd = fs.openSync(path.join(registry, `${name}.tar.gz`), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    throw refuse(`cannot be opened: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let packed: Buffer;
  let signature: string;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw refuse('is not a regular file');
    if (st.nlink > 1) throw refuse('is a hard link (it has other names), which the registry does not follow');
    if ((st.mode & 0o400) === 0) throw refuse('is not readable by its owner');
    signature = `${st.ino}\0${st.size}\0${st.mtimeMs}\0${st.ctimeMs}`;
    packed = fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  let tar: Buffer;
  try {
    tar = zlib.gunzipSync(packed, { maxOutputLength: maxUnpackedBytes });
  } catch (e) {
    throw refuse(
      e instanceof RangeError
        ? `unpacks to more than ${maxUnpackedBytes} bytes`
        : `is not gzip: ${(e as Error).message}`,
    );
  }
  const files: LambdaFile[] = [];
  let problem: string | undefined;
  const parser = new Parser({
    strict: true,
    onReadEntry(entry: ReadEntry) {
      const relative = entryPath(entry.path);
      if (problem === undefined) {
        if (relative === undefined) problem = `holds ${JSON.stringify(entry.path)}, a path outside the lambda`;
        else if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'Directory')
          problem = `holds ${JSON.stringify(entry.path)}, a ${entry.type}: only files and directories are taken`;
      }
      if (problem !== undefined || entry.type === 'Directory' || relative === '') return entry.resume();
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => chunks.push(c));
      entry.on('end', () =>
        files.push({
          path: relative!,
          mode: (entry.mode ?? 0o644) & 0o7777,
          size: entry.size ?? 0,
          mtimeMs: 0,
          ctimeMs: 0,
          contents: Buffer.concat(chunks),
        }),
      );
    },
  });
  parser.on('warn', (_code: string, message: string | Error) => {
    problem ??= `is not a tar archive: ${message instanceof Error ? message.message : message}`;
  });
  parser.on('error', (e: Error) => {
    problem ??= `is not a tar archive: ${e.message}`;
  });
  parser.end(tar);
  if (problem !== undefined) throw refuse(problem);
  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f.path)) throw refuse(`holds ${f.path} twice`);
    seen.add(f.path);
  }
  return { files: files.sort((a, b) => a.path.localeCompare(b.path)), signature };
}

/** "./f.py" -> "f.py"; "" for the archive's top; undefined for an absolute path or one with "..". */
function entryPath(name: string): string | undefined {
  if (name.startsWith('/')) return undefined;
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return undefined;
  return parts.join('/');
}
