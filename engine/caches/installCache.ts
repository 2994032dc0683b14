// The install cache: each requirement a handler names is installed once, on disk, and then
// mounted read-only into every sandbox that needs it at /packages/<name>. An installed package
// is a directory <cache>/<provider>/<key> holding
//
//   python/        what goes on sys.path
//   lib/           relative links to the shared libraries the package brought, for the loader
//                  (the engine links them all into one /packages/.lib on LD_LIBRARY_PATH)
//   package.json   what was installed and what it cost, written last: the completeness marker
//
// A package is installed into a .partial-* directory and renamed into place only once complete,
// so a directory without package.json is never used: open() removes it, and removes the
// .partial-* directories that a process no longer running left behind.
//
// Providers run their tools in the install sandbox (installers/installSandbox.ts), as the
// install user, who may write only in the .partial-* directory; once the tools are done (and
// every process they started is dead), the whole directory is made root's again before the
// marker is written.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { makeRootOwned } from '../installers/installSandbox.js';
import { normalizePypiName } from '../installers/packageNames.js';
import { isAlive, selfIdentity } from '../state/processIdentity.js';
import { removeTree } from '../state/stateDir.js';
import type { InstallProvider, ParsedRequirement } from '../installers/provider.js';

export interface InstalledPackage {
  name: string;
  requirement: string;
  provider: string;
  dir: string;
  version: string;
  downloadMs: number;
  installMs: number;
  bytes: number;
  installedAt: string;
}

/** A requirement that cannot be installed; the message is one line naming it and why. */
export class InstallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InstallError';
  }
}

const OPERATOR = '(?:~=|===?|!=|<=?|>=?)';
const CLAUSE = `${OPERATOR}\\s*[A-Za-z0-9.*+!_-]+`;
const REQUIREMENT = new RegExp(`^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\\s*(${CLAUSE}(?:\\s*,\\s*${CLAUSE})*)?$`);

/** A plain `name[specifier]` line; URLs, editables, options, extras and markers are refused. */
export function parseRequirement(line: string): ParsedRequirement {
  const trimmed = line.trim();
  const m = REQUIREMENT.exec(trimmed);
  if (!m)
    throw new InstallError(
      `'${trimmed}' is not a requirement the install cache takes: a package name, optionally with a version specifier (no URLs, options, extras or markers)`,
    );
  return { line: trimmed, name: normalizePypiName(m[1]!), specifier: (m[2] ?? '').replace(/\s+/g, '') };
}

/** The directory name of a requirement: readable when the specifier is a plain pin, hashed otherwise ('<', '*', ...). */
export function cacheKey(r: ParsedRequirement): string {
  const key = r.name + r.specifier;
  if (/^[a-z0-9.=-]+$/.test(key) && key.length <= 100) return key;
  // '@' appears in no normalized name, so a hashed key never equals a plain one.
  return `${r.name.slice(0, 60)}@${crypto.createHash('sha256').update(key).digest('hex').slice(0, 16)}`;
}

const MARKER = 'package.json';
/** ".partial-<key>-<pid>-<process start time>-<random>": the owner is named so open() can tell a dead one's. */
const PARTIAL = /^\.partial-.+-(\d+-\d+)-[0-9a-f]+$/;

type Marker = Omit<InstalledPackage, 'dir'>;

function readMarker(dir: string): InstalledPackage | undefined {
  try {
    const marker = JSON.parse(fs.readFileSync(path.join(dir, MARKER), 'utf8')) as Marker;
    return { ...marker, dir };
  } catch {
    return undefined;
  }
}

/** Apparent bytes under dir; links are counted, not followed (python/ links into root/). */
function treeBytes(dir: string): number {
  let bytes = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    bytes += e.isDirectory() ? treeBytes(full) : fs.lstatSync(full).size;
  }
  return bytes;
}

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).trim().split('\n')[0];

export class InstallCache {
  private readonly installed = new Map<string, InstalledPackage>();
  private readonly inFlight = new Map<string, { line: string; done: Promise<InstalledPackage> }>();
  /** Aborted by close(): kills the tools of every install in flight. */
  private readonly closing = new AbortController();
  private installs = 0;
  private failures = 0;

  private constructor(
    private readonly dir: string,
    private readonly provider: InstallProvider,
    private readonly log: (line: string) => void,
  ) {}

  /** The cache at dir (made if missing), with what an interrupted install left there removed. */
  static open(dir: string, provider: InstallProvider, log: (line: string) => void = () => {}): InstallCache {
    const cache = new InstallCache(path.resolve(dir), provider, log);
    fs.mkdirSync(cache.providerDir, { recursive: true });
    cache.load();
    return cache;
  }

  private get providerDir(): string {
    return path.join(this.dir, this.provider.name);
  }

  private load(): void {
    for (const entry of fs.readdirSync(this.providerDir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const full = path.join(this.providerDir, entry.name);
      const partial = PARTIAL.exec(entry.name);
      if (partial) {
        // A live owner (another cache in this or another process) is still installing into it.
        if (!isAlive(partial[1]!)) this.remove(full, 'left by an interrupted install');
        continue;
      }
      if (entry.name.startsWith('.')) continue;
      const found = readMarker(full);
      if (found) this.installed.set(entry.name, found);
      else this.remove(full, `no ${MARKER}: an incomplete install`);
    }
  }

  private remove(dir: string, why: string): void {
    removeTree(dir);
    this.log(`install cache: removed ${dir} (${why})`);
  }

  /**
   * The requirements installed, in the order asked: what is missing is installed (concurrent
   * callers needing the same package share one install). Rejects with an InstallError if any
   * line is refused (before anything is installed) or any install fails, once the others have
   * settled: nothing it started is still writing when it returns.
   */
  async ensure(requirements: string[]): Promise<InstalledPackage[]> {
    const parsed = requirements.map(parseRequirement);
    const settled = await Promise.allSettled(parsed.map((r) => this.one(r)));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    return settled.map((s) => (s as PromiseFulfilledResult<InstalledPackage>).value);
  }

  private one(r: ParsedRequirement): Promise<InstalledPackage> {
    const key = cacheKey(r);
    const found = this.installed.get(key);
    if (found) return Promise.resolve(found);
    let flight = this.inFlight.get(key);
    if (!flight) {
      // A failure is not remembered: the next ensure() tries again from scratch.
      flight = { line: r.line, done: this.install(r, key).finally(() => this.inFlight.delete(key)) };
      this.inFlight.set(key, flight);
    }
    return flight.done;
  }

  private async install(r: ParsedRequirement, key: string): Promise<InstalledPackage> {
    const final = path.join(this.providerDir, key);
    const partial = path.join(
      this.providerDir,
      `.partial-${key}-${selfIdentity()}-${crypto.randomBytes(4).toString('hex')}`,
    );
    this.log(`install cache: installing ${r.line} (${this.provider.name})`);
    try {
      fs.mkdirSync(partial);
      // Sandboxes run as nobody: the package directory must be searchable whatever the umask.
      fs.chmodSync(partial, 0o755);
      const measured = await this.provider.install(r, partial, this.closing.signal);
      makeRootOwned(partial);
      const marker: Marker = {
        name: r.name,
        requirement: r.line,
        provider: this.provider.name,
        version: measured.version,
        downloadMs: measured.downloadMs,
        installMs: measured.installMs,
        bytes: treeBytes(partial),
        installedAt: new Date().toISOString(),
      };
      fs.writeFileSync(path.join(partial, MARKER), `${JSON.stringify(marker, null, 2)}\n`);
      fs.renameSync(partial, final);
      const done = { ...marker, dir: final };
      this.installed.set(key, done);
      this.installs++;
      this.log(
        `install cache: ${r.line} ${done.version} (${this.provider.name}): download ${Math.round(done.downloadMs)} ms, install ${Math.round(done.installMs)} ms, ${(done.bytes / 2 ** 20).toFixed(1)} MiB`,
      );
      return done;
    } catch (e) {
      this.failures++;
      fs.rmSync(partial, { recursive: true, force: true });
      const error = new InstallError(`cannot install ${r.line} (${this.provider.name}): ${firstLine(e)}`);
      this.log(`install cache: ${error.message}`);
      throw error;
    }
  }

  /** Kills the installs in flight and waits for them to fail; installs asked for afterwards fail at once. */
  async close(): Promise<void> {
    this.closing.abort(new Error('the install cache was closed (the worker is shutting down)'));
    await Promise.allSettled([...this.inFlight.values()].map((f) => f.done));
  }

  status(): {
    provider: string;
    dir: string;
    packages: number;
    installs: number;
    failures: number;
    installing: string[];
    bytes: number;
  } {
    let bytes = 0;
    for (const p of this.installed.values()) bytes += p.bytes;
    return {
      provider: this.provider.name,
      dir: this.dir,
      packages: this.installed.size,
      installs: this.installs,
      failures: this.failures,
      installing: [...this.inFlight.values()].map((f) => f.line),
      bytes,
    };
  }
}
