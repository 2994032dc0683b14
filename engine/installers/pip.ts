// Installs a requirement with the host's pip, against an index or directories of wheels: first
// `pip download` (timed: the download), then `pip install --no-index` from what it fetched into
// <into>/python (timed with the byte-compiling: the install). pip runs on the host, but the
// packages run on the base's python3: when the two differ in X.Y, pip is told the base's version
// and takes wheels only (it cannot build for an interpreter it is not running on).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { InstallProvider, ParsedRequirement } from '../installCache.js';
import { normalizePypiName } from '../packageNames.js';
import { DEFAULT_STATE_DIR, removeTree } from '../stateDir.js';
import { byteCompile, ROOT_ENV } from './packageRoot.js';

const run = promisify(execFile);

export interface PipOptions {
  /** The host interpreter that runs pip [default /usr/bin/python3, Debian's, with the python3-pip scripts/setup.sh installs]. */
  python?: string;
  indexUrl?: string;
  findLinks?: string[];
  /** Only findLinks, no index. */
  noIndex?: boolean;
  /** The base's python3 X.Y [default: asked of the base's interpreter]. */
  targetPythonVersion?: string;
  /** The base root file system sandboxes run on [default /var/lib/sockbench/base]. */
  base?: string;
  /** Where temporary files go (downloaded wheels, the byte-compiling root) [default: the OS's temporary directory]. */
  workDir?: string;
}

/** pip's most telling line: its first ERROR, else its last line. */
function pipError(e: unknown): string {
  const lines = String((e as { stderr?: string }).stderr ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  const error = lines.find((l) => l.startsWith('ERROR:')) ?? lines.pop() ?? (e as Error).message;
  return error.replace(/^ERROR: /, '');
}

/** The version of name among the .dist-info directories pip left in target. */
function installedVersion(target: string, name: string): string {
  for (const entry of fs.readdirSync(target)) {
    const m = /^(.+)-([^-]+)\.dist-info$/.exec(entry);
    if (m && normalizePypiName(m[1]!) === name) return m[2]!;
  }
  return '';
}

export class PipProvider implements InstallProvider {
  readonly name = 'pip';
  private readonly python: string;
  private readonly base: string;
  private readonly workDir: string;
  /** The flags that make pip install for the base's interpreter; found once. */
  private targetFlags: Promise<string[]> | undefined;

  constructor(private readonly options: PipOptions = {}) {
    // Not the first python3 on PATH: a version manager's shim (pyenv) runs hooks after `pip install`
    // that wait a minute on a lock a killed install left behind, and its interpreter may lack pip.
    this.python = options.python ?? '/usr/bin/python3';
    this.base = path.resolve(options.base ?? path.join(DEFAULT_STATE_DIR, 'base'));
    this.workDir = path.resolve(options.workDir ?? os.tmpdir());
  }

  async install(requirement: ParsedRequirement, into: string, signal?: AbortSignal): Promise<{ version: string; downloadMs: number; installMs: number }> {
    const target = await this.flagsForBase();
    fs.mkdirSync(this.workDir, { recursive: true });
    const work = fs.mkdtempSync(path.join(this.workDir, `pip-${requirement.name}-`));
    try {
      const wheels = path.join(work, 'wheels');
      let t0 = performance.now();
      await this.pip('download', ['--dest', wheels, ...this.sources(), ...target, requirement.line], signal);
      const downloadMs = performance.now() - t0;
      t0 = performance.now();
      const python = path.join(into, 'python');
      // Not compiled by the host's interpreter: byteCompile does it with the base's.
      await this.pip('install', ['--target', python, '--no-compile', '--no-index', '--find-links', wheels, ...target, requirement.line], signal);
      // pip packages carry their shared libraries themselves (manylinux wheels, found by rpath).
      fs.mkdirSync(path.join(into, 'lib'));
      await byteCompile(this.base, work, requirement.name, into, signal);
      return { version: installedVersion(python, requirement.name), downloadMs, installMs: performance.now() - t0 };
    } finally {
      removeTree(work);
    }
  }

  private sources(): string[] {
    const { indexUrl, findLinks = [], noIndex } = this.options;
    return [...(indexUrl ? ['--index-url', indexUrl] : []), ...findLinks.flatMap((f) => ['--find-links', f]), ...(noIndex ? ['--no-index'] : [])];
  }

  private async pip(command: string, args: string[], signal?: AbortSignal): Promise<void> {
    try {
      await run(this.python, ['-m', 'pip', command, '--disable-pip-version-check', '--no-input', '--no-color', '--quiet', ...args], { signal, maxBuffer: 16 * 2 ** 20 });
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new Error(`pip ${command} failed: ${pipError(e)}`);
    }
  }

  private flagsForBase(): Promise<string[]> {
    // A failure (no pip yet) is not kept: the next install asks again.
    this.targetFlags ??= this.findTargetFlags().catch((e) => {
      this.targetFlags = undefined;
      throw e;
    });
    return this.targetFlags;
  }

  private async findTargetFlags(): Promise<string[]> {
    const [host, base] = await Promise.all([this.hostVersion(), this.options.targetPythonVersion ?? this.baseVersion()]);
    return host === base ? [] : ['--python-version', base, '--only-binary=:all:'];
  }

  /** X.Y of the interpreter pip runs on, from `pip --version`, which also shows pip is there. */
  private async hostVersion(): Promise<string> {
    let out: string;
    try {
      ({ stdout: out } = await run(this.python, ['-m', 'pip', '--version']));
    } catch (e) {
      const why = String((e as { stderr?: string }).stderr ?? '').trim().split('\n').pop() || (e as Error).message;
      throw new Error(`\`${this.python} -m pip\` is not available (${why}); scripts/setup.sh installs python3-pip`);
    }
    const m = /\(python (\d+\.\d+)\)/.exec(out);
    if (!m) throw new Error(`cannot tell the Python version from \`${this.python} -m pip --version\`: ${out.trim()}`);
    return m[1]!;
  }

  private async baseVersion(): Promise<string> {
    try {
      const { stdout } = await run('/usr/sbin/chroot', [this.base, '/usr/bin/python3', '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { env: ROOT_ENV });
      return stdout.trim();
    } catch (e) {
      throw new Error(`cannot run the base's python3 in ${this.base}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
}
