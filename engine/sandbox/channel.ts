// The worker's end of a sandbox's (or a zygote's) Unix socket. The worker listens in the
// sandbox's scratch directory and the runtime inside dials it once it has loaded the handler,
// so "connected and said hello" is the readiness signal (no polling for a socket to appear).
// Messages are JSON, one per line, one request outstanding at a time (see runtime/server.py).
//
// The other end runs hostile code (a handler, or the packages a zygote imported), which can
// write to the socket behind the runtime's back. So every byte that comes is accounted for
// when it comes: a line is read in linear time and only up to a bound, must be JSON that
// answers the request outstanding (the caller's check: its id, its fields), and anything
// else (a line too long, garbage, a line nobody asked for) breaks the channel at once: the
// socket is closed, the outstanding request fails, and the owner is told so that it destroys
// the sandbox. Nothing a sandbox sends is ever kept for a later request.
import fs from 'node:fs';
import net from 'node:net';
import { peerCred, sendFds } from '../../native/index.js';

/** Unix socket paths longer than this do not fit in sockaddr_un. */
const MAX_SOCKET_PATH = 107;
const NEWLINE = 0x0a;
/** How much of an offending line an error quotes. */
const QUOTED_CHARS = 100;

/**
 * The default bound on a reply's body: 6 MiB, the worker's own limit on a request body (and
 * AWS Lambda's on a synchronous response), so a handler may answer with as much as it may be
 * sent.
 */
export const DEFAULT_MAX_REPLY_BYTES = 6 * 2 ** 20;

/** Room on a reply's line besides its body: the id, the status and reason, the headers. */
const FRAMING_BYTES = 64 * 2 ** 10;

/**
 * The longest line a sandbox may send when its replies' bodies may be maxReplyBytes long: the
 * body in base64, with its framing. The worker holds up to this much per running sandbox
 * before it refuses; the body's own bound is checked once it is decoded (RuntimeSandbox).
 */
export function lineBytesFor(maxReplyBytes: number): number {
  return 4 * Math.ceil(maxReplyBytes / 3) + FRAMING_BYTES;
}

export type Message = Record<string, unknown>;

/** Why a message does not answer the request outstanding, as a clause after "<sandbox> " (undefined: it does). */
export type ReplyCheck = (reply: Message) => string | undefined;

/**
 * The channel cannot be used any more. `too-large` and `protocol`: the sandbox broke the
 * protocol (a line over the bound; garbage, a wrong id or a line unasked), and the channel
 * closed itself; `closed`: the socket closed (the sandbox died, or its owner closed it).
 * The message is a clause whose subject is the sandbox: "sent a line that is not JSON: ...".
 */
export class ChannelError extends Error {
  constructor(
    readonly kind: 'too-large' | 'protocol' | 'closed',
    message: string,
  ) {
    super(message);
    this.name = 'ChannelError';
  }
}

interface Waiting {
  check: ReplyCheck;
  resolve: (m: Message) => void;
  reject: (e: ChannelError) => void;
}

export class Channel {
  /** The bytes of the line not yet ended, as they came (concatenated once, when it ends). */
  private parts: Buffer[] = [];
  private partBytes = 0;
  private waiting: Waiting | undefined;
  private readonly greeting: Promise<Message>;
  private brokenBecause: ChannelError | undefined;
  private violationListener: ((e: ChannelError, unasked: boolean) => void) | undefined;

  private constructor(
    private readonly socket: net.Socket,
    private readonly maxLineBytes: number,
  ) {
    // The hello may come before anyone asks for it (a zygote's fork dials while the engine still
    // waits for the zygote's answer): it is the one message expected from the start.
    this.greeting = this.expect(() => undefined);
    this.greeting.catch(() => {});
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const onEnd = (why: string) => this.fail(new ChannelError('closed', why));
    socket.on('end', () => onEnd('closed its socket'));
    socket.on('close', () => onEnd('closed its socket'));
    socket.on('error', (e) => onEnd(`broke its socket: ${e.message}`));
  }

  /**
   * Listens at socketPath (connectable by anyone: the sandbox's user is not root). `listening`
   * resolves once the socket can be connected to by that user, which must come before anything
   * that may dial it starts (a zygote's fork dials within a millisecond); `accepted` resolves
   * with the first connection, after which the listening socket is closed and unlinked. A line
   * longer than maxLineBytes (newline not counted) breaks the channel.
   */
  static listen(
    socketPath: string,
    signal: AbortSignal,
    maxLineBytes: number,
  ): { listening: Promise<void>; accepted: Promise<Channel> } {
    if (socketPath.length > MAX_SOCKET_PATH) {
      const e = Promise.reject(
        new Error(`socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter --state-dir`),
      );
      e.catch(() => {});
      return { listening: e as Promise<never>, accepted: e as Promise<never> };
    }
    let ready!: () => void;
    let notReady!: (e: Error) => void;
    const listening = new Promise<void>((resolve, reject) => {
      ready = resolve;
      notReady = reject;
    });
    const accepted = new Promise<Channel>((resolve, reject) => {
      const server = net.createServer();
      const finish = (err?: Error, socket?: net.Socket) => {
        server.close();
        signal.removeEventListener('abort', onAbort);
        if (err) {
          notReady(err);
          reject(err);
        } else resolve(new Channel(socket!, maxLineBytes));
      };
      const onAbort = () => finish(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      signal.addEventListener('abort', onAbort, { once: true });
      server.once('connection', (socket) => finish(undefined, socket));
      server.once('error', (e) => finish(e));
      server.listen(socketPath, () => {
        try {
          fs.chmodSync(socketPath, 0o666);
          ready();
        } catch (e) {
          finish(e as Error);
        }
      });
    });
    listening.catch(() => {});
    accepted.catch(() => {});
    return { listening, accepted };
  }

  /**
   * The first message, which carries no id ({"ready": ...} or {"fatal": ...}; its owner checks
   * its fields), or the signal's reason if it aborts first: a runtime that connected and then
   * hangs in the code it loads must not hold its caller for ever.
   */
  hello(signal: AbortSignal): Promise<Message> {
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.greeting.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /**
   * Sends message (with fds as SCM_RIGHTS, if any; the caller keeps and closes its copies) and
   * resolves with the reply `check` accepts. Rejects with a ChannelError if the channel breaks
   * first, the reply included: a reply `check` refuses breaks it.
   */
  request(message: Message, check: ReplyCheck, fds: number[] = []): Promise<Message> {
    if (this.brokenBecause) return Promise.reject(this.brokenBecause);
    if (this.waiting) return Promise.reject(new Error('a request is already outstanding on this channel'));
    const reply = this.expect(check);
    const line = `${JSON.stringify(message)}\n`;
    try {
      if (fds.length > 0) sendFds(this.fd, Buffer.from(line), fds);
      else this.socket.write(line);
    } catch (e) {
      this.fail(new ChannelError('closed', `could not be sent a request: ${(e as Error).message}`));
    }
    return reply;
  }

  /**
   * Calls listener once, when the sandbox breaks the protocol (not when the socket closes);
   * `unasked`: no request was outstanding to fail with the error, so only the owner learns of it.
   */
  onViolation(listener: (e: ChannelError, unasked: boolean) => void): void {
    this.violationListener = listener;
  }

  /** Why the channel cannot be used, once it cannot. */
  get broken(): ChannelError | undefined {
    return this.brokenBecause;
  }

  /** The pid, in our PID namespace, of the process that connected. */
  peerPid(): number {
    return peerCred(this.fd).pid;
  }

  close(): void {
    this.fail(new ChannelError('closed', 'was closed by the engine'));
  }

  /** Node exposes no public way to the descriptor of an accepted Unix socket. */
  private get fd(): number {
    const fd = (this.socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) throw new Error("the sandbox's socket is closed");
    return fd;
  }

  private expect(check: ReplyCheck): Promise<Message> {
    return new Promise((resolve, reject) => {
      this.waiting = { check, resolve, reject };
    });
  }

  /** Only the new bytes are searched for a newline, and a line is decoded once, when it ends. */
  private onData(chunk: Buffer): void {
    let start = 0;
    while (!this.brokenBecause && start < chunk.length) {
      if (!this.waiting) {
        this.violate(
          'protocol',
          `sent ${chunk.length - start} bytes while no request was outstanding: ${quote(chunk.toString('utf8', start, start + QUOTED_CHARS + 1))}`,
        );
        return;
      }
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline < 0 ? chunk.length : newline;
      this.partBytes += end - start;
      if (this.partBytes > this.maxLineBytes) {
        this.violate('too-large', `sent a line longer than ${this.maxLineBytes} bytes`);
        return;
      }
      if (newline < 0) {
        this.parts.push(start === 0 ? chunk : chunk.subarray(start));
        return;
      }
      // Most lines come whole in one chunk: decoded straight from it, with no copy.
      const line =
        this.parts.length === 0
          ? chunk.toString('utf8', start, newline)
          : Buffer.concat([...this.parts, chunk.subarray(start, newline)], this.partBytes).toString('utf8');
      this.parts = [];
      this.partBytes = 0;
      start = newline + 1;
      this.deliver(line);
    }
  }

  private deliver(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      return this.violate('protocol', `sent a line that is not JSON: ${quote(line)}`);
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      return this.violate('protocol', `sent a line that is not a JSON object: ${quote(line)}`);
    }
    const { check, resolve } = this.waiting!;
    const why = check(message as Message);
    if (why !== undefined) return this.violate('protocol', `${why}: ${JSON.stringify(message).slice(0, QUOTED_CHARS)}`);
    this.waiting = undefined;
    resolve(message as Message);
  }

  /** The sandbox broke the protocol: stop reading it, fail what waits, and tell the owner. */
  private violate(kind: 'too-large' | 'protocol', message: string): void {
    const unasked = !this.waiting;
    const e = new ChannelError(kind, message);
    this.fail(e);
    this.violationListener?.(e, unasked);
  }

  private fail(e: ChannelError): void {
    if (this.brokenBecause) return;
    this.brokenBecause = e;
    this.parts = [];
    this.socket.destroy();
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(e);
  }
}

/** The start of what a sandbox sent, as a JSON string: one line, whatever it held. */
function quote(text: string): string {
  return JSON.stringify(text.slice(0, QUOTED_CHARS)) + (text.length > QUOTED_CHARS ? '...' : '');
}
