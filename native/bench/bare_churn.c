/*
 * bare_churn: the namespace churn loop with nothing around it, as the baseline the addon's
 * loop is compared against (npm run bench:churn). Same mechanism as the addon (threads,
 * clone with CLONE_VM|CLONE_VFORK into the namespaces, exit, reap) but no latency record,
 * no Node, no N-API.
 *
 *   bare_churn FLAGS CONCURRENCY SECONDS     (FLAGS: CLONE_NEW* bits as a number)
 *   {"ops":12345,"seconds":2.000311,"ops_per_sec":6171.6}
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

enum { STACK_BYTES = 64 * 1024 };

static int clone_flags;
static double deadline;
static atomic_int go;
static atomic_long total_ops;
static atomic_int failed_errno;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int child(void *arg) {
  (void)arg;
  return 0;
}

static void *worker(void *arg) {
  (void)arg;
  char *stack = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    atomic_store(&failed_errno, errno);
    return NULL;
  }
  long ops = 0;
  while (!atomic_load(&go)) sched_yield();
  while (!atomic_load(&failed_errno)) {
    pid_t pid = clone(child, stack + STACK_BYTES, CLONE_VM | CLONE_VFORK | CLONE_FILES | clone_flags, NULL);
    if (pid < 0) {
      atomic_store(&failed_errno, errno);
      break;
    }
    while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR) {
    }
    ops++;
    if (now() >= deadline) break;
  }
  atomic_fetch_add(&total_ops, ops);
  munmap(stack, STACK_BYTES);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s FLAGS CONCURRENCY SECONDS\n", argv[0]);
    return 2;
  }
  clone_flags = atoi(argv[1]);
  int concurrency = atoi(argv[2]);
  double seconds = atof(argv[3]);
  if (concurrency < 1 || seconds <= 0) {
    fprintf(stderr, "bare_churn: CONCURRENCY must be >= 1 and SECONDS > 0\n");
    return 2;
  }
  pthread_t *threads = calloc(concurrency, sizeof *threads);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (int i = 0; i < concurrency; i++) pthread_create(&threads[i], &attr, worker, NULL);
  double start = now();
  deadline = start + seconds;
  atomic_store(&go, 1);
  for (int i = 0; i < concurrency; i++) pthread_join(threads[i], NULL);
  double elapsed = now() - start;
  if (atomic_load(&failed_errno)) {
    fprintf(stderr, "bare_churn: clone failed: %s\n", strerror(atomic_load(&failed_errno)));
    return 3;
  }
  long ops = atomic_load(&total_ops);
  printf("{\"ops\":%ld,\"seconds\":%.6f,\"ops_per_sec\":%.1f}\n", ops, elapsed, ops / elapsed);
  return 0;
}
