// clone3() with CLONE_INTO_CGROUP: a child born in a cgroup v2 directory (an open descriptor),
// so it is never migrated there (no cgroup.procs write, no css_set move under the cgroup
// mutex). glibc's clone() has no cgroup argument, and its clone3 wrapper is not public.
#pragma once

#include <linux/sched.h>
#include <sys/types.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

// Runs fn(arg) in the child on ca->stack (CLONE_VM children: the parent's registers would
// return into the parent's frames) and exits with its result; returns the pid, or -1 with errno.
pid_t Clone3OnStack(struct clone_args* ca, int (*fn)(void*), void* arg);

// clone3 with fork semantics (no stack of its own): 0 in the child, the pid in the parent,
// -1 with errno on failure.
long Clone3Fork(struct clone_args* ca);
