// Installs a requirement with the host's pip, against an index or directories of wheels: first
// `pip download` (timed: the download), then `pip install --no-index` from what it fetched into
// <into>/python (timed with the byte-compiling: the install). pip runs the host's interpreter,
// but the packages run on the base's python3: when the two differ in X.Y, pip is told the base's
// version and takes wheels only (it cannot build for an interpreter it is not running on).
//
// Both steps run in the install sandbox (installSandbox.ts) as the install user: an sdist's
// setup.py runs in each. The download keeps the host's network; the install has none. Neither
// reads a configuration or cache of root's (PIP_CONFIG_FILE=/dev/null, --no-cache-dir, HOME in
// the work directory, python -I). Builds use the host's setuptools and wheel
// (--no-build-isolation): the install step has no network to fetch a build backend into an
// isolated environment, so an sdist needing another backend than setuptools needs a wheel.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { InstallProvider, ParsedRequirement } from './provider.js';
import { normalizePypiName } from './packageNames.js';
import { DEFAULT_STATE_DIR } from '../state/stateDir.js';
import {
  giveToInstallUser,
  InstallWork,
  requireReadableByInstallUser,
  ToolFailed,
  type Bind,
} from './installSandbox.js';
import { byteCompile, ROOT_ENV } from './packageRoot.js';

const run = promisify(execFile);

export interface PipOptions {
  /**
   * The host interpreter that runs pip [default /usr/bin/python3, Debian's, with the python3-pip
   * scripts/setup.sh installs]; under /usr, the part of the host the install sandbox sees.
   */
  python?: string;
  indexUrl?: string;
  findLinks?: string[];
  /** Only findLinks, no index. */
  noIndex?: boolean;
  /** The base's python3 X.Y [default: asked of the base's interpreter]. */
  targetPythonVersion?: string;
  /** The base root file system sandboxes run on [default /var/lib/sockbench/base]. */
  base?: string;
  /** Where each install's directory goes (downloads, the sandbox's roots) [default: the OS's temporary directory]. */
  workDir?: string;
}

/** pip's most telling line: its first ERROR, else its last line. */
function pipError(e: ToolFailed): string {
  const lines = e.output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const error = lines.find((l) => l.startsWith('ERROR:')) ?? lines.pop() ?? e.message;
  return error.replace(/^ERROR: /, '');
}

/** The proxy settings a download keeps from the worker's environment: nothing else of it reaches pip. */
const PROXY_VARIABLES = ['http_proxy', 'https_proxy', 'no_proxy', 'all_proxy'].flatMap((v) => [v, v.toUpperCase()]);

/** Where the sandbox sees the local index or find-links directories, in order. */
const SOURCES = '/sources';

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

  async install(
    requirement: ParsedRequirement,
    into: string,
    signal?: AbortSignal,
  ): Promise<{ version: string; downloadMs: number; installMs: number }> {
    const target = await this.flagsForBase();
    if (!this.python.startsWith('/usr/'))
      throw new Error(
        `${this.python}: pip's interpreter must be under /usr, the part of the host the install sandbox sees`,
      );
    const { args: sources, binds } = this.sources();
    const work = InstallWork.create(this.workDir, `pip-${requirement.name}`);
    try {
      let t0 = performance.now();
      await this.pip(work, 'download', ['--dest', '/work/wheels', ...sources, ...target, requirement.line], {
        network: true,
        binds,
        signal,
      });
      const downloadMs = performance.now() - t0;
      t0 = performance.now();
      const python = path.join(into, 'python');
      fs.mkdirSync(python);
      giveToInstallUser(python);
      // Not compiled by the host's interpreter: byteCompile does it with the base's.
      await this.pip(
        work,
        'install',
        [
          '--target',
          '/target',
          '--no-compile',
          '--no-index',
          '--find-links',
          '/work/wheels',
          ...target,
          requirement.line,
        ],
        {
          binds: [{ source: python, target: '/target', writable: true }],
          signal,
        },
      );
      // pip packages carry their shared libraries themselves (manylinux wheels, found by rpath).
      fs.mkdirSync(path.join(into, 'lib'));
      await byteCompile(this.base, work, requirement.name, into, signal);
      return { version: installedVersion(python, requirement.name), downloadMs, installMs: performance.now() - t0 };
    } finally {
      work.remove();
    }
  }

  /**
   * pip's index and find-links options as the sandbox sees them: a local directory or file (a
   * path or a file: URL) is bound read-only at /sources/<n>, after checking that the install
   * user can read it; a remote URL is passed on.
   */
  private sources(): { args: string[]; binds: Bind[] } {
    const { indexUrl, findLinks = [], noIndex } = this.options;
    const binds: Bind[] = [];
    const inSandbox = (option: string, source: string): string => {
      const local = source.startsWith('file:')
        ? fileURLToPath(source)
        : /^\w+:\/\//.test(source)
          ? undefined
          : path.resolve(source);
      if (local === undefined) return source;
      requireReadableByInstallUser(option, local);
      const inside = `${SOURCES}/${binds.length}`;
      binds.push({ source: local, target: inside });
      return source.startsWith('file:') ? pathToFileURL(inside).href : inside;
    };
    const args = [
      ...(indexUrl ? ['--index-url', inSandbox('--pip-index-url', indexUrl)] : []),
      ...findLinks.flatMap((f) => ['--find-links', inSandbox('--pip-find-links', f)]),
      ...(noIndex ? ['--no-index'] : []),
    ];
    return { args, binds };
  }

  private async pip(
    work: InstallWork,
    command: string,
    args: string[],
    options: { network?: boolean; binds: Bind[]; signal?: AbortSignal },
  ): Promise<void> {
    const env = [
      'PATH=/usr/bin:/bin',
      'LANG=C.UTF-8',
      'HOME=/work/home',
      'TMPDIR=/work/tmp',
      'PIP_CONFIG_FILE=/dev/null',
      ...(options.network
        ? PROXY_VARIABLES.filter((v) => process.env[v] !== undefined).map((v) => `${v}=${process.env[v]}`)
        : []),
    ];
    const argv = [
      this.python,
      '-I',
      '-m',
      'pip',
      command,
      '--disable-pip-version-check',
      '--no-input',
      '--no-color',
      '--quiet',
      '--no-cache-dir',
      '--no-build-isolation',
      ...args,
    ];
    try {
      await work.onHost({ argv, env, ...options });
    } catch (e) {
      if (!(e instanceof ToolFailed)) throw e;
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
    const [host, base] = await Promise.all([
      this.hostVersion(),
      this.options.targetPythonVersion ?? this.baseVersion(),
    ]);
    return host === base ? [] : ['--python-version', base, '--only-binary=:all:'];
  }

  /** X.Y of the interpreter pip runs on, from `pip --version`, which also shows pip is there. */
  private async hostVersion(): Promise<string> {
    let out: string;
    try {
      ({ stdout: out } = await run(this.python, ['-I', '-m', 'pip', '--version']));
    } catch (e) {
      const why =
        String((e as { stderr?: string }).stderr ?? '')
          .trim()
          .split('\n')
          .pop() || (e as Error).message;
      throw new Error(`\`${this.python} -m pip\` is not available (${why}); scripts/setup.sh installs python3-pip`);
    }
    const m = /\(python (\d+\.\d+)\)/.exec(out);
    if (!m) throw new Error(`cannot tell the Python version from \`${this.python} -m pip --version\`: ${out.trim()}`);
    return m[1]!;
  }

  private async baseVersion(): Promise<string> {
    try {
      const { stdout } = await run(
        '/usr/sbin/chroot',
        [this.base, '/usr/bin/python3', '-c', 'import sys; print("%d.%d" % sys.version_info[:2])'],
        { env: ROOT_ENV },
      );
      return stdout.trim();
    } catch (e) {
      throw new Error(`cannot run the base's python3 in ${this.base}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
}
