// The engine's errors. `kind` says what went wrong in a word a caller can branch on (and the
// worker puts in its HTTP answers); the message says it in a line a person can act on.

/** Why an invocation or a sandbox failed. */
export type FailureKind =
  /** the handler raised an exception (its type, message and traceback come with it) */
  | 'exception'
  /** the entry file could not be loaded or defines no f(event) and no app */
  | 'bad-handler'
  /** the request cannot be given to the handler: a function's body that is not JSON (the caller's to fix) */
  | 'bad-request'
  /** the handler ran past the invocation's time limit; the sandbox was killed */
  | 'timeout'
  /** the kernel's OOM killer ended the sandbox at its memory limit */
  | 'oom'
  /** the sandbox's processes ended without an answer (signal or exit) */
  | 'crash'
  /** the result could not be sent back as JSON */
  | 'bad-result'
  /** the sandbox sent a line longer than the worker's --max-reply-bytes; the sandbox was destroyed */
  | 'reply-too-large'
  /** the sandbox broke the reply protocol (a line that is not JSON, lacks the reply's fields, has another request's id, or came unasked); the sandbox was destroyed */
  | 'protocol'
  /** making, starting or tearing down the sandbox failed */
  | 'sandbox';

export class SandboxError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    /** What the handler's side reported (exception type, traceback), when it did. */
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'SandboxError';
  }
}

/**
 * The engine cannot run here as asked: not root, no usable cgroup controllers, no base root
 * file system, or a state directory another live engine owns. `exitCode` follows the project's
 * convention: 3 for a missing privilege or kernel feature, 1 otherwise.
 */
export class EngineSetupError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 3 = 1,
  ) {
    super(message);
    this.name = 'EngineSetupError';
  }
}
