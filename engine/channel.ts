// The worker's end of a sandbox's Unix socket. The worker listens in the sandbox's scratch
// directory and the runtime inside dials it once it has loaded the handler, so "connected and
// said ready" is the readiness signal (no polling for a socket to appear). Messages are JSON,
// one per line, one request in flight at a time (see runtime/server.py).
import fs from 'node:fs';
import net from 'node:net';
import { peerCred, sendFds } from '../native/index.js';

/** Unix socket paths longer than this do not fit in sockaddr_un. */
const MAX_SOCKET_PATH = 107;

export class Channel {
  private buffer = '';
  private waiting: { resolve: (m: Record<string, unknown>) => void; reject: (e: Error) => void } | undefined;
  private closedBecause: Error | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    const onEnd = (why: string) => this.fail(new Error(why));
    socket.on('end', () => onEnd('the sandbox closed its socket'));
    socket.on('close', () => onEnd('the sandbox closed its socket'));
    socket.on('error', (e) => onEnd(`socket error: ${e.message}`));
  }

  /**
   * Listens at socketPath (connectable by anyone: the sandbox's user is not root). `listening`
   * resolves once the socket can be connected to by that user, which must come before anything
   * that may dial it starts (a zygote's fork dials within a millisecond); `accepted` resolves
   * with the first connection, after which the listening socket is closed and unlinked.
   */
  static listen(socketPath: string, signal: AbortSignal): { listening: Promise<void>; accepted: Promise<Channel> } {
    if (socketPath.length > MAX_SOCKET_PATH) {
      const e = Promise.reject(new Error(`socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter --state-dir`));
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
        } else resolve(new Channel(socket!));
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

  /** The next message from the sandbox. */
  next(): Promise<Record<string, unknown>> {
    if (this.closedBecause) return Promise.reject(this.closedBecause);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.drain();
    });
  }

  send(message: Record<string, unknown>): void {
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  /** One message with file descriptors attached (SCM_RIGHTS); the caller keeps and closes its copies. */
  sendWithFds(message: Record<string, unknown>, fds: number[]): void {
    sendFds(this.fd, Buffer.from(`${JSON.stringify(message)}\n`), fds);
  }

  /** The pid, in our PID namespace, of the process that connected. */
  peerPid(): number {
    return peerCred(this.fd).pid;
  }

  close(): void {
    this.socket.destroy();
  }

  /** Node exposes no public way to the descriptor of an accepted Unix socket. */
  private get fd(): number {
    const fd = (this.socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) throw new Error('the sandbox\'s socket is closed');
    return fd;
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    this.drain();
  }

  private drain(): void {
    const newline = this.buffer.indexOf('\n');
    if (newline < 0 || !this.waiting) return;
    const line = this.buffer.slice(0, newline);
    this.buffer = this.buffer.slice(newline + 1);
    const { resolve, reject } = this.waiting;
    this.waiting = undefined;
    try {
      resolve(JSON.parse(line) as Record<string, unknown>);
    } catch {
      reject(new Error(`the sandbox sent a line that is not JSON: ${line.slice(0, 200)}`));
    }
  }

  private fail(e: Error): void {
    this.closedBecause ??= e;
    if (this.waiting && this.buffer.indexOf('\n') < 0) {
      const { reject } = this.waiting;
      this.waiting = undefined;
      reject(this.closedBecause);
    }
  }
}
