// Names a kernel lock wait the way a kernel developer reads it.
//
// Where /proc/kallsyms has data symbols (CONFIG_KALLSYMS_ALL) a lock at a symbol's address is
// named by it (rtnl_mutex, pernet_ops_rwsem, ...). Without them (and bpftrace 0.17's ksym()
// misnames data addresses anyway) a wait is attributed to its call path: the first frames of
// the contention_begin stack that are not locking machinery, e.g.
// "__register_sysctl_table <- __devinet_sysctl_register <- devinet_init_net", and to the
// operation it belongs to (setup_net, cleanup_net, copy_mnt_ns, cgroup_mkdir, ...). Stacks are
// resolved here from kallsyms, not by bpftrace.
import fs from 'node:fs';

export interface Symbol {
  addr: bigint;
  name: string;
}

export class Kallsyms {
  private constructor(
    private readonly text: Symbol[],
    private readonly data: Map<bigint, string>,
  ) {}

  static parse(content: string): Kallsyms {
    const text: Symbol[] = [];
    const data = new Map<bigint, string>();
    for (const line of content.split('\n')) {
      const [addrHex, type, name] = line.split(/\s+/);
      if (!addrHex || !type || !name) continue;
      const addr = BigInt(`0x${addrHex}`);
      if (addr === 0n) continue; // kptr_restrict hides addresses as zeros: nothing to resolve with
      if ('tTwW'.includes(type)) text.push({ addr, name });
      else if ('dDbBrR'.includes(type)) data.set(addr, name);
    }
    text.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
    return new Kallsyms(text, data);
  }

  static load(path = '/proc/kallsyms'): Kallsyms {
    return Kallsyms.parse(fs.readFileSync(path, 'utf8'));
  }

  get hasDataSymbols(): boolean {
    return this.data.size > 0;
  }

  /** The function containing addr, as "name+0xoff"-free name; undefined outside the table. */
  functionAt(addr: bigint): string | undefined {
    let lo = 0;
    let hi = this.text.length - 1;
    let found: Symbol | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.text[mid]!;
      if (s.addr <= addr) {
        found = s;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found?.name;
  }

  /** The data symbol exactly at addr (a lock that is a global variable), when exported. */
  dataAt(addr: bigint): string | undefined {
    return this.data.get(addr);
  }
}

/** LCB_F_SPIN: the waiter spins (spinlock, rwlock, a mutex's optimistic spin) rather than sleeps. */
export const LOCK_FLAG_SPIN = 1 << 0;
/** LCB_F_MUTEX: a mutex, whether its waiter spins or sleeps. */
export const LOCK_FLAG_MUTEX = 1 << 5;

/** Lock kinds from the LCB_F_* flags of tracepoint:lock:contention_begin (include/trace/events/lock.h). */
export function lockKind(flags: number): string {
  const SPIN = LOCK_FLAG_SPIN,
    READ = 1 << 1,
    WRITE = 1 << 2,
    RT = 1 << 3,
    PERCPU = 1 << 4,
    MUTEX = LOCK_FLAG_MUTEX;
  if (flags & RT) return 'rtmutex';
  if (flags & MUTEX) return flags & SPIN ? 'mutex (spinning)' : 'mutex';
  if (flags & PERCPU) return flags & WRITE ? 'percpu-rwsem write' : 'percpu-rwsem read';
  if (flags & SPIN) return flags & READ ? 'rwlock read' : flags & WRITE ? 'rwlock write' : 'spinlock';
  if (flags & READ) return 'rwsem read';
  if (flags & WRITE) return 'rwsem write';
  return `unknown (flags ${flags})`;
}

/**
 * Frames that are the lock itself or its wrappers, not the code that wanted it. (The
 * scheduler never shows: contention_begin fires before the waiter sleeps.)
 */
const LOCKING = new RegExp(
  '^(' +
    [
      '_raw_',
      '__raw_',
      'do_raw_',
      'queued_',
      '__pv_queued',
      'native_queued',
      'pv_',
      '__lock_',
      'lock_acquire',
      'mutex_lock',
      '__mutex_lock',
      'mutex_',
      '__mutex',
      'ww_mutex',
      'rt_mutex',
      '__rt_mutex',
      'rt_spin',
      'down_read',
      'down_write',
      '__down',
      'rwsem_',
      '__rwsem',
      'percpu_down',
      '__percpu_down',
      'percpu_rwsem',
      'osq_',
      'spin_lock',
      'read_lock',
      'write_lock',
      'rtnl_lock',
      '__rtnl_lock',
      'rtnl_net_lock',
      'trace_contention',
      '__traceiter_contention',
      'lock_timer_base',
    ].join('|') +
    ')',
);

/**
 * Kernel operations a wait can belong to, innermost first wins. Namespace creation and
 * teardown, mounts, cgroups, process creation and exit: what the studies exercise.
 */
const OPERATIONS = new Set([
  'setup_net',
  'cleanup_net',
  'copy_net_ns',
  'net_ns_net_exit',
  'copy_mnt_ns',
  'put_mnt_ns',
  'free_mnt_ns',
  'namespace_unlock',
  'path_mount',
  'path_umount',
  'do_mount',
  'do_umount',
  'create_ipc_ns',
  'free_ipc',
  'free_ipcs',
  'create_pid_namespace',
  'zap_pid_ns_processes',
  'delayed_free_pidns',
  'copy_utsname',
  'create_new_namespaces',
  'free_nsproxy',
  'switch_task_namespaces',
  'cgroup_mkdir',
  'cgroup_rmdir',
  'cgroup_attach_task',
  'cgroup_procs_write',
  'cgroup_file_write',
  'cgroup_post_fork',
  'cgroup_exit',
  'copy_process',
  'release_task',
  'do_exit',
  'exit_notify',
  'wait_consider_task',
  'do_wait',
  'ksys_unshare',
  'ksys_chroot',
  'do_execveat_common',
]);

/**
 * Where a stack leaves the code that took the lock for whatever the CPU was interrupted in:
 * an RCU callback or softirq runs on top of an unrelated task's stack, so the frames beyond
 * belong to someone else.
 */
const CONTEXT_BOUNDARY =
  /^(rcu_do_batch|rcu_core|handle_softirqs|__do_softirq|run_ksoftirqd|irq_exit_rcu|__irq_exit_rcu|sysvec_|asm_sysvec_|common_interrupt|asm_common_interrupt)/;

export interface Attribution {
  /** Symbol of the lock when the kernel exports it, else "<kind> in <first frame>". */
  lock: string;
  lockSymbol: string | null;
  kind: string;
  /** First three frames that are not locking machinery, innermost first, joined by " <- ". */
  callPath: string;
  operation: string;
}

/** The stack bpftrace prints with kstack(perf): "\tffffffff82201d7e name+270\n" per frame. */
export function stackAddresses(stack: string): bigint[] {
  const out: bigint[] = [];
  for (const m of stack.matchAll(/^\s*([0-9a-f]{8,16})\b/gim)) out.push(BigInt(`0x${m[1]}`));
  return out;
}

export function attribute(stack: string, lockAddr: bigint, flags: number, syms: Kallsyms): Attribution {
  const frames = stackAddresses(stack).map((a) => syms.functionAt(a) ?? `0x${a.toString(16)}`);
  const firstOwn = frames.findIndex((f) => !LOCKING.test(f));
  const own = firstOwn < 0 ? frames : frames.slice(firstOwn);
  const callPath = own.slice(0, 3).join(' <- ') || '(empty stack)';
  const boundary = own.findIndex((f) => CONTEXT_BOUNDARY.test(f));
  const context = boundary < 0 ? own : own.slice(0, boundary);
  let operation = context.find((f) => OPERATIONS.has(f));
  if (!operation && boundary >= 0) {
    // The callback that ran, named by its context: "rcu: delayed_free_vfsmnt", "softirq: ...".
    const kind = own[boundary]!.startsWith('rcu_') ? 'rcu' : 'softirq';
    operation = `${kind}: ${context[context.length - 1] ?? own[boundary]}`;
  }
  if (!operation) {
    // Fall back to the syscall the task was in, or the work item a kernel worker ran.
    const sys = context.find((f) => /^__(x64|ia32|arm64)_sys_/.test(f));
    const work = context.indexOf('process_one_work');
    operation = sys ? `sys_${sys.replace(/^__(x64|ia32|arm64)_sys_/, '')}` : work > 0 ? context[work - 1]! : 'other';
  }
  const kind = lockKind(flags);
  const lockSymbol = syms.dataAt(lockAddr) ?? null;
  return { lock: lockSymbol ?? `${kind} in ${own[0] ?? '?'}`, lockSymbol, kind, callPath, operation };
}
