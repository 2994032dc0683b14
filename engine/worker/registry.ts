// The lambdas a worker serves: <registry>/<name>/f.py (defining f(event)), an optional
// requirements.txt and an optional sock.json of settings (today one: {"network": "outbound"}
// asks for connections beyond the sandbox; without it a sandbox has loopback only). A lambda's version is the hash of its files; each version is run from a
// snapshot in the state directory, so editing the registry never changes code under a sandbox
// that is running, and a new version is picked up by the next request without a restart.
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

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** Byte-compiled leftovers of running the handler outside the engine are not part of it. */
const SKIP = ['__pycache__', '.git'];
/** The permission bits a snapshot keeps: never setuid, setgid or sticky. */
const KEPT_MODE = 0o777;

export interface Lambda {
  name: string;
  /** First 16 hex digits of the SHA-256 of its files' names, modes and contents. */
  version: string;
  /** The snapshot the sandbox mounts as /handler. */
  code: string;
  /** requirements.txt's lines without comments and blanks, e.g. "numpy==2.1.0". */
  requirements: string[];
  /** From sock.json: loopback only (the default), or outbound connections too. */
  network: LambdaNetwork;
}

export type LambdaNetwork = 'loopback' | 'outbound';

/** The lambda breaks a rule of the registry (a link, a file its owner could not read, ...): its author's to fix. */
export class BadLambdaError extends Error {}

interface Entry {
  signature: string;
  lambda: Lambda;
}

export class Registry {
  private readonly known = new Map<string, Entry>();

  constructor(
    readonly dir: string,
    private readonly snapshots: string,
  ) {}

  /** The lambda's current version, or undefined when there is no such lambda; throws BadLambdaError. */
  lookup(name: string): Lambda | undefined {
    if (!NAME.test(name)) return undefined;
    // Every request walks the lambda (no file read): sizes, modes and times tell a change,
    // and a link that appeared since the last snapshot is refused at once.
    const listed = this.files(name, false);
    if (!listed) return undefined;
    const cached = this.known.get(name);
    if (cached?.signature === signatureOf(listed)) return cached.lambda;
    const read = this.files(name, true);
    if (!read) return undefined;
    const lambda = this.snapshot(name, read);
    // The signature of what was read, so a change made between the two walks is seen next time.
    this.known.set(name, { signature: signatureOf(read), lambda });
    return lambda;
  }

  /** Names of the lambdas in the registry now: directories, not links, holding a regular f.py. */
  names(): string[] {
    try {
      return fs
        .readdirSync(this.dir, { withFileTypes: true })
        .filter((e) => e.isDirectory() && NAME.test(e.name) && this.hasHandler(e.name))
        .map((e) => e.name)
        .sort();
    } catch {
      return [];
    }
  }

  /** Looked at through the directory opened without following a link (/proc/self/fd), so a swap after readdir cannot redirect it. */
  private hasHandler(name: string): boolean {
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
      return fs.lstatSync(`/proc/self/fd/${fd}/f.py`, { throwIfNoEntry: false })?.isFile() ?? false;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** The lambda's files, or undefined when it has no regular f.py at its top. */
  private files(name: string, contents: boolean): LambdaFile[] | undefined {
    const found = lambdaFiles(this.dir, name, { contents, skip: SKIP });
    if (found === null) return undefined;
    if ('refused' in found) throw new BadLambdaError(`lambda '${name}': ${found.refused}`);
    return found.files.some((f) => f.path === 'f.py') ? found.files : undefined;
  }

  /** Written only from the bytes lambdaFiles() read, into .partial-<pid> and renamed into place whole. */
  private snapshot(name: string, files: LambdaFile[]): Lambda {
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
    const requirements = files.find((f) => f.path === 'requirements.txt');
    const settings = files.find((f) => f.path === 'sock.json');
    return {
      name,
      version,
      code,
      requirements: requirements ? parseRequirements(requirements.contents!.toString('utf8')) : [],
      network: settings ? parseSettings(name, settings.contents!.toString('utf8')).network : 'loopback',
    };
  }
}

/** sock.json: {"network": "loopback" | "outbound"}; anything else is its author's mistake, said in one line. */
function parseSettings(name: string, text: string): { network: LambdaNetwork } {
  let settings: unknown;
  try {
    settings = JSON.parse(text);
  } catch (e) {
    throw new BadLambdaError(`lambda '${name}': sock.json is not JSON: ${(e as Error).message}`);
  }
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings))
    throw new BadLambdaError(`lambda '${name}': sock.json must be an object, e.g. {"network": "outbound"}`);
  const unknown = Object.keys(settings).filter((k) => k !== 'network');
  if (unknown.length > 0)
    throw new BadLambdaError(
      `lambda '${name}': sock.json: unknown setting ${unknown.map((k) => JSON.stringify(k)).join(', ')} (known: "network")`,
    );
  const network = (settings as { network?: unknown }).network ?? 'loopback';
  if (network !== 'loopback' && network !== 'outbound')
    throw new BadLambdaError(
      `lambda '${name}': sock.json: "network" is "loopback" or "outbound", not ${JSON.stringify(network)}`,
    );
  return { network };
}

/** Package lines of a pip-style requirements file: comments (# ...) and blank lines dropped. */
export function parseRequirements(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line.length > 0);
}

function signatureOf(files: LambdaFile[]): string {
  return files.map((f) => `${f.path}\0${f.size}\0${f.mode}\0${f.mtimeMs}\0${f.ctimeMs}`).join('\n');
}
