// See clone3.h. x86-64 only: the stack switch is done in assembly.
#include "clone3.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

// The child starts on the new stack with the parent's registers and cannot return into C code,
// so the assembly calls fn(arg) there (fn and arg kept in callee-saved registers) and exits with
// its result. With CLONE_VFORK the parent resumes only after that, or after the child's exec.
pid_t Clone3OnStack(struct clone_args* ca, int (*fn)(void*), void* arg) {
  long ret;
  register int (*callee)(void*) asm("r12") = fn;
  register void* callArg asm("r13") = arg;
  asm volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "xor %%ebp, %%ebp\n\t"
      "mov %%r13, %%rdi\n\t"
      "call *%%r12\n\t"
      "mov %%eax, %%edi\n\t"
      "mov $60, %%eax\n\t"  // SYS_exit
      "syscall\n\t"
      "hlt\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "a"(SYS_clone3), "D"(ca), "S"(sizeof(*ca)), "r"(callee), "r"(callArg)
      : "rcx", "r11", "memory");
  if (ret < 0) {
    errno = static_cast<int>(-ret);
    return -1;
  }
  return static_cast<pid_t>(ret);
}

long Clone3Fork(struct clone_args* ca) {
  return syscall(SYS_clone3, ca, sizeof(*ca));
}
