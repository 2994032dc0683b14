// The Python package study (the paper's Figure 3): for each of the most imported PyPI packages,
// what it costs to download (from Debian's mirror: no PyPI here), install (unpack into an empty
// target) and import (in a fresh interpreter in the base with the package laid over it, minus
// the interpreter's own start; warm page cache, and cold after dropping it), with the installed
// size and the modules the import loads.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Argv } from 'yargs';
import { baseProblem } from '../../engine/sandbox/baseRootfs.js';
import { download, mergeUsr, resolveDebs, sharedLibraries } from '../../engine/installers/debian.js';
import { debianPackageOf, importNameOf, normalizePypiName } from '../../engine/installers/packageNames.js';
import { DEFAULT_STATE_DIR } from '../../engine/state/stateDir.js';
import { constants, mount, umount2 } from '../../native/index.js';
import { PrivilegeError, UsageError } from '../../harness/errors.js';
import { ownedTmpfs, reclaimLeftovers, removeOwnedDir } from '../../harness/ownedDirs.js';
import type { Experiment, Measurement, Point, RunContext, Row } from '../../harness/types.js';
import { importsFigure } from './figure.js';
import { paper } from './paper.js';

const run = promisify(execFile);

/**
 * The paper names its 20 packages only on Figure 3's axis. These are OpenLambda's pre-imported
 * packages plus the popular ones DESIGN.md adds, all shipped by Debian as python3-*.
 */
const PACKAGES = [
  'simplejson',
  'setuptools',
  'six',
  'django',
  'numpy',
  'requests',
  'jinja2',
  'python-dateutil',
  'pyyaml',
  'Pillow',
  'matplotlib',
  'sqlalchemy',
  'mock',
  'pandas',
  'pytz',
  'urllib3',
  'sqlparse',
  'werkzeug',
  'click',
  'markupsafe',
];
const QUICK_PACKAGES = ['six', 'simplejson', 'pyyaml'];

/** `import PIL` loads nothing but the namespace; a handler using Pillow imports PIL.Image. */
const STUDY_IMPORT: Record<string, string> = { pillow: 'PIL.Image' };

let dir: string | undefined;
let counter = 0;

const baseOf = (options: Record<string, unknown>) =>
  path.resolve(String(options.base ?? process.env.SOCK_BASE ?? path.join(DEFAULT_STATE_DIR, 'base')));

/** Seconds python3 takes in the chroot, from fork to exit, and what it printed. */
async function python(root: string, code: string, libraryPath: string): Promise<{ ms: number; stdout: string }> {
  const t0 = performance.now();
  try {
    const { stdout } = await run('/usr/sbin/chroot', [root, '/usr/bin/python3', '-B', '-c', code], {
      env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', HOME: '/tmp', LD_LIBRARY_PATH: libraryPath },
    });
    return { ms: performance.now() - t0, stdout };
  } catch (e) {
    const last = String((e as { stderr?: string }).stderr ?? '')
      .trim()
      .split('\n')
      .pop();
    throw new Error(`python3 in the package's root failed: ${last || (e as Error).message}`);
  }
}

/** Directories of the unpacked packages that hold shared libraries, as seen from inside, for LD_LIBRARY_PATH. */
function libraryDirs(target: string): string {
  return [...new Set(sharedLibraries(target).map((f) => `/${path.dirname(f)}`))].join(':');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Kilobytes under dir. */
async function sizeKb(target: string): Promise<number> {
  const { stdout } = await run('du', ['-sk', target]);
  return Number(stdout.split('\t')[0]);
}

const FAILED = {
  download_ms: NaN,
  download_kb: NaN,
  debs: NaN,
  install_ms: NaN,
  installed_kb: NaN,
  python_start_ms: NaN,
  import_ms: NaN,
  import_inproc_ms: NaN,
  import_cold_ms: NaN,
  modules: NaN,
};

async function measurePackage(
  pypi: string,
  base: string,
  runs: number,
  cold: boolean,
): Promise<Record<string, number | string>> {
  const debian = debianPackageOf(pypi);
  const module = STUDY_IMPORT[normalizePypiName(pypi)] ?? importNameOf(pypi);
  const work = path.join(dir!, `p${++counter}`);
  const debsDir = path.join(work, 'debs');
  const target = path.join(work, 'target');
  const merged = path.join(work, 'merged');
  for (const d of [debsDir, target, merged]) fs.mkdirSync(d, { recursive: true });
  try {
    const debs = await resolveDebs(debian, base, path.join(work, 'apt'));
    let t0 = performance.now();
    await download(debs, debsDir);
    const downloadMs = performance.now() - t0;
    // Install = unpack, then byte-compile, as pip and Debian's own postinst do: an unpacked
    // package without .pyc files would compile its modules on every import instead.
    for (const d of ['upper', 'overlay-work']) fs.mkdirSync(path.join(work, d));
    t0 = performance.now();
    for (const deb of debs) await run('dpkg-deb', ['-x', path.join(debsDir, deb.file), target]);
    mergeUsr(target, base);
    // The package over the base: its Python files and the native libraries it needs are where
    // the interpreter and the loader look for them. Writable (the .pyc files, and matplotlib
    // wants a /tmp), into the run's tmpfs.
    mount(
      'overlay',
      merged,
      'overlay',
      0,
      `lowerdir=${target}:${base},upperdir=${path.join(work, 'upper')},workdir=${path.join(work, 'overlay-work')}`,
    );
    const libs = libraryDirs(target);
    try {
      await python(
        merged,
        'import compileall, sys; sys.exit(0 if compileall.compile_dir("/usr/lib/python3/dist-packages", quiet=1) else 1)',
        libs,
      );
      const installMs = performance.now() - t0;
      const installedKb = (await sizeKb(target)) + (await sizeKb(path.join(work, 'upper')));
      const probe = `import sys, time\nn = len(sys.modules)\nt = time.perf_counter()\nimport ${module}\nprint(time.perf_counter() - t, len(sys.modules) - n)`;
      let coldMs = NaN;
      if (cold) {
        // Every clean page the machine caches goes, so the import reads its files from disk.
        fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
        coldMs = Number((await python(merged, probe, libs)).stdout.split(' ')[0]) * 1000;
      }
      const starts: number[] = [];
      const imports: number[] = [];
      const inproc: number[] = [];
      let modules = NaN;
      await python(merged, probe, libs); // warms the cache for both
      for (let i = 0; i < runs; i++) {
        starts.push((await python(merged, 'pass', libs)).ms);
        const r = await python(merged, probe, libs);
        imports.push(r.ms);
        const [seconds, loaded] = r.stdout.trim().split(' ');
        inproc.push(Number(seconds) * 1000);
        modules = Number(loaded);
      }
      return {
        package: pypi,
        debian,
        error: '',
        download_ms: downloadMs,
        download_kb: debs.reduce((s, d) => s + d.bytes, 0) / 1024,
        debs: debs.length,
        install_ms: installMs,
        installed_kb: installedKb,
        python_start_ms: median(starts),
        import_ms: median(imports) - median(starts),
        import_inproc_ms: median(inproc),
        import_cold_ms: coldMs,
        modules,
      };
    } finally {
      umount2(merged, constants.MNT_DETACH);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export const imports: Experiment = {
  name: 'imports',
  summary: 'download, install and import cost of the most imported Python packages (Debian packages)',
  paper,
  defaults: { concurrency: [1], duration: 1, repeat: 3, warmup: 0 },
  quick: { concurrency: [1], duration: 1, repeat: 1, warmup: 0 },

  options(argv: Argv): Argv {
    return argv
      .option('packages', {
        type: 'string',
        describe: `comma-separated PyPI names [default: the 20 of the study; with --quick ${QUICK_PACKAGES.join(',')}]`,
      })
      .option('import-runs', {
        type: 'number',
        default: 7,
        describe: 'warm imports (and interpreter starts) per measurement; the median is kept',
      })
      .option('cold', {
        type: 'boolean',
        default: true,
        describe:
          "also time one import after dropping the page cache (echo 3 > /proc/sys/vm/drop_caches: the whole machine's clean cache); --no-cold skips it",
      })
      .option('base', {
        type: 'string',
        describe: 'base root file system [default: $SOCK_BASE or /var/lib/sockbench/base]',
      });
  },

  configs(options) {
    const names =
      options.packages === undefined
        ? options.quick
          ? QUICK_PACKAGES
          : PACKAGES
        : String(options.packages)
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean);
    if (names.length === 0) throw new UsageError('--packages: give at least one PyPI package name');
    const bad = names.find((n) => !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(n));
    if (bad) throw new UsageError(`--packages: '${bad}' is not a package name`);
    const runs = Number(options['import-runs']);
    if (!Number.isInteger(runs) || runs < 1)
      throw new UsageError(`--import-runs: '${options['import-runs']}' is not a whole number >= 1`);
    return [...new Map(names.map((n) => [normalizePypiName(n), n])).values()];
  },

  async preflight(options) {
    if (process.geteuid?.() !== 0)
      throw new PrivilegeError('imports mounts overlays and chroots, and needs root: run it as root');
    const problem = baseProblem(baseOf(options));
    if (problem) throw new PrivilegeError(`no base root file system (${problem}); scripts/setup.sh builds it`);
  },

  async setup(ctx: RunContext) {
    for (const d of reclaimLeftovers('imports')) ctx.progress.note(`imports: removed ${d}, left by a run that is gone`);
    dir = ownedTmpfs('imports', 4096);
  },

  async teardown() {
    if (dir) removeOwnedDir(dir);
    dir = undefined;
  },

  async measure(point: Point, ctx: RunContext): Promise<Measurement> {
    const t0 = performance.now();
    let row: Record<string, number | string>;
    try {
      row = await measurePackage(
        point.config,
        baseOf(ctx.options),
        Number(ctx.options['import-runs']),
        ctx.options.cold !== false,
      );
    } catch (e) {
      if (ctx.signal.aborted) throw e;
      // One package that cannot be fetched or imported does not stop the others.
      const error = (e as Error).message.split('\n')[0]!;
      ctx.progress.note(`imports: ${point.config}: ${error}`);
      row = { package: point.config, debian: debianPackageOf(point.config), error, ...FAILED };
    }
    const seconds = (performance.now() - t0) / 1000;
    return { ops: 1, seconds, latenciesUs: Float64Array.of(seconds * 1e6), extra: row };
  },

  figure(rows: Row[]) {
    return importsFigure(rows);
  },
};
