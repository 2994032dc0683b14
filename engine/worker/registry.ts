// The lambdas a worker serves: <registry>/<name>/, a directory holding f.py, ol.yaml or the SOCK
// paper's lambda_func.py at its top, or <registry>/<name>.tar.gz, the same packed as OpenLambda's
// registry keeps it (tarball.ts; a name with both is refused as ambiguous). What its files say
// (entry, environment, methods, requirements, network) is read by lambdaConfig.ts. A lambda's
// version is the hash of its files; each version is run from a snapshot in the state
// directory, so editing the registry never changes code under a sandbox that is running, and a
// new version is picked up by the next request without a restart.
//
// The registry never follows a link out. Lambdas are written by people the engine does not
// trust and the worker copying them runs as root, so every file is reached through the native
// lambdaFiles() (openat with O_NOFOLLOW from the lambda's directory down, read from the
// descriptor it checked): a file swapped for a symbolic link mid-copy, a hard link to a
// root-only file, or a lambda directory that is a link would otherwise put a host secret into
// the snapshot the sandbox mounts. The decisions, each refused with a BadLambdaError naming the
// entry (the worker answers 403 bad-lambda):
// - A symbolic link in a lambda is refused, not skipped: its author learns at once why the
//   handler cannot see that file, instead of meeting a missing file inside the sandbox.
// - A lambda directory that is itself a symbolic link is refused, not resolved: one rule for
//   every link, and nothing to prove about where the target lies.
// - We act for the lambda directory's owner: a file or directory they could not read
//   themselves (by its owner, primary-group or other bits) is refused, and so is a hard link
//   (st_nlink > 1) to a file owned by anyone else, whatever its mode.
// - Special files (fifos, sockets, devices) and entries on another file system (a mount) are
//   refused as well.
// A snapshot keeps each file's permission bits without setuid, setgid and sticky (its
// directories are 0755), so a file its author kept private stays unreadable to the sandbox's
// user; the engine's requireReadable says so clearly for f.py.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { lambdaFiles, type LambdaFile } from '../../native/index.js';
import { BadLambdaError, ENTRY_MARKERS, type LambdaSettings, readSettings } from './lambdaConfig.js';
import { readTarball, statTarball } from './tarball.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** Byte-compiled leftovers of running the handler outside the engine are not part of it. */
const SKIP = ['__pycache__', '.git'];
/** The permission bits a snapshot keeps: never setuid, setgid or sticky. */
const KEPT_MODE = 0o777;

export interface Lambda extends LambdaSettings {
  name: string;
  /** First 16 hex digits of the SHA-256 of its files' names, modes and contents. */
  version: string;
  /** The snapshot the sandbox mounts as /handler. */
  code: string;
  /** Where it was read from: a directory, or a .tar.gz. */
  packed: boolean;
}

/** What the last read of a lambda gave: its version, or why it was refused (kept, so that a request for a bad archive does not unpack it again). */
type Entry = { signature: string } & ({ lambda: Lambda } | { refused: BadLambdaError });

export class Registry {
  private readonly known = new Map<string, Entry>();

  constructor(
    readonly dir: string,
    private readonly snapshots: string,
    /** The most a .tar.gz lambda may unpack to [tarball.ts' MAX_UNPACKED_BYTES]. */
    private readonly maxUnpackedBytes?: number,
  ) {}

  /**
   * The lambda's current version, or undefined when there is no such lambda; throws
   * BadLambdaError. `loaded` hears of each version the first time it is read.
   */
  lookup(name: string, loaded?: (lambda: Lambda) => void): Lambda | undefined {
    if (!NAME.test(name)) return undefined;
    // Every request looks at the lambda without reading a file (a directory is walked, an
    // archive stat'ed): sizes, modes and times tell a change, and a link that appeared since the
    // last snapshot is refused at once.
    const cached = this.known.get(name);
    const listed = this.listing(name, cached?.signature);
    if (!listed) return undefined;
    if (cached?.signature === listed.signature) {
      if ('refused' in cached) throw cached.refused;
      return cached.lambda;
    }
    let read: { files: LambdaFile[]; signature: string } | undefined;
    let lambda: Lambda;
    try {
      read = this.read(name, listed.packed);
      if (!read) return undefined;
      lambda = this.snapshot(name, read.files, listed.packed);
    } catch (e) {
      if (e instanceof BadLambdaError) this.known.set(name, { signature: listed.signature, refused: e });
      throw e;
    }
    // The signature of what was read, so a change made between the two looks is seen next time.
    this.known.set(name, { signature: read.signature, lambda });
    loaded?.(lambda);
    return lambda;
  }

  /** Names of the lambdas in the registry now: directories (not links) holding an entry marker, and .tar.gz files. */
  names(): string[] {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(this.dir, { withFileTypes: true });
    } catch {
      return [];
    }
    const names = new Set<string>();
    for (const e of entries) {
      if (e.isDirectory() && NAME.test(e.name) && this.hasEntry(e.name)) names.add(e.name);
      const packed = /^(.+)\.tar\.gz$/.exec(e.name);
      if (e.isFile() && packed && NAME.test(packed[1]!)) names.add(packed[1]!);
    }
    return [...names].sort();
  }

  /** Looked at through the directory opened without following a link (/proc/self/fd), so a swap after readdir cannot redirect it. */
  private hasEntry(name: string): boolean {
    let fd: number;
    try {
      fd = fs.openSync(
        path.join(this.dir, name),
        fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW,
      );
    } catch {
      return false;
    }
    try {
      return ENTRY_MARKERS.some((f) => fs.lstatSync(`/proc/self/fd/${fd}/${f}`, { throwIfNoEntry: false })?.isFile());
    } finally {
      fs.closeSync(fd);
    }
  }

  /** What tells the lambda's version has changed (`known`: the signature it had), and which of the two shapes it has; undefined: no such lambda. */
  private listing(name: string, known?: string): { signature: string; packed: boolean } | undefined {
    const files = this.files(name, false);
    // A directory unchanged since it was read is served without looking for an archive beside
    // it (a stat per request): one added later is found ambiguous at the directory's next change.
    if (files && signatureOf(files) === known) return { signature: known, packed: false };
    const tarball = statTarball(this.dir, name);
    if (files && tarball)
      throw new BadLambdaError(`lambda '${name}': both ${name}/ and ${name}.tar.gz are in the registry; remove one`);
    if (files) return { signature: signatureOf(files), packed: false };
    if (tarball) return { signature: tarball.signature, packed: true };
    return undefined;
  }

  private read(name: string, packed: boolean): { files: LambdaFile[]; signature: string } | undefined {
    if (packed) {
      const unpacked = readTarball(this.dir, name, this.maxUnpackedBytes);
      if (!unpacked.files.some((f) => ENTRY_MARKERS.includes(f.path)))
        throw new BadLambdaError(`lambda '${name}': ${name}.tar.gz has none of ${ENTRY_MARKERS.join(', ')} at its top`);
      return unpacked;
    }
    const files = this.files(name, true);
    return files && { files, signature: signatureOf(files) };
  }

  /** The lambda directory's files, or undefined when it has no regular entry marker at its top. */
  private files(name: string, contents: boolean): LambdaFile[] | undefined {
    const found = lambdaFiles(this.dir, name, { contents, skip: SKIP });
    if (found === null) return undefined;
    if ('refused' in found) throw new BadLambdaError(`lambda '${name}': ${found.refused}`);
    return found.files.some((f) => ENTRY_MARKERS.includes(f.path)) ? found.files : undefined;
  }

  /** Written only from the bytes lambdaFiles() read, into .partial-<pid> and renamed into place whole. */
  private snapshot(name: string, files: LambdaFile[], packed: boolean): Lambda {
    // Read first: a lambda its files make bad gets no snapshot.
    const settings = readSettings(name, new Map(files.map((f) => [f.path, f.contents!])));
    const hash = crypto.createHash('sha256');
    for (const f of files) hash.update(`${f.path}\0${f.mode & KEPT_MODE}\0${f.contents!.length}\0`).update(f.contents!);
    const version = hash.digest('hex').slice(0, 16);
    const code = path.join(this.snapshots, `${name}-${version}`);
    if (!fs.existsSync(code)) {
      const partial = `${code}.partial-${process.pid}`;
      // What a killed worker of the same pid left must not become part of this version.
      fs.rmSync(partial, { recursive: true, force: true });
      const made = new Set<string>();
      const directory = (dir: string): void => {
        if (made.has(dir)) return;
        if (dir !== partial) directory(path.dirname(dir));
        fs.mkdirSync(dir);
        fs.chmodSync(dir, 0o755); // whatever the umask
        made.add(dir);
      };
      directory(partial);
      for (const f of files) {
        const target = path.join(partial, f.path);
        directory(path.dirname(target));
        fs.writeFileSync(target, f.contents!, { flag: 'wx' });
        fs.chmodSync(target, f.mode & KEPT_MODE);
      }
      fs.renameSync(partial, code);
    }
    return { name, version, code, packed, ...settings };
  }
}

function signatureOf(files: LambdaFile[]): string {
  return files.map((f) => `${f.path}\0${f.size}\0${f.mode}\0${f.mtimeMs}\0${f.ctimeMs}`).join('\n');
}
