// What every backend's sandbox shares: the runtime inside (runtime/server.py) dials the
// worker's Unix socket in the sandbox's scratch directory, says whether the handler loaded,
// and answers invocations. A backend says only how its sandbox dies, why it died, and how
// it is torn down; the handshake, the time limits, matching replies to requests and telling a
// handler's failure from the sandbox's death live here, so two backends cannot differ in them.
import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Channel, ChannelError, type Message } from './channel.js';
import { SandboxError } from '../errors.js';
import type { CreateTimings, HttpRequest, HttpResponse, Sandbox, SandboxSpec } from './sandbox.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The runtime is Python source: it sits in engine/runtime beside the TypeScript. Mounted read-only at /sock. */
export const RUNTIME_DIR = path.resolve(
  here,
  here.includes(`${path.sep}dist${path.sep}`) ? '../../../engine/runtime' : '../runtime',
);

/**
 * Byte-compiles the runtime beside its source (engine/runtime/__pycache__, as Python itself
 * would), for the base's python3, unless that is done for this source already: a lean start
 * then loads server.py's bytecode instead of compiling its source, milliseconds of every start
 * (runtimeCommand imports it rather than running it as a script, which is always compiled;
 * python3 -B only stops the sandbox from writing bytecode, not from reading it). It is compiled
 * by this machine's python3, so only where that is the base's version; elsewhere, or with the
 * source not writable, the runtime works as before, only slower to start. A source edited
 * since is seen by its size and time, as Python sees it. Returns whether the bytecode is there.
 */
export function compileRuntime(base: string): boolean {
  const minor = fs
    .readdirSync(path.join(base, 'usr/lib'))
    .map((d) => /^python3\.(\d+)$/.exec(d)?.[1])
    .find((m) => m !== undefined);
  if (minor === undefined) return false;
  const sources = fs.readdirSync(RUNTIME_DIR).filter((f) => f.endsWith('.py'));
  const fresh = () => sources.every((file) => bytecodeIsFresh(file, `cpython-3${minor}`));
  if (fresh()) return true;
  spawnSync(
    'python3',
    [
      '-c',
      'import compileall, sys\n' +
        'if sys.version_info[:2] != (3, int(sys.argv[2])): sys.exit(3)\n' +
        'sys.exit(0 if compileall.compile_dir(sys.argv[1], quiet=2) else 1)',
      RUNTIME_DIR,
      minor,
    ],
    { stdio: 'ignore' },
  );
  return fresh();
}

/** Whether __pycache__/<file>.<tag>.pyc is what Python would load for file: a timestamp pyc (PEP 552) of its size and time. */
function bytecodeIsFresh(file: string, tag: string): boolean {
  const source = fs.statSync(path.join(RUNTIME_DIR, file));
  const header = Buffer.alloc(16);
  let fd: number;
  try {
    fd = fs.openSync(path.join(RUNTIME_DIR, '__pycache__', `${file.slice(0, -3)}.${tag}.pyc`), 'r');
  } catch {
    return false;
  }
  try {
    if (fs.readSync(fd, header, 0, 16, 0) !== 16) return false;
  } finally {
    fs.closeSync(fd);
  }
  return (
    header.readUInt32LE(4) === 0 &&
    header.readUInt32LE(8) === Math.floor(source.mtimeMs / 1000) % 2 ** 32 &&
    header.readUInt32LE(12) === source.size % 2 ** 32
  );
}

/** nobody:nogroup on Debian; a handler needs no identity of its own. */
export const SANDBOX_USER = { uid: 65534, gid: 65534 };

/** Where each package's importable directory is inside a sandbox (an install cache's package has python/ and lib/). */
export function packagePaths(packages: Record<string, string>): string[] {
  return Object.keys(packages).map((name) => `/packages/${name}/python`);
}

/** The environment of every process the engine starts in a sandbox or zygote. */
export function sandboxEnv(packages: Record<string, string>): string[] {
  return [
    'PATH=/usr/local/bin:/usr/bin:/bin',
    'HOME=/tmp',
    'LANG=C.UTF-8',
    `PYTHONPATH=${packagePaths(packages).join(':')}`,
    'LD_LIBRARY_PATH=/packages/.lib',
  ];
}

/**
 * The runtime's command line and environment inside a sandbox (code at /handler, packages at
 * /packages/<name>, scratch at /host). The lambda's own environment travels in the entry, set
 * by the runtime before it loads the module, as a zygote's fork sets it: the same in both.
 */
export function runtimeCommand(spec: SandboxSpec): { argv: string[]; env: string[] } {
  return {
    argv: [
      '/usr/bin/python3',
      '-B',
      '-c',
      // Imported, not run as a script: a script is always compiled from source, a module is
      // loaded from the bytecode installRuntime() made. /sock first on the path, as for a script.
      'import sys; sys.path[0] = "/sock"; import server; server.main()',
      '/host/worker.sock',
      '/handler',
      ...(spec.entry ? [JSON.stringify(spec.entry)] : []),
    ],
    env: sandboxEnv(spec.packages),
  };
}

/** How long to wait for a dead sandbox's exit status before calling it a crash anyway. */
const EXIT_GRACE_MS = 5000;

export abstract class RuntimeSandbox implements Sandbox {
  timings: CreateTimings = { stitchMs: 0, spawnMs: 0, readyMs: 0, totalMs: 0 };
  origin = 'new';
  private channel: Channel | undefined;
  private destroying: Promise<void> | undefined;
  private busy = false;
  /** Loaded and said so: from then on a violation may have no caller to be told of it. */
  private serving = false;
  /** How the runtime broke the reply protocol, once it has; the sandbox was destroyed then. */
  private violation: SandboxError | undefined;

  constructor(
    readonly id: string,
    private readonly log: (line: string) => void,
    /** The bound on an HTTP answer's body, decoded (--max-reply-bytes); its line is bounded by the channel. */
    private readonly maxReplyBytes: number,
  ) {}

  get alive(): boolean {
    return !this.destroying;
  }

  /** The sandbox's scratch directory on the host: its runtime writes runtime.log there. */
  protected abstract readonly scratch: string;
  /** Resolves once the sandbox's first process has ended. */
  protected abstract get exited(): Promise<unknown>;
  protected abstract hasExited(): boolean;
  /** Why the sandbox's first process ended (OOM kill or crash), once it has. */
  protected abstract deathError(when: string): Promise<SandboxError>;
  /** Kills what is left and releases the sandbox's resources. */
  protected abstract teardown(): Promise<void>;
  abstract pause(): Promise<void>;
  abstract unpause(): Promise<void>;
  abstract memoryBytes(): number;

  /** Waits for the runtime to connect and load the handler; the caller destroys the sandbox if this throws. */
  async ready(accepted: Promise<Channel>, abort: AbortController, timeoutMs: number): Promise<void> {
    const timer = setTimeout(() => {
      const log = lastLines(path.join(this.scratch, 'runtime.log'), 5);
      abort.abort(
        new SandboxError(
          'sandbox',
          `${this.id} did not load its handler within ${timeoutMs} ms${log ? `; it wrote: ${log}` : ''}`,
        ),
      );
    }, timeoutMs);
    const died = this.exited.then(async () => {
      const e = await this.deathError('before loading the handler');
      abort.abort(e);
      throw e;
    });
    died.catch(() => {});
    try {
      this.channel = await accepted;
      this.channel.onViolation((e, unasked) => this.violated(e, unasked));
      const hello = await Promise.race([this.channel.hello(abort.signal), died]);
      // A line after the hello in the same read has broken the channel by now.
      if (this.violation) throw this.violation;
      if (hello.fatal === 'bad-handler') {
        throw new SandboxError('bad-handler', `f.py could not be loaded: ${hello.type}: ${hello.message}`, {
          type: hello.type,
          traceback: hello.traceback,
        });
      }
      if (hello.ready !== true) {
        throw new SandboxError(
          'protocol',
          `${this.id} sent ${JSON.stringify(hello).slice(0, 100)} as its first message, not whether its handler loaded; the sandbox was destroyed`,
        );
      }
    } catch (e) {
      if (e instanceof SandboxError) throw e;
      if (e instanceof ChannelError && e.kind !== 'closed') throw this.violation!;
      if (this.hasExited()) throw await this.deathError('before loading the handler');
      throw new SandboxError('sandbox', `${this.id}: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    this.serving = true;
  }

  /**
   * ready(), destroying the sandbox if it fails, then the record of where its making went:
   * t0 start, t1 root or scratch ready, t2 first process started (performance.now()).
   */
  async becomeReady(
    accepted: Promise<Channel>,
    abort: AbortController,
    timeoutMs: number,
    t0: number,
    t1: number,
    t2: number,
  ): Promise<void> {
    try {
      await this.ready(accepted, abort, timeoutMs);
    } catch (e) {
      await this.destroy().catch(() => {});
      throw e;
    }
    const t3 = performance.now();
    this.timings = { stitchMs: t1 - t0, spawnMs: t2 - t1, readyMs: t3 - t2, totalMs: t3 - t0 };
  }

  /**
   * Runs f(event) once. The request carries an id made for it alone, which the handler cannot
   * guess beforehand: a line with any other id, or one that comes while no request is
   * outstanding, is not an answer but a broken sandbox, which is destroyed at once.
   */
  async invoke(event: unknown, timeoutMs: number): Promise<unknown> {
    return (await this.exchange({ event }, 'result', timeoutMs)).result;
  }

  /** Answers an HTTP request, the same way (the body travels in base64 both ways). */
  async serve(request: HttpRequest, timeoutMs: number): Promise<HttpResponse> {
    const http = { ...request, body: request.body.toString('base64') };
    const answer = await this.exchange({ http }, 'status', timeoutMs);
    const problem = responseProblem(answer);
    if (problem) throw this.broke('protocol', `sent an HTTP answer that ${problem}`);
    const body = Buffer.from(answer.body as string, 'base64');
    if (body.length > this.maxReplyBytes)
      throw this.broke(
        'reply-too-large',
        `sent a body of ${body.length} bytes, more than --max-reply-bytes ${this.maxReplyBytes}`,
      );
    return {
      status: answer.status as number,
      reason: answer.reason as string,
      headers: answer.headers as [string, string][],
      body,
    };
  }

  /** One request and its answer, which carries `field` or says why the handler failed. */
  private async exchange(message: Message, field: 'result' | 'status', timeoutMs: number): Promise<Message> {
    if (this.violation) throw this.violation;
    if (this.destroying || !this.channel) throw new SandboxError('sandbox', `${this.id} is not running`);
    if (this.busy) throw new SandboxError('sandbox', `${this.id} is already running an invocation`);
    this.busy = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const id = randomUUID();
      const reply = this.channel.request({ id, ...message }, (r) => replyProblem(r, id, field));
      const timedOut = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new SandboxError('timeout', `the handler ran longer than ${timeoutMs} ms; its sandbox was killed`)),
          timeoutMs,
        );
      });
      const answer = await Promise.race([
        reply.catch(async (e: ChannelError) => {
          // A violation was handed to violated() before any reaction to the rejection runs.
          if (e.kind !== 'closed') throw this.violation!;
          // The socket closed: the sandbox died. Wait for its status to tell an OOM kill from a crash.
          await waitAtMost(this.exited, EXIT_GRACE_MS);
          throw await this.deathError('during the invocation');
        }),
        timedOut,
      ]);
      if (field in answer) return answer;
      const kind = (['bad-result', 'bad-request'] as const).find((k) => k === answer.error) ?? 'exception';
      throw new SandboxError(
        kind,
        kind === 'bad-result'
          ? `the handler's result is not JSON: ${answer.message}`
          : kind === 'bad-request'
            ? String(answer.message)
            : `${answer.type}: ${answer.message}`,
        kind === 'bad-request' ? {} : { type: answer.type, traceback: answer.traceback },
      );
    } catch (e) {
      if (e instanceof SandboxError && DESTROYED_AFTER.has(e.kind)) await this.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
      this.busy = false;
    }
  }

  /** An answer the protocol does not allow (its fields, its body's size): the sandbox is destroyed, as for any violation. */
  private broke(kind: 'protocol' | 'reply-too-large', why: string): SandboxError {
    this.violation = new SandboxError(kind, `${this.id} ${why}; the sandbox was destroyed`);
    this.destroy().catch((err) => this.log(`${this.id}: ${(err as Error).message}`));
    return this.violation;
  }

  /**
   * The runtime broke the protocol: the sandbox goes at once, whether a request was outstanding
   * (its caller gets the error, as ready()'s does) or not (then only the log says why it went).
   */
  private violated(e: ChannelError, unasked: boolean): void {
    const bound =
      e.kind === 'too-large'
        ? `, the bound for an answer of --max-reply-bytes ${this.maxReplyBytes} (its body in base64, with its headers)`
        : '';
    this.violation = new SandboxError(
      e.kind === 'too-large' ? 'reply-too-large' : 'protocol',
      `${this.id} ${e.message}${bound}; the sandbox was destroyed`,
    );
    if (unasked && this.serving) this.log(this.violation.message);
    this.destroy().catch((err) => this.log(`${this.id}: ${(err as Error).message}`));
  }

  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      this.channel?.close();
      await this.teardown();
    })();
    return this.destroying;
  }
}

/** Failures after which the sandbox is not fit to run anything again. */
const DESTROYED_AFTER = new Set(['timeout', 'oom', 'crash', 'reply-too-large', 'protocol']);

/** Why a message is not the reply to request `id` (see runtime/server.py), or undefined if it is. */
function replyProblem(reply: Message, id: string, field: 'result' | 'status'): string | undefined {
  if (reply.id !== id)
    return 'id' in reply ? "sent a reply with another request's id" : "sent a reply without its request's id";
  if (field in reply || ANSWERED_ERRORS.has(reply.error as string)) return undefined;
  return `sent a reply with neither ${field === 'result' ? 'a result' : 'an HTTP answer'} nor an error`;
}

const ANSWERED_ERRORS = new Set(['exception', 'bad-result', 'bad-request']);

/** A control character other than a tab: it has no place in a status line. */
function isControl(c: string): boolean {
  const code = c.charCodeAt(0);
  return (code < 0x20 && c !== '\t') || code === 0x7f;
}

/** What is wrong with an HTTP answer's fields (a status, a reason, [name, value] string pairs, base64), if anything. */
function responseProblem(answer: Message): string | undefined {
  const { status, reason, headers, body } = answer;
  // A final answer's status: an informational 1xx (101 would switch the caller's connection) is not one.
  if (!Number.isInteger(status) || (status as number) < 200 || (status as number) > 599)
    return `has status ${JSON.stringify(status)}, not a final HTTP status (200-599)`;
  if (typeof reason !== 'string' || [...reason].some(isControl)) return 'has a reason that is not one line of text';
  if (
    !Array.isArray(headers) ||
    !headers.every((h) => Array.isArray(h) && h.length === 2 && h.every((x) => typeof x === 'string'))
  )
    return 'has headers that are not [name, value] pairs';
  if (typeof body !== 'string') return 'has no body';
  return undefined;
}

/** Waits for promise, but no longer than ms (and leaves no timer behind to hold the process). */
export async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise,
    new Promise((r) => {
      timer = setTimeout(r, ms);
    }),
  ]);
  clearTimeout(timer);
}

/** The handler runs as nobody: its code must be readable by others, or it fails inside with a less clear EACCES. */
export function requireReadable(spec: SandboxSpec): void {
  for (const [file, bits] of [
    [spec.code, 0o005],
    [path.join(spec.code, spec.entry?.file ?? 'f.py'), 0o004],
  ] as const) {
    let mode: number;
    try {
      mode = fs.statSync(file).mode;
    } catch {
      throw new SandboxError('bad-handler', `${file} does not exist`);
    }
    if ((mode & bits) !== bits)
      throw new SandboxError(
        'bad-handler',
        `${file} is not readable by the sandbox's user (mode ${(mode & 0o777).toString(8)})`,
      );
  }
}

/**
 * Why a sandbox's first process ended, said the same way by every backend: the OOM killer at
 * its memory limit, or a crash (`how`: killed by a signal, an exit status), with the last
 * lines the runtime wrote to its scratch directory's log.
 */
export function deathErrorOf(
  when: string,
  cause: { oom: boolean; how: string; memoryBytes: number; scratch: string },
): SandboxError {
  if (cause.oom) {
    return new SandboxError(
      'oom',
      `the sandbox reached its memory limit of ${Math.round(cause.memoryBytes / 2 ** 20)} MiB and the kernel's OOM killer ended it ${when}`,
    );
  }
  const log = lastLines(path.join(cause.scratch, 'runtime.log'), 5);
  return new SandboxError('crash', `the sandbox's process ${cause.how} ${when}${log ? `; it wrote: ${log}` : ''}`);
}

/** The last n lines of a log file, on one line, for an error message; empty if there is none. */
function lastLines(file: string, n: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-n).join(' | ').slice(0, 2000);
  } catch {
    return '';
  }
}
