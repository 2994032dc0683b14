// What each peer isolates, read from inside it rather than from its documentation: a Python
// probe, run once in every peer's sandbox the way its timed starts run, reports its namespaces
// (compared here with this process's), its user namespace's uid map, its seccomp mode, its
// effective capabilities, the network interfaces it sees and the kernel release it is told.
// The same probe is the SOCK handler's body, so SOCK is read through its own front door.
import fs from 'node:fs';

const NAMESPACES = ['mnt', 'pid', 'net', 'ipc', 'uts', 'user', 'cgroup'] as const;

/** The probe as a Python module: `probe()` returns the facts as a dict. */
const PROBE_MODULE = `import json, os
def probe():
    def read(p):
        try:
            with open(p) as f:
                return f.read()
        except OSError:
            return None
    def ns(n):
        try:
            return os.readlink('/proc/self/ns/' + n)
        except OSError:
            return None
    status = dict(line.split(':', 1) for line in (read('/proc/self/status') or '').splitlines() if ':' in line)
    dev = read('/proc/self/net/dev')
    return {
        'ns': {n: ns(n) for n in ${JSON.stringify(NAMESPACES)}},
        'uid': os.getuid(),
        'uid_map': read('/proc/self/uid_map'),
        'capeff': status.get('CapEff', '').strip() or None,
        'seccomp': status.get('Seccomp', '').strip() or None,
        'no_new_privs': status.get('NoNewPrivs', '').strip() or None,
        'interfaces': sorted(l.split(':')[0].strip() for l in dev.splitlines()[2:]) if dev else None,
        'kernel': os.uname().release,
    }
`;

/** `python3 -c` source that prints the probe's facts as one line of JSON. */
export const PROBE_SCRIPT = `${PROBE_MODULE}print(json.dumps(probe()))\n`;

/** A SOCK handler answering the probe's facts. */
export const PROBE_HANDLER = `${PROBE_MODULE}def f(event):\n    return probe()\n`;

export interface ProbeFacts {
  ns: Record<string, string | null>;
  uid: number;
  uid_map: string | null;
  capeff: string | null;
  seccomp: string | null;
  no_new_privs: string | null;
  interfaces: string[] | null;
  kernel: string;
}

/** One row of the isolation table, in words. */
export interface IsolationRow {
  /** The namespaces of its own (not this process's). */
  namespaces: string;
  user_namespace: string;
  seccomp: string;
  capabilities: string;
  network: string;
  kernel: string;
}

function hostFacts(): { ns: Record<string, string>; caps: number; kernel: string } {
  const ns = Object.fromEntries(NAMESPACES.map((n) => [n, fs.readlinkSync(`/proc/self/ns/${n}`)]));
  const capBnd = /^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return { ns, caps: popcount(capBnd), kernel: fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim() };
}

function popcount(hex: string): number {
  return [...BigInt(`0x${hex}`).toString(2)].filter((b) => b === '1').length;
}

/** The facts, compared with this process's own, as the table says them. */
export function describeIsolation(f: ProbeFacts): IsolationRow {
  const host = hostFacts();
  const unreadable = NAMESPACES.filter((n) => f.ns[n] === null);
  const own = NAMESPACES.filter((n) => f.ns[n] !== null && f.ns[n] !== host.ns[n]);
  const ownKernel = f.kernel !== host.kernel;
  const namespaces =
    unreadable.length === NAMESPACES.length
      ? 'unknown: no /proc in a bare chroot'
      : own.length === 0
        ? "none: all the host's"
        : `${own.join(', ')}${ownKernel ? ' (as its own kernel reports them)' : ''}`;
  const map = f.uid_map?.trim().split(/\s+/);
  const user_namespace = own.includes('user')
    ? map && map.length >= 3
      ? `yes: uid ${map[0]} is host uid ${map[1]}`
      : 'yes'
    : f.ns.user === null
      ? 'unknown (no /proc)'
      : `no: uid ${f.uid} is the host's`;
  const mode = { '0': 'none', '1': 'strict', '2': 'filter' }[f.seccomp ?? ''] ?? 'unknown';
  const seccomp = `${mode}${f.no_new_privs === '1' ? ', no_new_privs' : ''}`;
  const caps = f.capeff === null ? undefined : popcount(f.capeff);
  const capabilities =
    caps === undefined
      ? 'unknown'
      : caps === 0
        ? 'none'
        : caps >= host.caps
          ? `all ${caps}`
          : `${caps} of ${host.caps}`;
  const network =
    f.ns.net !== null && f.ns.net === host.ns.net
      ? "the host's"
      : f.interfaces === null
        ? 'unknown (no /proc)'
        : f.interfaces.join(', ') || 'no interface';
  const kernel = ownKernel ? `its own (says ${f.kernel})` : "the host's";
  return { namespaces, user_namespace, seccomp, capabilities, network, kernel };
}

/** The facts from the probe's output, or an error saying what came back instead. */
export function parseProbe(peer: string, text: string): ProbeFacts {
  const line = text.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as ProbeFacts;
  } catch {
    throw new Error(`${peer}: the isolation probe printed ${JSON.stringify(text.slice(0, 200))}, not its facts`);
  }
}
