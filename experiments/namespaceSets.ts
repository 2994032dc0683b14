// Namespace sets as the studies name them ("ipc+mnt+pid+uts", "none") and what this kernel offers.
import fs from 'node:fs';
import { NAMESPACES, type Namespace } from '../native/index.js';
import { PrivilegeError, UsageError } from '../harness/errors.js';

/** "uts+ipc" -> "ipc+uts"; "none" stays; unknown names are a UsageError naming the flag. */
export function normalizeSet(text: string): string {
  const names = text
    .split('+')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 1 && names[0] === 'none') return 'none';
  if (names.length === 0) throw new UsageError(`--namespaces: empty namespace set in '${text}'`);
  for (const n of names) {
    if (!(NAMESPACES as readonly string[]).includes(n)) {
      throw new UsageError(`--namespaces: unknown namespace '${n}' (known: ${NAMESPACES.join(', ')}, or none)`);
    }
  }
  return [...new Set(names)].sort().join('+');
}

export function namespacesOf(config: string): Namespace[] {
  return config === 'none' ? [] : (config.split('+') as Namespace[]);
}

/** Root, and every namespace type the sets use present in this kernel; else a PrivilegeError. */
export function requireNamespaces(experiment: string, configs: string[]): void {
  if (process.geteuid?.() !== 0) {
    throw new PrivilegeError(`${experiment} creates namespaces and needs root (CAP_SYS_ADMIN): run it as root`);
  }
  for (const ns of new Set(configs.flatMap(namespacesOf))) {
    if (!fs.existsSync(`/proc/self/ns/${ns}`)) {
      throw new PrivilegeError(`this kernel has no ${ns} namespaces (/proc/self/ns/${ns} is missing)`);
    }
  }
}
