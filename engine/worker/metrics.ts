// GET /metrics: what the worker holds and has done, in Prometheus' text format, for the
// dashboards a platform engineer already has. Two sources: the requests, counted and timed
// here as they end (latency by how the sandbox came to be: warm, zygote, lean, docker, or none
// when the request failed before one was got), and the worker's /status, read at each scrape
// (sandboxes, queue, caches, zygote memory), so that the two endpoints can never disagree.
// prom-client writes the format (escaping, histogram buckets and sums), on a registry of the
// worker's own rather than the process-wide default, so that two workers in one process (the
// tests) keep apart.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Seconds: a warm hit is about a millisecond here, a lean start tens, a Docker start about one second. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30];

/** The /status fields read at a scrape; absent ones (a cache that is off) are not exported. */
export interface StatusForMetrics {
  worker: { queue: { running: number; waiting: number; capacity: number } };
  sandboxes: { alive: number; created: number; destroyed: number; memoryBytes: number };
  memory: { workerRssBytes: number };
  caches: {
    handler: 'off' | { idle: number; idleBytes: number; hits: number; misses: number; evicted: number };
    install: 'off' | { packages: number; installs: number; failures: number; bytes: number };
    import:
      | 'off'
      | {
          forked: number;
          lean: number;
          zygotes: { packages: string; pssBytes?: number; alive: boolean }[];
        };
  };
}

/** A gauge's values read from a status: [value] or [value, labels] each. */
type Reading = (s: StatusForMetrics) => [number, Record<string, string>?][];

/** A cache's status, or undefined when it is off. */
function cacheOf<T>(cache: 'off' | T): T | undefined {
  return cache === 'off' ? undefined : cache;
}

/** The gauges of one value each: name, help, and where /status has it (undefined: not exported, its cache is off). */
const FROM_STATUS: [string, string, (s: StatusForMetrics) => number | undefined][] = [
  ['sock_sandboxes', 'Sandboxes alive now', (s) => s.sandboxes.alive],
  ['sock_sandboxes_created', 'Sandboxes made since the worker started', (s) => s.sandboxes.created],
  ['sock_sandboxes_destroyed', 'Sandboxes destroyed since the worker started', (s) => s.sandboxes.destroyed],
  ['sock_sandbox_memory_bytes', 'Memory charged to live sandboxes', (s) => s.sandboxes.memoryBytes],
  ['sock_worker_rss_bytes', "The worker process's resident memory", (s) => s.memory.workerRssBytes],
  ['sock_queue_running', 'Requests holding a sandbox slot', (s) => s.worker.queue.running],
  ['sock_queue_waiting', 'Requests waiting for a sandbox slot', (s) => s.worker.queue.waiting],
  ['sock_queue_capacity', 'Sandbox slots', (s) => s.worker.queue.capacity],
  ['sock_handler_cache_hits', 'Requests served by a kept instance', (s) => cacheOf(s.caches.handler)?.hits],
  ['sock_handler_cache_misses', 'Requests that found no kept instance', (s) => cacheOf(s.caches.handler)?.misses],
  ['sock_handler_cache_evicted', 'Kept instances evicted', (s) => cacheOf(s.caches.handler)?.evicted],
  ['sock_handler_cache_idle', 'Instances kept now', (s) => cacheOf(s.caches.handler)?.idle],
  ['sock_handler_cache_idle_bytes', 'Memory of the instances kept now', (s) => cacheOf(s.caches.handler)?.idleBytes],
  ['sock_install_cache_packages', 'Packages installed and kept', (s) => cacheOf(s.caches.install)?.packages],
  ['sock_install_cache_installs', 'Installs made since the worker started', (s) => cacheOf(s.caches.install)?.installs],
  ['sock_install_cache_failures', 'Installs that failed', (s) => cacheOf(s.caches.install)?.failures],
  ['sock_install_cache_bytes', 'Disk taken by installed packages', (s) => cacheOf(s.caches.install)?.bytes],
  ['sock_import_cache_forked', 'Sandboxes forked from a zygote', (s) => cacheOf(s.caches.import)?.forked],
  ['sock_import_cache_lean', 'Sandboxes the import cache started lean', (s) => cacheOf(s.caches.import)?.lean],
];

export class WorkerMetrics {
  private readonly registry = new Registry();
  private snapshot: StatusForMetrics | undefined;
  private readonly requests = new Counter({
    name: 'sock_requests_total',
    help: 'Requests to /run and /runLambda, by HTTP status and how the sandbox came to be',
    labelNames: ['code', 'start'],
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'sock_request_duration_seconds',
    help: 'Time from the request to the end of its answer in the worker, by how the sandbox came to be',
    labelNames: ['start'],
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly contentType = this.registry.contentType;

  constructor() {
    const snapshot = () => this.snapshot;
    const gauge = (name: string, help: string, read: Reading, labelNames: string[] = []) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          this.reset();
          const status = snapshot();
          for (const [value, labels] of status ? read(status) : []) {
            if (labels) this.set(labels, value);
            else this.set(value);
          }
        },
      });
    for (const [name, help, read] of FROM_STATUS)
      gauge(name, help, (s) => {
        const value = read(s);
        return value === undefined ? [] : [[value]];
      });
    gauge(
      'sock_zygote_memory_bytes',
      "Each live zygote's proportional set size (PSS), by its packages",
      (s) =>
        (cacheOf(s.caches.import)?.zygotes ?? [])
          .filter((z) => z.alive)
          .map((z) => [z.pssBytes ?? 0, { packages: z.packages }]),
      ['packages'],
    );
  }

  /** One request ended: its status and, if it got one, how its sandbox came to be ("zygote:numpy" counts as zygote). */
  observe(start: string, code: number, seconds: number): void {
    const kind = start.split(':')[0]!;
    this.requests.inc({ code: String(code), start: kind });
    this.latency.observe({ start: kind }, seconds);
  }

  /** The exposition text, with the gauges read from the status as it is now. */
  async text(status: () => unknown): Promise<string> {
    this.snapshot = status() as StatusForMetrics;
    try {
      return await this.registry.metrics();
    } finally {
      this.snapshot = undefined;
    }
  }
}
