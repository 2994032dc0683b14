// The errors a user can cause or fix, each with the exit status the CLI contract gives it.
// Anything else is a bug and is shown with its stack.

/** A bad flag or value: exit status 2, nothing written. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** A missing privilege or kernel feature: exit status 3. */
export class PrivilegeError extends Error {
  readonly exitCode = 3;
}

/** The run was stopped by Ctrl-C or SIGTERM: exit status 130. */
export class InterruptedError extends Error {
  readonly exitCode = 130;
}

export type UserError = UsageError | PrivilegeError | InterruptedError;

export function isUserError(e: unknown): e is UserError {
  return e instanceof UsageError || e instanceof PrivilegeError || e instanceof InterruptedError;
}

/** Errno names that mean "not allowed here" or "this kernel or machine cannot", with what to tell the user. */
const KERNEL_LIMITS: Record<string, string> = {
  EPERM: 'this needs root (CAP_SYS_ADMIN)',
  EACCES: 'this needs root (CAP_SYS_ADMIN)',
  EINVAL: 'this kernel does not support a requested feature',
  ENOSYS: 'this kernel does not have the system call',
  ENOSPC: 'a namespace limit was reached (/proc/sys/user/max_*_namespaces)',
  EUSERS: 'a namespace nesting limit was reached',
};

/**
 * A kernel error from the native addon, turned into a PrivilegeError (exit 3) when it means a
 * missing privilege or feature; anything else is returned as it was.
 */
export function fromKernelError(e: unknown, context: string): unknown {
  const code = (e as { code?: unknown })?.code;
  if (e instanceof Error && typeof code === 'string' && code in KERNEL_LIMITS) {
    return new PrivilegeError(`${context}: ${e.message}: ${KERNEL_LIMITS[code]}`);
  }
  return e;
}
