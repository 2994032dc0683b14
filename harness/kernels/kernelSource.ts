// Which kernel a `--kernel` argument names, and getting it onto disk: a Debian package fetched
// with `apt-get download` and unpacked into a cache the project owns, a local .deb unpacked the
// same way, a bare vmlinuz (with its modules beside it, or --modules), or `host`: this machine.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PrivilegeError, UsageError } from '../errors.js';
import { orphansIn } from '../ownedDirs.js';
import { selfIdentity } from '../../engine/state/processIdentity.js';

const execFileAsync = promisify(execFile);

/** Where fetched and unpacked kernels are kept between runs. */
export const KERNEL_CACHE = process.env.SOCKBENCH_KERNEL_CACHE ?? '/var/cache/sockbench/kernels';

export type KernelSpec = (
  | { kind: 'host'; arg: string }
  | { kind: 'package'; arg: string; package: string }
  | { kind: 'deb'; arg: string; deb: string }
  | { kind: 'vmlinuz'; arg: string; vmlinuz: string }
) & {
  /** Boot parameters added to the guest's command line (the text after `:` in --kernel). */
  params?: string;
};

/** A kernel ready to boot (or the host). */
export interface Kernel {
  spec: KernelSpec;
  /**
   * Short name for logs and directories: the package name, the .deb's package, the file name, or
   * "host"; with boot parameters after it in brackets, so one kernel booted two ways reads as two.
   */
  name: string;
  /** The release the kernel reports (uname -r), as far as the host can tell before booting it. */
  release: string;
  /** Debian package and version, when it came from one. */
  package?: string;
  version?: string;
  vmlinuz?: string;
  /** lib/modules/<release> with a modules.dep, when the kernel has modules. */
  modulesDir?: string;
  /** The kernel's build config (boot/config-<release>), when known. */
  config?: string;
}

/**
 * Parameters kernels sets itself (guestEnv.ts' KERNEL_APPEND): the guest's init and console
 * depend on them, so --kernel may not replace them.
 */
const OWN_PARAMS = ['console', 'rdinit', 'init', 'panic'];

/**
 * Classifies one --kernel argument; refuses (UsageError) what is none of the accepted forms.
 * `KERNEL:PARAMS` boots KERNEL with PARAMS (space-separated words) added to its command line,
 * so one kernel with different settings is compared under one accelerator. A path that exists
 * as a file is taken whole, colon and all.
 */
export function parseKernelArg(arg: string): KernelSpec {
  const a = arg.trim();
  const colon = a.indexOf(':');
  if (colon < 0 || fs.existsSync(a)) return parseKernel(a, arg);
  const spec = parseKernel(a.slice(0, colon), arg);
  if (spec.kind === 'host')
    throw new UsageError(
      `--kernel: ${a}: this machine's boot parameters cannot be changed from here; boot its kernel (a vmlinuz path) in a guest instead`,
    );
  return { ...spec, params: parseParams(a.slice(colon + 1), a) };
}

function parseParams(text: string, arg: string): string {
  const words = text.split(/\s+/).filter(Boolean);
  if (words.length === 0)
    throw new UsageError(`--kernel: ${arg}: no boot parameters after ':' (e.g. 6.1.0-50-amd64:ipv6.disable=1)`);
  for (const w of words) {
    if (!/^[A-Za-z0-9_.,=+/-]+$/.test(w))
      throw new UsageError(
        `--kernel: ${arg}: boot parameter '${w}' has characters other than letters, digits and _ . , = + / -`,
      );
    const key = w.split('=')[0]!;
    if (OWN_PARAMS.includes(key))
      throw new UsageError(`--kernel: ${arg}: ${key}= is set by kernels itself (the guest's init needs it)`);
  }
  return words.join(' ');
}

function parseKernel(a: string, arg: string): KernelSpec {
  if (a === 'host') return { kind: 'host', arg };
  if (a === '')
    throw new UsageError("--kernel: empty value (give a Debian kernel package, a .deb, a vmlinuz path or 'host')");
  if (a.endsWith('.deb')) {
    const deb = path.resolve(a);
    if (!fs.existsSync(deb) || !fs.statSync(deb).isFile()) throw new UsageError(`--kernel: ${a}: no such .deb file`);
    return { kind: 'deb', arg, deb };
  }
  if (a.includes('/')) {
    const vmlinuz = path.resolve(a);
    if (!fs.existsSync(vmlinuz) || !fs.statSync(vmlinuz).isFile())
      throw new UsageError(`--kernel: ${a}: no such kernel image file`);
    if (bzImageVersion(vmlinuz) === undefined)
      throw new UsageError(`--kernel: ${a}: not an x86 Linux kernel image (no bzImage header)`);
    return { kind: 'vmlinuz', arg, vmlinuz };
  }
  if (/^linux-image-[0-9][A-Za-z0-9.+~-]*$/.test(a)) return { kind: 'package', arg, package: a };
  if (/^[0-9]+\.[0-9]+[A-Za-z0-9.+~-]*$/.test(a)) return { kind: 'package', arg, package: `linux-image-${a}` };
  throw new UsageError(
    `--kernel: '${a}' is not a Debian kernel package (linux-image-6.1.0-50-amd64 or 6.1.0-50-amd64, with :PARAMS to add boot parameters), a .deb, a vmlinuz path, or 'host'`,
  );
}

/**
 * The version string of a bzImage ("6.1.0-50-amd64 (debian-kernel@...) #1 SMP ..."), read from
 * its setup header: "HdrS" at 0x202, kernel_version (offset - 0x200) at 0x20e. Undefined for a
 * file that is not one.
 */
export function bzImageVersion(file: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(0x4000);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    if (n < 0x210 || head.toString('latin1', 0x202, 0x206) !== 'HdrS') return undefined;
    const at = head.readUInt16LE(0x20e) + 0x200;
    const text = Buffer.alloc(256);
    fs.readSync(fd, text, 0, text.length, at);
    const s = text.toString('latin1');
    return s.slice(0, s.indexOf('\0') >= 0 ? s.indexOf('\0') : undefined).trim() || '';
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Gets every kernel ready, in order: downloads and unpacks what the cache lacks. */
export async function prepareKernels(
  specs: KernelSpec[],
  opts: { modules?: string; note: (s: string) => void },
): Promise<Kernel[]> {
  const vmlinuzCount = specs.filter((s) => s.kind === 'vmlinuz').length;
  if (opts.modules !== undefined && vmlinuzCount !== 1) {
    throw new UsageError(
      `--modules: applies to a kernel given as a vmlinuz path, and exactly one must be given (got ${vmlinuzCount})`,
    );
  }
  const kernels: Kernel[] = [];
  for (const spec of specs) {
    let k: Kernel;
    switch (spec.kind) {
      case 'host':
        k = { spec, name: 'host', release: os.release() };
        break;
      case 'package':
        k = await fromPackage(spec, opts.note);
        break;
      case 'deb':
        k = await fromDeb(spec, spec.deb, opts.note);
        break;
      case 'vmlinuz':
        k = fromVmlinuz(spec, opts.modules);
        break;
    }
    kernels.push(spec.params ? { ...k, name: `${k.name} [${spec.params}]` } : k);
  }
  return kernels;
}

/** What unpacking left in a cache entry, so a later run needs neither apt nor dpkg-deb. */
interface CacheRecord {
  package: string;
  version: string;
  release: string;
  vmlinuz: string;
  modulesDir: string;
  config?: string;
  deb?: string;
}

async function fromPackage(spec: Extract<KernelSpec, { kind: 'package' }>, note: (s: string) => void): Promise<Kernel> {
  const entry = path.join(KERNEL_CACHE, spec.package);
  const cached = readRecord(entry);
  if (cached) return kernelOf(spec, cached);
  await requireTool('apt-get', 'apt-get is needed to fetch Debian kernel packages');
  fs.mkdirSync(KERNEL_CACHE, { recursive: true });
  return withPartial(KERNEL_CACHE, async (partial) => {
    note(`kernels: fetching ${spec.package} (apt-get download)`);
    try {
      await execFileAsync('apt-get', ['download', spec.package], { cwd: partial, maxBuffer: 16 << 20 });
    } catch (e) {
      const err =
        String((e as { stderr?: string }).stderr ?? e)
          .split('\n')
          .find((l) => l.startsWith('E:')) ?? String(e).split('\n')[0];
      throw new PrivilegeError(
        `kernel package ${spec.package} could not be fetched (${err.replace(/^E:\s*/, '')}): \`apt-cache search --names-only '^linux-image-6'\` lists those apt knows; \`apt-get update\` refreshes the lists`,
      );
    }
    const deb = fs.readdirSync(partial).find((f) => f.endsWith('.deb'));
    if (!deb) throw new PrivilegeError(`kernel package ${spec.package}: apt-get download wrote no .deb`);
    const record = await unpack(path.join(partial, deb), path.join(partial, 'root'), note);
    fs.rmSync(path.join(partial, deb));
    return kernelOf(spec, commit(partial, entry, record));
  });
}

async function fromDeb(spec: KernelSpec, deb: string, note: (s: string) => void): Promise<Kernel> {
  await requireTool('dpkg-deb', 'dpkg-deb is needed to unpack a kernel .deb');
  const { stdout } = await execFileAsync('dpkg-deb', ['-f', deb, 'Package', 'Version']).catch(() => {
    throw new UsageError(`--kernel: ${spec.arg}: not a Debian package (dpkg-deb cannot read it)`);
  });
  const fields = Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
  );
  const st = fs.statSync(deb);
  // Same package and version built twice must not share an entry: the file's identity is in the name.
  const id = createHash('sha256')
    .update(`${fs.realpathSync(deb)}\0${st.size}\0${st.mtimeMs}`)
    .digest('hex')
    .slice(0, 10);
  const entry = path.join(
    KERNEL_CACHE,
    `deb-${fields.Package}_${fields.Version}-${id}`.replace(/[^A-Za-z0-9.+~_-]/g, '_'),
  );
  const cached = readRecord(entry);
  if (cached) return kernelOf(spec, cached);
  fs.mkdirSync(KERNEL_CACHE, { recursive: true });
  return withPartial(KERNEL_CACHE, async (partial) => {
    const record = await unpack(deb, path.join(partial, 'root'), note);
    return kernelOf(spec, commit(partial, entry, { ...record, deb }));
  });
}

function fromVmlinuz(spec: Extract<KernelSpec, { kind: 'vmlinuz' }>, modules?: string): Kernel {
  const release = (bzImageVersion(spec.vmlinuz) ?? '').split(' ')[0] ?? '';
  const dir = path.dirname(spec.vmlinuz);
  let modulesDir: string | undefined;
  if (modules !== undefined) {
    modulesDir = path.resolve(modules);
    if (!fs.existsSync(path.join(modulesDir, 'modules.dep'))) {
      throw new UsageError(
        `--modules: ${modules} has no modules.dep (give lib/modules/<release> of the kernel, after depmod; \`busybox depmod -b <root> <release>\` makes one)`,
      );
    }
  } else if (release) {
    // An unpacked kernel tree (boot/vmlinuz-R beside lib/modules/R), or this machine's own modules.
    modulesDir = [
      path.join(dir, '..', 'lib', 'modules', release),
      path.join(dir, '..', 'usr', 'lib', 'modules', release),
      path.join('/lib/modules', release),
    ]
      .map((d) => path.resolve(d))
      .find((d) => fs.existsSync(path.join(d, 'modules.dep')));
  }
  const config = [path.join(dir, `config-${release}`), path.join('/boot', `config-${release}`)].find(
    (f) => release && fs.existsSync(f),
  );
  return { spec, name: path.basename(spec.vmlinuz), release, vmlinuz: spec.vmlinuz, modulesDir, config };
}

function kernelOf(spec: KernelSpec, r: CacheRecord): Kernel {
  return {
    spec,
    name: r.package,
    release: r.release,
    package: r.package,
    version: r.version,
    vmlinuz: r.vmlinuz,
    modulesDir: r.modulesDir,
    config: r.config,
  };
}

function readRecord(entry: string): CacheRecord | undefined {
  try {
    const r = JSON.parse(fs.readFileSync(path.join(entry, 'kernel.json'), 'utf8')) as CacheRecord;
    return fs.existsSync(r.vmlinuz) ? r : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs fn in a fresh partial directory of the cache, named for this process, so an interrupted
 * download or unpack is never taken for a finished one; removes it unless fn moved it into place.
 * Partial directories of processes that are gone are removed first.
 */
async function withPartial<T>(cache: string, fn: (partial: string) => Promise<T>): Promise<T> {
  for (const stale of orphansIn(cache, '.partial')) fs.rmSync(stale, { recursive: true, force: true });
  const partial = path.join(cache, `.partial-${selfIdentity()}`);
  fs.rmSync(partial, { recursive: true, force: true });
  fs.mkdirSync(partial, { recursive: true });
  try {
    return await fn(partial);
  } finally {
    fs.rmSync(partial, { recursive: true, force: true });
  }
}

/** Moves a finished partial directory into place as the cache entry; paths in the record follow it. */
function commit(partial: string, entry: string, r: CacheRecord): CacheRecord {
  const moved = (p: string) => path.join(entry, path.relative(partial, p));
  const record: CacheRecord = {
    ...r,
    vmlinuz: moved(r.vmlinuz),
    modulesDir: moved(r.modulesDir),
    config: r.config && moved(r.config),
  };
  fs.writeFileSync(path.join(partial, 'kernel.json'), `${JSON.stringify(record, null, 2)}\n`);
  fs.rmSync(entry, { recursive: true, force: true });
  fs.renameSync(partial, entry);
  return record;
}

/**
 * Unpacks a kernel .deb (dpkg-deb -x), decompresses its modules (busybox insmod and modprobe
 * may not read .ko.xz/.ko.zst) and writes modules.dep and modules.alias with busybox depmod,
 * since a .deb ships none (its postinst runs depmod).
 */
async function unpack(deb: string, root: string, note: (s: string) => void): Promise<CacheRecord> {
  const { stdout } = await execFileAsync('dpkg-deb', ['-f', deb, 'Package', 'Version']);
  const [pkgLine, versionLine] = stdout.trim().split('\n');
  const pkg = pkgLine!.replace(/^Package:\s*/, '');
  const version = (versionLine ?? '').replace(/^Version:\s*/, '');
  note(`kernels: unpacking ${pkg} ${version}`);
  fs.mkdirSync(root, { recursive: true });
  await execFileAsync('dpkg-deb', ['-x', deb, root]);
  const modulesRoot = [path.join(root, 'lib/modules'), path.join(root, 'usr/lib/modules')].find((d) =>
    fs.existsSync(d),
  );
  const releases = modulesRoot ? fs.readdirSync(modulesRoot) : [];
  const bootFiles = fs.existsSync(path.join(root, 'boot')) ? fs.readdirSync(path.join(root, 'boot')) : [];
  const image = bootFiles.find((f) => f.startsWith('vmlinuz-'));
  if (!modulesRoot || releases.length !== 1 || !image) {
    throw new UsageError(
      `--kernel: ${pkg} is not a kernel image package (expected boot/vmlinuz-<release> and one lib/modules/<release>)`,
    );
  }
  const release = releases[0]!;
  const modulesDir = path.join(modulesRoot, release);
  await decompressModules(modulesDir);
  await requireTool(BUSYBOX, 'busybox is needed to index the kernel modules');
  await execFileAsync(BUSYBOX, ['depmod', '-b', path.dirname(path.dirname(modulesRoot)), release], {
    maxBuffer: 16 << 20,
  });
  const config = bootFiles.find((f) => f === `config-${release}`);
  return {
    package: pkg,
    version,
    release,
    vmlinuz: path.join(root, 'boot', image),
    modulesDir,
    config: config && path.join(root, 'boot', config),
  };
}

/** The busybox binary (busybox-static), used to index modules here and as the guest's userland. */
export const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p)) ?? 'busybox';

const DECOMPRESSORS: [string, string[]][] = [
  ['.ko.xz', ['xz', '-d', '-q', '-f', '--']],
  ['.ko.zst', ['zstd', '-d', '-q', '-f', '--rm', '--']],
  ['.ko.gz', ['gzip', '-d', '-f', '--']],
];

async function decompressModules(modulesDir: string): Promise<void> {
  const files = (fs.readdirSync(modulesDir, { recursive: true }) as string[]).map((f) => path.join(modulesDir, f));
  for (const [suffix, [tool, ...args]] of DECOMPRESSORS) {
    const these = files.filter((f) => f.endsWith(suffix));
    if (these.length === 0) continue;
    await requireTool(tool!, `the kernel's modules are ${suffix.slice(4)}-compressed`);
    for (let i = 0; i < these.length; i += 500) await execFileAsync(tool!, [...args, ...these.slice(i, i + 500)]);
  }
}

async function requireTool(tool: string, why: string): Promise<void> {
  try {
    await execFileAsync('sh', ['-c', `command -v "$1"`, 'sh', tool]);
  } catch {
    throw new PrivilegeError(`${tool} not found: ${why} (scripts/setup.sh installs what is missing)`);
  }
}

/**
 * `CONFIG_X=y` lines of a kernel config, for telling what a bare vmlinuz has built in. Empty
 * when there is no config to read.
 */
export function builtIn(config: string | undefined): Set<string> {
  if (!config) return new Set();
  try {
    return new Set(
      fs
        .readFileSync(config, 'utf8')
        .split('\n')
        .filter((l) => l.endsWith('=y'))
        .map((l) => l.slice(0, -2)),
    );
  } catch {
    return new Set();
  }
}
