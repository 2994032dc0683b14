// The HTTP front of the engine, OpenLambda style. A request to /run/<lambda>, or below it
// (/run/<lambda>/<path>?<query>), with any method its ol.yaml allows, goes to the lambda's
// handler whole: a function f(event) gets the body as its event (JSON; empty is {}) and is
// answered with exactly json.dumps(result), as OpenLambda's worker answers; a WSGI or ASGI app
// answers with its own status, headers and bytes. POST /runLambda/<lambda> is the SOCK paper's
// name for the same. GET /status says what the worker holds; GET /metrics says it in
// Prometheus' text format. The caches are layers it is given: the install cache puts a lambda's
// requirements on disk, the import cache (inside the backend) forks its sandbox from a zygote,
// the handler cache keeps it for the next request. With all off, or for a lambda whose ol.yaml
// says reuse-sandbox: false, each request gets a fresh sandbox destroyed after it has
// answered. The x-sock-start header of a reply says how its sandbox came to be: "warm"
// (handler cache), "zygote:<packages>" (forked), "lean" or "docker"; its Server-Timing header
// how long the worker spent installing, getting the sandbox (making, forking or thawing it) and
// running the handler, in milliseconds. The worker's own failures are JSON, {"error", "kind"}.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SandboxError, type FailureKind } from '../errors.js';
import type { HandlerCache } from '../caches/handlerCache.js';
import { InstallError, type InstallCache } from '../caches/installCache.js';
import { BadLambdaError } from './lambdaConfig.js';
import { WorkerMetrics } from './metrics.js';
import type { Lambda, Registry } from './registry.js';
import type { HttpRequest, HttpResponse, SandboxBackend } from '../sandbox/sandbox.js';
import { QueueFullError, Slots } from './slots.js';

const MAX_BODY_BYTES = 6 * 1024 * 1024;

/** The HTTP status of each failure: the caller's fault is never a 5xx, the handler's always is. */
const STATUS_OF: Record<FailureKind, number> = {
  exception: 500,
  'bad-handler': 500,
  'bad-request': 400,
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
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Hop-by-hop headers (RFC 9110 7.6.1) and the length, which are the worker's to write, not the handler's. */
const WORKER_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'content-length',
]);

/** /run/<lambda>[/<path>], or the SOCK paper's /runLambda/<lambda>. */
const RUN_PATH = /^(\/run\/([^/]+))(\/.*)?$|^(\/runLambda\/([^/]+))$/;

export class Worker {
  private readonly server: http.Server;
  private readonly slots: Slots;
  private readonly started = Date.now();
  private readonly counts = { requests: 0, ok: 0, failed: {} as Record<string, number> };
  private readonly metrics = new WorkerMetrics();
  /** Per lambda loaded, what it asks for that this worker does not do (a Kafka trigger, ...). */
  private readonly unsupported = new Map<string, string[]>();
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
    // The target as it came, not normalized: a handler sees the path and query OpenLambda's would.
    const target = /^([^?#]*)(?:\?([^#]*))?/.exec(req.url ?? '/')!;
    const url = { pathname: target[1] || '/', query: target[2] ?? '' };
    if (url.pathname === '/status' || url.pathname === '/metrics') {
      if (req.method !== 'GET')
        return this.reply(res, 405, { error: `method: ${url.pathname} answers GET`, kind: 'method' }, { allow: 'GET' });
      if (url.pathname === '/status') return this.reply(res, 200, this.status());
      const text = await this.metrics.text(() => this.status());
      res.writeHead(200, { 'content-type': this.metrics.contentType, 'content-length': Buffer.byteLength(text) });
      return void res.end(text);
    }
    const run = RUN_PATH.exec(url.pathname);
    if (!run)
      return this.reply(res, 404, {
        error: `not found: ${url.pathname} (the worker serves /run/<lambda>[/<path>], POST /runLambda/<lambda>, GET /status and GET /metrics)`,
        kind: 'not-found',
      });
    const paperPath = run[4] !== undefined;
    if (paperPath && req.method !== 'POST')
      return this.reply(
        res,
        405,
        { error: 'method: /runLambda/<lambda> answers POST', kind: 'method' },
        { allow: 'POST' },
      );
    const encodedName = (paperPath ? run[5] : run[2])!;
    this.counts.requests++;
    const began = performance.now();
    let start = 'none';
    try {
      const request: HttpRequest = {
        method: req.method ?? 'GET',
        root: (paperPath ? run[4] : run[1])!,
        path: run[3] ?? '/',
        query: url.query,
        headers: headerPairs(req.rawHeaders),
        body: await readBody(req),
      };
      const served = await this.run(lambdaName(encodedName), request);
      start = served.start;
      const serverTiming = Object.entries(served.timing)
        .map(([name, ms]) => `${name};dur=${ms.toFixed(3)}`)
        .join(', ');
      if (this.answer(res, served.response, { 'x-sock-start': start, 'server-timing': serverTiming })) this.counts.ok++;
    } catch (e) {
      const { status, body, headers } = this.failure(e);
      this.counts.failed[String(body.kind)] = (this.counts.failed[String(body.kind)] ?? 0) + 1;
      // A refused lambda is logged too: it may be someone probing for the host's files.
      if (status >= 500 || body.kind === 'bad-lambda') this.options.log?.(`${encodedName}: ${body.error}`);
      this.reply(res, status, body, headers);
    } finally {
      this.metrics.observe(start, res.statusCode, (performance.now() - began) / 1000);
    }
  }

  private async run(
    name: string,
    request: HttpRequest,
  ): Promise<{ response: HttpResponse; start: string; timing: Record<string, number> }> {
    const lambda = this.lookup(name);
    if (!lambda.methods.includes('*') && !lambda.methods.includes(request.method))
      throw new HttpError(
        405,
        'method',
        `lambda '${name}' answers ${lambda.methods.join(', ')} (its ol.yaml's triggers.http), not ${request.method}`,
        { allow: lambda.methods.join(', ') },
      );
    const t0 = performance.now();
    if (lambda.network === 'outbound' && this.options.outbound === false)
      throw new HttpError(
        403,
        'network',
        `lambda '${name}' asks for outbound network (sock.json) and this worker runs with --no-outbound`,
      );
    const spec = {
      code: lambda.code,
      entry: lambda.entry,
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
    // ol.yaml's reuse-sandbox: false asks for a sandbox per request: the handler cache is not used.
    const cache = lambda.reuse ? this.options.handlerCache : undefined;
    try {
      const t2 = performance.now();
      const { sandbox, hit } = cache
        ? await cache.acquire(lambda.name, lambda.version, spec)
        : { sandbox: await this.options.backend.create(spec), hit: false };
      const t3 = performance.now();
      let reusable = false;
      try {
        const response = await sandbox.serve(request, this.options.timeoutMs);
        reusable = true;
        return {
          response,
          start: hit ? 'warm' : sandbox.origin,
          timing: { install: t1 - t0, sandbox: t3 - t2, invoke: performance.now() - t3 },
        };
      } catch (e) {
        // A handler's exception leaves its instance as good as before; a timeout, OOM or crash does not.
        reusable =
          e instanceof SandboxError && (e.kind === 'exception' || e.kind === 'bad-result' || e.kind === 'bad-request');
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
      lambda = this.options.registry.lookup(name, (loaded) => {
        // Said once per version, and kept for /status: a trigger this worker does not run must not pass unnoticed.
        this.unsupported.delete(loaded.name);
        if (loaded.unsupported.length === 0) return;
        this.unsupported.set(loaded.name, loaded.unsupported);
        this.options.log?.(
          `${loaded.name}: loaded; not done by this worker: ${loaded.unsupported.join('; ')} (its HTTP trigger is served)`,
        );
      });
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

  private failure(e: unknown): { status: number; body: Record<string, unknown>; headers?: Record<string, string> } {
    if (e instanceof HttpError)
      return { status: e.status, body: { error: `${e.kind}: ${e.message}`, kind: e.kind }, headers: e.headers };
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
        unsupported: Object.fromEntries(this.unsupported),
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

  /**
   * The handler's answer as it gave it: status, reason, headers (several of one name kept),
   * bytes. A header Node would refuse to write (a bad name, a newline in a value) is the
   * handler breaking the protocol, answered 502 before anything is written (and false returned).
   */
  private answer(res: http.ServerResponse, response: HttpResponse, ours: Record<string, string>): boolean {
    const headers = response.headers.filter(([name]) => !WORKER_HEADERS.has(name.toLowerCase()));
    try {
      for (const [name, value] of headers) {
        http.validateHeaderName(name);
        http.validateHeaderValue(name, value);
      }
    } catch (e) {
      this.counts.failed.protocol = (this.counts.failed.protocol ?? 0) + 1;
      this.reply(res, 502, {
        error: `protocol: the handler answered with a header HTTP cannot carry: ${(e as Error).message}`,
        kind: 'protocol',
      });
      return false;
    }
    res.statusCode = response.status;
    if (response.reason) res.statusMessage = response.reason;
    for (const [name, value] of headers) res.appendHeader(name, value);
    for (const [name, value] of Object.entries(ours)) res.setHeader(name, value);
    res.setHeader('content-length', response.body.length);
    res.end(response.body);
    return true;
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

/** Node's rawHeaders as [name, value] pairs, in the order and case they came. */
function headerPairs(raw: string[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  return pairs;
}

/** The request body, whole; past MAX_BODY_BYTES a 413. */
function readBody(req: http.IncomingMessage): Promise<Buffer> {
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
      if (size <= MAX_BODY_BYTES) resolve(Buffer.concat(chunks));
    });
  });
}
