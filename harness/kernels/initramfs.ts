// The guest's initramfs: a cpio archive (newc, what the kernel unpacks) holding busybox-static,
// the init script, its settings, /dev/console, and the modules the guest needs before it can
// mount its root over 9p (virtio PCI, 9p and its transport, overlayfs), dependencies first.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';

export interface CpioEntry {
  name: string;
  /** Permission bits; the type comes from the kind. */
  mode: number;
  kind: 'file' | 'dir' | 'symlink' | 'chardev';
  data?: Buffer;
  /** symlink target */
  target?: string;
  rdev?: [major: number, minor: number];
}

const TYPE_BITS = { file: 0o100000, dir: 0o040000, symlink: 0o120000, chardev: 0o020000 } as const;

/** A cpio "newc" archive (the format `cpio -H newc` writes and the kernel's initramfs unpacker reads). */
export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  let ino = 1;
  const push = (name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0], nlink = 1) => {
    const nameBytes = Buffer.from(`${name}\0`);
    const header = `070701${[ino++, mode, 0, 0, nlink, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0].map(hex).join('')}`;
    parts.push(Buffer.from(header, 'latin1'), nameBytes, pad(110 + nameBytes.length), data, pad(data.length));
  };
  for (const e of entries) {
    const name = e.name.replace(/^\/+/, '');
    const data =
      e.kind === 'symlink'
        ? Buffer.from(e.target ?? '')
        : e.kind === 'file'
          ? (e.data ?? Buffer.alloc(0))
          : Buffer.alloc(0);
    push(name, TYPE_BITS[e.kind] | (e.mode & 0o7777), data, e.rdev, e.kind === 'dir' ? 2 : 1);
  }
  ino = 0;
  push('TRAILER!!!', 0, Buffer.alloc(0), [0, 0], 1);
  return Buffer.concat(parts);
}

/** Module name as the kernel compares them: '-' and '_' are the same. */
const modName = (file: string) =>
  path
    .basename(file)
    .replace(/\.ko(\.(xz|zst|gz))?$/, '')
    .replaceAll('-', '_');

/**
 * The modules to load for `wanted`, each after the modules it depends on (from modules.dep),
 * as paths relative to modulesDir; names built into the kernel (modules.builtin) are skipped.
 * `missing` names what is neither a module nor built in.
 */
export function moduleClosure(modulesDir: string, wanted: string[]): { ordered: string[]; missing: string[] } {
  const deps = new Map<string, { file: string; deps: string[] }>();
  for (const line of fs.readFileSync(path.join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon).trim();
    deps.set(modName(file), {
      file,
      deps: line
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean),
    });
  }
  let builtin = new Set<string>();
  try {
    builtin = new Set(
      fs.readFileSync(path.join(modulesDir, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(modName),
    );
  } catch {
    // No modules.builtin: anything not a module is taken as missing.
  }
  const ordered: string[] = [];
  const missing: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    const n = name.replaceAll('-', '_');
    if (seen.has(n)) return;
    seen.add(n);
    const m = deps.get(n);
    if (!m) {
      if (!builtin.has(n)) missing.push(name);
      return;
    }
    for (const d of m.deps) visit(modName(d));
    ordered.push(m.file);
  };
  for (const w of wanted) visit(w);
  return { ordered, missing };
}

/** Modules the guest loads from its initramfs: virtio PCI, the 9p transport and file system, overlayfs. */
export const BOOT_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];
/** Kernel options the guest cannot mount its root without, when a bare vmlinuz has no modules. */
export const BOOT_CONFIG = [
  'CONFIG_VIRTIO_PCI',
  'CONFIG_NET_9P',
  'CONFIG_NET_9P_VIRTIO',
  'CONFIG_9P_FS',
  'CONFIG_OVERLAY_FS',
];

export interface InitramfsSpec {
  /** A statically linked busybox. */
  busybox: string;
  /** The init script's text (harness/kernels/guest-init.sh). */
  init: string;
  /** Settings the init script sources, as shell variables. */
  env: Record<string, string>;
  /** lib/modules/<release> of the guest kernel, and the modules (relative paths) to load in order. */
  modulesDir?: string;
  modules: string[];
}

/** The archive for spec; modules are put at /modules/<relative path> and listed in SB_BOOT_MODULES. */
export function buildInitramfs(spec: InitramfsSpec): Buffer {
  const entries: CpioEntry[] = [];
  const dirs = new Set<string>();
  const dir = (d: string) => {
    const parts = d.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (!dirs.has(p)) {
        dirs.add(p);
        entries.push({ name: p, mode: 0o755, kind: 'dir' });
      }
    }
  };
  for (const d of ['bin', 'dev', 'proc', 'sys', 'mnt', 'modules']) dir(d);
  entries.push({ name: 'dev/console', mode: 0o600, kind: 'chardev', rdev: [5, 1] });
  entries.push({ name: 'dev/null', mode: 0o666, kind: 'chardev', rdev: [1, 3] });
  entries.push({ name: 'bin/busybox', mode: 0o755, kind: 'file', data: fs.readFileSync(spec.busybox) });
  entries.push({ name: 'bin/sh', mode: 0o777, kind: 'symlink', target: 'busybox' });
  entries.push({ name: 'init', mode: 0o755, kind: 'file', data: Buffer.from(spec.init) });
  for (const m of spec.modules) {
    if (!spec.modulesDir) throw new Error('modules without a modules directory');
    dir(path.posix.join('modules', path.posix.dirname(m)));
    entries.push({
      name: path.posix.join('modules', m),
      mode: 0o644,
      kind: 'file',
      data: fs.readFileSync(path.join(spec.modulesDir, m)),
    });
  }
  const env = { ...spec.env, SB_BOOT_MODULES: spec.modules.join(' ') };
  entries.push({ name: 'sockbench.env', mode: 0o644, kind: 'file', data: Buffer.from(shellAssignments(env)) });
  return cpioNewc(entries);
}

/** VAR='value' lines a POSIX shell can source, whatever the values hold. */
export function shellAssignments(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) throw new UsageError(`bad variable name ${k}`);
      return `${k}='${v.replaceAll("'", "'\\''")}'\n`;
    })
    .join('');
}

/** Whether an ELF file has no program interpreter (PT_INTERP), i.e. runs without a dynamic loader. */
export function isStaticElf(file: string): boolean {
  try {
    const b = fs.readFileSync(file);
    if (b.toString('latin1', 0, 4) !== '\x7fELF' || b[4] !== 2) return false;
    const phoff = Number(b.readBigUInt64LE(0x20));
    const phentsize = b.readUInt16LE(0x36);
    const phnum = b.readUInt16LE(0x38);
    for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3) return false;
    return true;
  } catch {
    return false;
  }
}
