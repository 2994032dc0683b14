// Installs a PyPI requirement from Debian's python3-* package (PyPI is not reachable here): the
// .debs it needs on top of the base, fetched from the mirror, unpacked with dpkg-deb, laid out
// for the install cache and byte-compiled with the base's python3. Debian ships one version of
// each package per release: a requirement's version specifier is checked against it, and one it
// does not satisfy is refused (naming the version Debian has), never silently replaced.
//
// dpkg-deb and python3 run in the install sandbox (installSandbox.ts), with no network. apt's
// resolution (reading the host's package lists) and the downloads (Node's fetch, checked
// against apt's sizes) stay as root in the worker: no code of a package runs in either.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { InstallProvider, ParsedRequirement } from './provider.js';
import { debianPackageOf, DH_PYTHON_TABLE, inDebianTable } from './packageNames.js';
import { DEFAULT_STATE_DIR } from '../state/stateDir.js';
import { giveToInstallUser, InstallWork, ToolFailed } from './installSandbox.js';
import { byteCompile } from './packageRoot.js';

const run = promisify(execFile);

/** Where Debian's python3-* packages put their modules, relative to the unpacked root. */
const DIST_PACKAGES = 'usr/lib/python3/dist-packages';

export interface Deb {
  url: string;
  file: string;
  bytes: number;
}

/**
 * The .debs the package needs on top of the base: apt resolves against the base's dpkg status
 * (not the host's), from the host's package lists. Not timed: it is apt's solver, not the download.
 */
export async function resolveDebs(
  debian: string,
  base: string,
  emptyDir: string,
  signal?: AbortSignal,
): Promise<Deb[]> {
  let out: string;
  fs.mkdirSync(path.join(emptyDir, 'partial'), { recursive: true });
  try {
    // An empty archive directory: apt leaves out of the list whatever it finds already cached.
    ({ stdout: out } = await run(
      'apt-get',
      [
        'install',
        '--download-only',
        '--print-uris',
        '-y',
        '-qq',
        '--no-install-recommends',
        '-o',
        `Dir::State::status=${path.join(base, 'var/lib/dpkg/status')}`,
        '-o',
        `Dir::Cache::archives=${emptyDir}`,
        '-o',
        'Debug::NoLocking=1',
        debian,
      ],
      { signal },
    ));
  } catch (e) {
    if (signal?.aborted) throw e;
    const stderr =
      String((e as { stderr?: string }).stderr ?? '')
        .trim()
        .split('\n')
        .find((l) => l.startsWith('E:')) ?? (e as Error).message;
    throw new Error(`apt cannot resolve ${debian}: ${stderr.replace(/^E: /, '')}`);
  }
  return out.split('\n').flatMap((line) => {
    const m = /^'(\S+)' (\S+) (\d+) /.exec(line);
    return m ? [{ url: m[1]!, file: m[2]!, bytes: Number(m[3]) }] : [];
  });
}

export async function download(debs: Deb[], into: string, signal?: AbortSignal): Promise<void> {
  for (const deb of debs) {
    const res = await fetch(deb.url, { signal });
    if (!res.ok) throw new Error(`downloading ${deb.url}: HTTP ${res.status}`);
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length !== deb.bytes)
      throw new Error(`downloading ${deb.url}: ${body.length} bytes, expected ${deb.bytes}`);
    fs.writeFileSync(path.join(into, deb.file), body);
  }
}

/**
 * The base has merged /usr (/lib is a link to usr/lib): a package's own /lib directory laid over
 * it would hide the link, and with it the C library. Its contents go under usr/, as dpkg would put them.
 */
export function mergeUsr(target: string, base: string): void {
  for (const top of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    const own = path.join(target, top);
    if (!fs.existsSync(own) || fs.lstatSync(own).isSymbolicLink()) continue;
    if (!fs.lstatSync(path.join(base, top), { throwIfNoEntry: false })?.isSymbolicLink()) continue;
    fs.cpSync(own, path.join(target, 'usr', top), { recursive: true, verbatimSymlinks: true });
    fs.rmSync(own, { recursive: true });
  }
}

/**
 * The shared libraries of the unpacked packages, relative to target, in directories whose path
 * says lib (Python's own extension modules, under python3*, are left out), a directory's files
 * before its subdirectories'. dpkg -x runs no maintainer script, so ldconfig's cache and
 * update-alternatives' links (BLAS and LAPACK for numpy) are missing: the loader must be told
 * where these are.
 */
export function sharedLibraries(target: string): string[] {
  const found: string[] = [];
  const walk = (rel: string) => {
    const entries = fs
      .readdirSync(path.join(target, rel), { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    if (/lib/.test(rel))
      found.push(
        ...entries.filter((e) => /\.so(\.|$)/.test(e.name) && !e.isDirectory()).map((e) => path.join(rel, e.name)),
      );
    for (const e of entries)
      if (e.isDirectory() && !/python3|dist-packages|site-packages|share|doc/.test(e.name))
        walk(path.join(rel, e.name));
  };
  walk('');
  return found;
}

/**
 * <into>/lib/<file> -> ../root/<path> for each library the loader looks up by name (lib*.so*);
 * the first of a name wins. Modules opened by path (Perl's POSIX.so, a plugin's) need no link.
 */
function linkLibraries(into: string): void {
  const lib = path.join(into, 'lib');
  fs.mkdirSync(lib);
  const taken = new Set<string>();
  for (const rel of sharedLibraries(path.join(into, 'root'))) {
    const file = path.basename(rel);
    if (!file.startsWith('lib') || taken.has(file)) continue;
    taken.add(file);
    fs.symlinkSync(path.join('..', 'root', rel), path.join(lib, file));
  }
}

/** The upstream part of a Debian version as numbers: "1:1.24.2-1+deb12u1" -> [1, 24, 2]. */
function upstreamNumbers(debianVersion: string): number[] {
  const upstream = debianVersion.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
  return (/^[\d.]+/.exec(upstream)?.[0] ?? '').split('.').filter(Boolean).map(Number);
}

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** Whether a version satisfies a PEP 440 specifier's clauses, on their numeric release parts ("==1.24.*", ">=9,<11", "~=3.1"). */
export function satisfies(version: number[], specifier: string): boolean {
  return specifier
    .split(',')
    .filter(Boolean)
    .every((clause) => {
      const m = /^(~=|===?|!=|<=?|>=?)(.+)$/.exec(clause);
      if (!m) return false;
      const [op, text] = [m[1]!, m[2]!];
      const wanted = text.replace(/\.\*$/, '').split('.').map(Number);
      if (wanted.some((n) => !Number.isInteger(n))) return false;
      const prefix = compareVersions(version.slice(0, wanted.length), wanted) === 0;
      const c = compareVersions(version, wanted);
      switch (op) {
        case '==':
        case '===':
          return text.endsWith('.*') ? prefix : c === 0;
        case '!=':
          return text.endsWith('.*') ? !prefix : c !== 0;
        case '>=':
          return c >= 0;
        case '<=':
          return c <= 0;
        case '>':
          return c > 0;
        case '<':
          return c < 0;
        default:
          return c >= 0 && compareVersions(version.slice(0, wanted.length - 1), wanted.slice(0, -1)) === 0; // ~=
      }
    });
}

/** The version of debian among the .debs, from apt's file name (name_version_arch.deb, the epoch's ':' escaped). */
function versionOf(debian: string, debs: Deb[]): string {
  const deb = debs.find((d) => d.file.startsWith(`${debian}_`));
  return deb ? decodeURIComponent(deb.file.split('_')[1] ?? '') : '';
}

export interface DebianOptions {
  /** The base root file system sandboxes run on [default /var/lib/sockbench/base]. */
  base?: string;
  /** Where each install's directory goes (downloads, the sandbox's roots), removed after it [default: the OS's temporary directory]. */
  workDir?: string;
}

export class DebianProvider implements InstallProvider {
  readonly name = 'debian';
  private readonly base: string;
  private readonly workDir: string;

  constructor(options: DebianOptions = {}) {
    this.base = path.resolve(options.base ?? path.join(DEFAULT_STATE_DIR, 'base'));
    this.workDir = path.resolve(options.workDir ?? os.tmpdir());
  }

  async install(
    requirement: ParsedRequirement,
    into: string,
    signal?: AbortSignal,
  ): Promise<{ version: string; downloadMs: number; installMs: number }> {
    const debian = debianPackageOf(requirement.name);
    const work = InstallWork.create(this.workDir, `debian-${requirement.name}`);
    try {
      let debs: Deb[];
      try {
        debs = await resolveDebs(debian, this.base, path.join(work.dir, 'apt'), signal);
      } catch (e) {
        if (signal?.aborted) throw e;
        const named = inDebianTable(requirement.name)
          ? `Debian's name for ${requirement.name} in dh-python's table`
          : `guessed by dh-python's rule: its table (${DH_PYTHON_TABLE}) has no ${requirement.name}`;
        throw new Error(
          `${(e as Error).message} (${named}); Debian may not ship it: --installer pip installs from a package index or wheel directory`,
        );
      }
      const version = versionOf(debian, debs);
      if (requirement.specifier && !satisfies(upstreamNumbers(version), requirement.specifier)) {
        throw new Error(
          `Debian's ${debian} is ${version || 'already in the base, at a version not checked'}, which is not ${requirement.specifier}; the Debian provider installs only the version Debian ships: for pinned requirements (pip-compile's, as OpenLambda asks for) run the worker with --installer pip`,
        );
      }
      const debsDir = path.join(work.work, 'debs');
      fs.mkdirSync(debsDir);
      let t0 = performance.now();
      await download(debs, debsDir, signal);
      const downloadMs = performance.now() - t0;
      t0 = performance.now();
      const root = path.join(into, 'root');
      fs.mkdirSync(root);
      giveToInstallUser(root);
      for (const deb of debs) await unpack(work, deb.file, root, signal);
      mergeUsr(root, this.base);
      // Made even when the base already has everything (no .debs), so python/ always resolves.
      fs.mkdirSync(path.join(root, DIST_PACKAGES), { recursive: true });
      fs.symlinkSync(path.join('root', DIST_PACKAGES), path.join(into, 'python'));
      linkLibraries(into);
      await byteCompile(this.base, work, requirement.name, into, signal);
      return { version, downloadMs, installMs: performance.now() - t0 };
    } finally {
      work.remove();
    }
  }
}

/** dpkg-deb -x of <work>/debs/<file> into root, in the sandbox. */
async function unpack(work: InstallWork, file: string, root: string, signal?: AbortSignal): Promise<void> {
  try {
    await work.onHost({
      argv: ['/usr/bin/dpkg-deb', '-x', `/work/debs/${file}`, '/target'],
      env: ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8'],
      binds: [{ source: root, target: '/target', writable: true }],
      signal,
    });
  } catch (e) {
    if (!(e instanceof ToolFailed)) throw e;
    throw new Error(`dpkg-deb -x ${file} failed: ${e.output.trim().split('\n').pop() || e.message}`);
  }
}
