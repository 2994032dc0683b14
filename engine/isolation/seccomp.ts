// The seccomp filters SOCK sandboxes run under, compiled from engine/isolation/seccomp/profile.json.
//
// Why: a handler, and every package it imports, is hostile code. Namespaces, chroot, cgroups
// and dropping to nobody limit what the kernel lets it do; the filter limits which of the
// kernel's entry points it can reach at all. Keyrings, eBPF, perf events, io_uring,
// userfaultfd and new (user) namespaces have each been the way into kernel exploits, and a
// handler needs none of them. A refused call fails with EPERM (clone3 with ENOSYS, so glibc
// falls back to clone); nothing is killed, so code that probes for a feature carries on.
//
// Two variants of the one profile: `handler`, for processes that run handler code, and
// `zygote`, which also lets a zygote put its forks in containers (unshare, setns, mount,
// chroot, ...). Each is compiled once per process, on first use, and cached.
//
// Format: handlerFilter() and zygoteFilter() return the BPF program as a Buffer of struct
// sock_filter (u16 code, u8 jt, u8 jf, u32 k: 8 bytes each, this machine's byte order), which
// spawn's { op: 'seccomp', filter } step installs. handlerFilterHex() is the same program as a
// hex string for a zygote's Python fork (bytes.fromhex needs no import). The fork installs it
// once no_new_privs is set (drop_privileges() sets it) and after the last call the handler
// filter refuses (mount, sethostname, unshare), just before it runs the handler:
//
//   class SockFprog(ctypes.Structure):
//       _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
//   code = bytes.fromhex(FILTER_HEX)
//   buf = ctypes.create_string_buffer(code, len(code))
//   prog = SockFprog(len(code) // 8, ctypes.addressof(buf))
//   # libc = ctypes.CDLL(None, use_errno=True); 22, 2: PR_SET_SECCOMP, SECCOMP_MODE_FILTER
//   if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:
//       raise OSError(ctypes.get_errno(), "installing the handler's seccomp filter")
//
// The kernel copies the program, so buf may go afterwards. The fork inherited the zygote's
// filter; it then runs under both (Seccomp_filters: 2 in /proc/self/status), and a call must
// pass both.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { seccompFilter, type SeccompCondition, type SeccompRule, type SeccompSpec } from '../../native/index.js';
import { EngineSetupError } from '../errors.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The profile, read from the source tree (tsc does not copy it to dist). */
export const PROFILE = path.resolve(
  here,
  here.includes(`${path.sep}dist${path.sep}`)
    ? '../../../engine/isolation/seccomp/profile.json'
    : 'seccomp/profile.json',
);

/** A number, or a string of hex digits ("0x7e020000") for masks and values past 2^53. */
type Value = number | string;

interface Condition {
  arg: number;
  op: SeccompCondition['op'];
  /** With op "==", a list means any of these values. */
  value: Value | Value[];
  mask?: Value;
}

interface Group {
  why: string;
  names: string[];
  /** Refuse with this errno instead of allowing. */
  errno?: number;
  /** Every condition must hold. */
  when?: Condition[];
}

export interface Profile {
  about: string[];
  defaultErrno: number;
  handler: Group[];
  /** Replaces the handler's rules for each call it names. */
  zygote: Group[];
  /** Documentation the compiler holds the handler variant to: none of these may be allowed. */
  refused: { why: string; names: string[] }[];
}

export type Variant = 'handler' | 'zygote';

/** Reads and checks the profile's shape; throws one line naming the file and the bad part. */
export function readProfile(file = PROFILE): Profile {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`seccomp profile ${file}: ${(e as Error).message}`);
  }
  const bad = (where: string, what: string): never => {
    throw new Error(`seccomp profile ${file}: ${where} ${what}`);
  };
  const p = raw as Profile;
  if (typeof p !== 'object' || p === null) bad('', 'must be a JSON object');
  if (!Number.isInteger(p.defaultErrno)) bad('defaultErrno', 'must be an errno number');
  for (const section of ['handler', 'zygote', 'refused'] as const) {
    if (!Array.isArray(p[section])) bad(section, 'must be an array of groups');
    p[section].forEach((g: Partial<Group>, i) => {
      const where = `${section}[${i}]`;
      if (typeof g !== 'object' || g === null || typeof g.why !== 'string' || !g.why)
        bad(where, 'needs a "why" saying why these calls are there');
      if (!Array.isArray(g.names) || g.names.length === 0 || !g.names.every((n) => typeof n === 'string'))
        bad(where, 'needs "names", a non-empty array of system call names');
      if (section === 'refused' && (g.errno !== undefined || g.when !== undefined))
        bad(where, 'only documents: no errno or when');
      if (g.errno !== undefined && !Number.isInteger(g.errno)) bad(where, '"errno" must be an errno number');
      if (g.when !== undefined && !(Array.isArray(g.when) && g.when.length > 0))
        bad(where, '"when" must be a non-empty array of conditions');
      for (const c of g.when ?? []) {
        if (
          typeof c !== 'object' ||
          c === null ||
          !Number.isInteger(c.arg) ||
          typeof c.op !== 'string' ||
          c.value === undefined
        )
          bad(where, 'has a condition without arg, op and value');
        if (Array.isArray(c.value) && (c.op !== '==' || c.value.length === 0))
          bad(where, 'has a list of values with an op other than "=="');
      }
    });
  }
  return p;
}

function toInteger(v: Value, where: string): number | bigint {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^0x[0-9a-f]+$/i.test(v)) return BigInt(v);
  throw new Error(
    `seccomp profile: ${where}: ${JSON.stringify(v)} is neither a number nor a hex string like "0x7e020000"`,
  );
}

/** The rules of one group: a condition with a list of values becomes one rule per value. */
function rulesOf(group: Group, names: string[], where: string): SeccompRule[] {
  let alternatives: SeccompCondition[][] = [[]];
  for (const c of group.when ?? []) {
    const values = Array.isArray(c.value) ? c.value : [c.value];
    const mask = c.mask === undefined ? {} : { mask: toInteger(c.mask, where) };
    alternatives = alternatives.flatMap((conds) =>
      values.map((v) => [...conds, { index: c.arg, op: c.op, value: toInteger(v, where), ...mask }]),
    );
  }
  const action = group.errno === undefined ? {} : { errno: group.errno };
  return alternatives.map((args) => ({ names, ...action, ...(args.length > 0 ? { args } : {}) }));
}

/**
 * What seccompFilter() compiles for a variant. A call may be named by several groups only if
 * each has conditions (they add alternatives); the handler variant may allow nothing the
 * profile lists as refused.
 */
function specOf(profile: Profile, variant: Variant): SeccompSpec {
  const replaced = new Set(variant === 'zygote' ? profile.zygote.flatMap((g) => g.names) : []);
  const groups = [
    ...profile.handler.map((g, i) => ({
      group: g,
      where: `handler[${i}]`,
      names: g.names.filter((n) => !replaced.has(n)),
    })),
    ...(variant === 'zygote'
      ? profile.zygote.map((g, i) => ({ group: g, where: `zygote[${i}]`, names: g.names }))
      : []),
  ];
  const refused = new Set(profile.refused.flatMap((g) => g.names));
  const unconditional = new Map<string, string>();
  const named = new Map<string, string>();
  for (const { group, where, names } of groups) {
    for (const name of names) {
      if (variant === 'handler' && refused.has(name))
        throw new Error(`seccomp profile: '${name}' is allowed by ${where} and listed as refused`);
      const earlier = unconditional.get(name) ?? (group.when === undefined ? named.get(name) : undefined);
      if (earlier)
        throw new Error(
          `seccomp profile: '${name}' is named by ${earlier} and ${where}; only groups with conditions may share a call`,
        );
      named.set(name, where);
      if (group.when === undefined) unconditional.set(name, where);
    }
  }
  return {
    defaultErrno: profile.defaultErrno,
    rules: groups.filter((g) => g.names.length > 0).flatMap(({ group, where, names }) => rulesOf(group, names, where)),
  };
}

/** Compiles a variant of profile (libseccomp, in the addon); throws naming the call at fault. */
export function compileFilter(profile: Profile, variant: Variant): Buffer {
  return seccompFilter(specOf(profile, variant));
}

let profile: Profile | undefined;
const compiled = new Map<Variant, Buffer>();

function cached(variant: Variant): Buffer {
  let filter = compiled.get(variant);
  if (!filter) {
    profile ??= readProfile();
    filter = compileFilter(profile, variant);
    compiled.set(variant, filter);
  }
  return filter;
}

/** The filter of every process that runs handler code. */
export const handlerFilter = (): Buffer => cached('handler');

/** The filter of a zygote: the handler's, and what it needs to put its forks in containers. */
export const zygoteFilter = (): Buffer => cached('zygote');

/** handlerFilter() as hex, for a zygote's Python fork to install (see the recipe above). */
export const handlerFilterHex = (): string => handlerFilter().toString('hex');

/** Compiles both variants now (an engine's start), so a bad profile stops it with one line naming the call at fault. */
export function compileFilters(): void {
  try {
    handlerFilter();
    zygoteFilter();
  } catch (e) {
    throw new EngineSetupError((e as Error).message);
  }
}
