// The HTTP front of the engine, OpenLambda style: POST /run/<lambda> with a JSON body is
// answered with the handler's JSON result; GET /status says what the worker holds. The caches
// are layers it is given: the install cache puts a lambda's requirements on disk, the import
// cache (inside the backend) forks its sandbox from a zygote, the handler cache keeps it
// frozen for the next request. With all off, each request gets a fresh sandbox that is
// destroyed after it has answered. The x-sock-start header of a reply says how its sandbox
// came to be: "warm" (handler cache), "zygote:<packages>" (forked), "lean" or "docker"; its
// Server-Timing header how long the worker spent installing, getting the sandbox (making,
// forking or thawing it) and running the handler, in milliseconds.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SandboxError, type FailureKind } from '../errors.js';
import type { HandlerCache } from '../caches/handlerCache.js';
import { InstallError, type InstallCache } from '../caches/installCache.js';
import { BadLambdaError, type Lambda, Registry } from './registry.js';
import type { SandboxBackend } from '../sandbox/sandbox.js';
import { QueueFullError, Slots } from './slots.js';

const MAX_BODY_BYTES = 6 * 1024 * 1024;

/** The HTTP status of each failure: the caller's fault is never a 5xx, the handler's always is. */
const STATUS_OF: Record<FailureKind, number> = {
  exception: 500,
  'bad-handler': 500,
  'bad-result': 500,
  oom: 500,
  crash: 502,
  'reply-too-large': 502,
  protocol: 502,
  timeout: 504,
  sandbox: 500,
};

export interface WorkerOptions {
  registry: Registry;
  backend: SandboxBackend;
  /** Whether a lambda's sock.json may ask for outbound network [default true; false answers 403]. */
  outbound?: boolean;
  /** Per-invocation limit; the sandbox is killed past it. */
  timeoutMs: number;
  /** Requests that may wait for a sandbox beyond the backend's capacity. */
  queueLimit: number;
  /** Without one, a lambda with requirements gets 501. */
  installCache?: InstallCache;
  handlerCache?: HandlerCache;
  log?: (line: string) => void;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

export class Worker {
  private readonly server: http.Server;
  private readonly slots: Slots;
  private readonly started = Date.now();
  private readonly counts = { requests: 0, ok: 0, failed: {} as Record<string, number> };
  private closing = false;
  /** Requests being handled, so that shutdown answers every one before it closes connections. */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly options: WorkerOptions) {
    this.slots = new Slots(options.backend.capacity, options.queueLimit);
    this.server = http.createServer((req, res) => {
      const handled = this.handle(req, res)
        .catch((e) => this.reply(res, 500, { error: `worker: ${(e as Error).message}`, kind: 'worker' }))
        .finally(() => this.inFlight.delete(handled));
      this.inFlight.add(handled);
    });
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve(this.server.address() as AddressInfo));
    });
  }

  /** Stops taking requests, refuses the queued ones, kills the installs in flight, destroys every sandbox and releases the engine. */
  async close(): Promise<void> {
    this.closing = true;
    this.slots.refuseWaiting(new HttpError(503, 'shutdown', 'the worker is shutting down'));
    const closed = new Promise((resolve) => this.server.close(resolve));
    this.server.closeIdleConnections();
    await this.options.handlerCache?.close();
    // Before the engine releases the state directory, whose install-work they write in.
    await this.options.installCache?.close();
    await this.options.backend.shutdown();
    await Promise.allSettled([...this.inFlight]);
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://worker');
    if (url.pathname === '/status') {
      if (req.method !== 'GET') return this.reply(res, 405, { error: 'method: /status answers GET', kind: 'method' });
      return this.reply(res, 200, this.status());
    }
    const run = /^\/run\/([^/]+)$/.exec(url.pathname);
    if (!run)
      return this.reply(res, 404, {
        error: `not found: ${url.pathname} (the worker serves POST /run/<lambda> and GET /status)`,
        kind: 'not-found',
      });
    if (req.method !== 'POST')
      return this.reply(res, 405, { error: 'method: /run/<lambda> answers POST', kind: 'method' });
    this.counts.requests++;
    try {
      const { result, start, timing } = await this.run(lambdaName(run[1]!), req);
      this.counts.ok++;
      const serverTiming = Object.entries(timing)
        .map(([name, ms]) => `${name};dur=${ms.toFixed(3)}`)
        .join(', ');
      this.reply(res, 200, result, { 'x-sock-start': start, 'server-timing': serverTiming });
    } catch (e) {
      const { status, body } = this.failure(e);
      this.counts.failed[String(body.kind)] = (this.counts.failed[String(body.kind)] ?? 0) + 1;
      // A refused lambda is logged too: it may be someone probing for the host's files.
      if (status >= 500 || body.kind === 'bad-lambda') this.options.log?.(`${run[1]}: ${body.error}`);
      this.reply(res, status, body);
    }
  }

  private async run(
    name: string,
    req: http.IncomingMessage,
  ): Promise<{ result: unknown; start: string; timing: Record<string, number> }> {
    const event = await readEvent(req);
    const lambda = this.lookup(name);
    const t0 = performance.now();
    if (lambda.network === 'outbound' && this.options.outbound === false)
      throw new HttpError(
        403,
        'network',
        `lambda '${name}' asks for outbound network (sock.json) and this worker runs with --no-outbound`,
      );
    const spec = {
      code: lambda.code,
      packages: await this.install(lambda.name, lambda.requirements),
      network: lambda.network,
    };
    const t1 = performance.now();
    if (this.closing) throw new HttpError(503, 'shutdown', 'the worker is shutting down');
    let release: () => void;
    try {
      release = await this.slots.acquire();
    } catch (e) {
      if (e instanceof QueueFullError) throw new HttpError(503, 'busy', e.message);
      throw e;
    }
    const cache = this.options.handlerCache;
    try {
      const t2 = performance.now();
      const { sandbox, hit } = cache
        ? await cache.acquire(lambda.name, lambda.version, spec)
        : { sandbox: await this.options.backend.create(spec), hit: false };
      const t3 = performance.now();
      let reusable = false;
      try {
        const result = await sandbox.invoke(event, this.options.timeoutMs);
        reusable = true;
        return {
          result,
          start: hit ? 'warm' : sandbox.origin,
          timing: { install: t1 - t0, sandbox: t3 - t2, invoke: performance.now() - t3 },
        };
      } catch (e) {
        // A handler's exception leaves its instance as good as before; a timeout, OOM or crash does not.
        reusable = e instanceof SandboxError && (e.kind === 'exception' || e.kind === 'bad-result');
        throw e;
      } finally {
        // Answer first. Keeping an instance starts after the reply is written (setImmediate runs
        // after the promise callbacks that write it): its first step may be a synchronous write
        // to the kernel. Destroying starts at once: its kill overlapping the caller's next request
        // costs that request more than the reply waiting for it. The slot is held until the
        // sandbox is kept or gone, so the pool is never overdrawn.
        const end = () =>
          (cache && reusable && !this.closing ? cache.release(lambda.name, lambda.version, sandbox) : sandbox.destroy())
            .catch((e) => this.options.log?.(`${sandbox.id}: ${(e as Error).message}`))
            .finally(release);
        if (cache && reusable) setImmediate(end);
        else void end();
      }
    } catch (e) {
      release();
      throw e;
    }
  }

  /**
   * A lambda the registry refuses (a link, a file its owner could not read) is a 403 bad-lambda:
   * the worker is working and the caller asked for a real lambda, but it will not be served as
   * it stands, and retrying does not help; only its author can fix it. Unlike a handler that
   * fails when run (500 bad-handler), nothing of it ran.
   */
  private lookup(name: string): Lambda {
    let lambda: Lambda | undefined;
    try {
      lambda = this.options.registry.lookup(name);
    } catch (e) {
      if (e instanceof BadLambdaError) throw new HttpError(403, 'bad-lambda', e.message);
      throw e;
    }
    if (!lambda)
      throw new HttpError(404, 'unknown-lambda', `no lambda named '${name}' in ${this.options.registry.dir}`);
    return lambda;
  }

  /** The lambda's packages on disk (installed once, by the install cache), by name. */
  private async install(name: string, requirements: string[]): Promise<Record<string, string>> {
    if (requirements.length === 0) return {};
    const cache = this.options.installCache;
    if (!cache)
      throw new HttpError(
        501,
        'packages',
        `lambda '${name}' requires ${requirements.join(', ')}, and this worker runs without an install cache`,
      );
    try {
      return Object.fromEntries((await cache.ensure(requirements)).map((p) => [p.name, p.dir]));
    } catch (e) {
      if (this.closing) throw new HttpError(503, 'shutdown', 'the worker is shutting down');
      if (e instanceof InstallError) throw new HttpError(500, 'install', `lambda '${name}': ${e.message}`);
      throw e;
    }
  }

  private failure(e: unknown): { status: number; body: Record<string, unknown> } {
    if (e instanceof HttpError) return { status: e.status, body: { error: `${e.kind}: ${e.message}`, kind: e.kind } };
    if (this.closing)
      return { status: 503, body: { error: 'shutdown: the worker is shutting down', kind: 'shutdown' } };
    if (e instanceof SandboxError)
      return { status: STATUS_OF[e.kind], body: { error: `${e.kind}: ${e.message}`, kind: e.kind, ...e.detail } };
    return { status: 500, body: { error: `worker: ${(e as Error).message}`, kind: 'worker' } };
  }

  private status(): Record<string, unknown> {
    const sandboxes = this.options.backend.status();
    return {
      worker: {
        pid: process.pid,
        uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
        registry: this.options.registry.dir,
        lambdas: this.options.registry.names(),
        requests: this.counts,
        timeoutMs: this.options.timeoutMs,
        queue: {
          running: this.slots.inUse,
          waiting: this.slots.waiting,
          capacity: this.slots.limit,
          queueLimit: this.slots.queueLimit,
        },
      },
      sandboxes,
      memory: { workerRssBytes: process.memoryUsage.rss(), sandboxesBytes: sandboxes.memoryBytes },
      caches: {
        handler: this.options.handlerCache?.status() ?? 'off',
        install: this.options.installCache?.status() ?? 'off',
        import: sandboxes.importCache ?? 'off',
      },
    };
  }

  private reply(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent) return;
    const text = `${JSON.stringify(body === undefined ? null : body)}\n`;
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }
}

function lambdaName(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw new HttpError(404, 'unknown-lambda', `'${encoded}' is not a lambda name`);
  }
}

/** The request body as JSON; an empty body is the event null. */
function readEvent(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is read and dropped, so that the 413 can still be sent.
      if (size > MAX_BODY_BYTES)
        reject(new HttpError(413, 'too-large', `the request body is larger than ${MAX_BODY_BYTES} bytes`));
      else chunks.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve(null);
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new HttpError(400, 'bad-request', `the body is not JSON: ${(e as Error).message}`));
      }
    });
  });
}
