// The one sandbox interface the worker and the harness drive. SOCK's lean containers
// (sockEngine.ts) implement it; the Docker baseline implements the same, so the two differ only
// in how a sandbox is made. Caches wrap a backend; they are not part of it.

export interface SandboxSpec {
  /** Directory holding the handler's code (mounted read-only at /handler). */
  code: string;
  /** Which file and attribute the runtime serves, and the environment it sets first [f.py's f, else its app]. */
  entry?: HandlerEntry;
  /** package name -> directory of the installed package (each mounted read-only). */
  packages: Record<string, string>;
  /**
   * loopback (the default): a network namespace with loopback only. outbound: connections
   * beyond the sandbox too, never to the host's loopback (the SOCK backend: slirp4netns, on a
   * lean start). The Docker baseline's network is its own --network, for every lambda.
   */
  network?: 'loopback' | 'outbound';
}

/**
 * How the runtime finds a lambda's entry point (runtime/server.py, OpenLambda's rules): the
 * module in `file`, then the attribute `wsgi` or `asgi` names, else the function `func`, else
 * `app` (ASGI or WSGI by its __call__). `env` is set before the module is loaded.
 */
export interface HandlerEntry {
  /** The module's file, relative to the code directory [f.py]. */
  file?: string;
  /** The function called with the event [f]. */
  func?: string;
  wsgi?: string;
  asgi?: string;
  env?: Record<string, string>;
}

/** An HTTP request for a lambda, as the worker hands it on: below /run/<name>, body whole. */
export interface HttpRequest {
  method: string;
  /** Where the lambda is mounted: "/run/<name>" (WSGI's SCRIPT_NAME, ASGI's root_path). */
  root: string;
  /** Below root, from "/" (PATH_INFO). */
  path: string;
  /** Without the "?". */
  query: string;
  headers: [string, string][];
  body: Buffer;
}

/** What the handler answered: a WSGI/ASGI app's own status, headers and bytes; a function's json.dumps. */
export interface HttpResponse {
  status: number;
  reason: string;
  headers: [string, string][];
  body: Buffer;
}

/** Where the time to make a sandbox went, in milliseconds. */
export interface CreateTimings {
  /** mounts and directories of the root */
  stitchMs: number;
  /** from the start of the first process to its exec of the runtime */
  spawnMs: number;
  /** from then until the runtime had loaded the handler and said ready */
  readyMs: number;
  totalMs: number;
}

export interface Sandbox {
  readonly id: string;
  readonly timings: CreateTimings;
  /** How it was made, for logs and studies: "lean" (spawned), "zygote:<packages>" (forked), "docker". */
  readonly origin: string;
  /** False once it is being destroyed: by its owner, or by the engine when its runtime broke the reply protocol, even while idle. */
  readonly alive: boolean;
  /** Runs f(event) once; rejects with a SandboxError saying which kind of failure. */
  invoke(event: unknown, timeoutMs: number): Promise<unknown>;
  /** Answers one HTTP request (a function, WSGI or ASGI entry); rejects as invoke() does, and with `bad-request`. */
  serve(request: HttpRequest, timeoutMs: number): Promise<HttpResponse>;
  /** Freezes every process of the sandbox (cgroup freezer). */
  pause(): Promise<void>;
  unpause(): Promise<void>;
  /** Kills the processes, removes mounts and gives the cgroup back; safe to call twice. */
  destroy(): Promise<void>;
  memoryBytes(): number;
}

export interface BackendStatus {
  backend: string;
  /** sandboxes alive now, and made and destroyed since start */
  alive: number;
  created: number;
  destroyed: number;
  /** memory charged to live sandboxes */
  memoryBytes: number;
  [detail: string]: unknown;
}

export interface SandboxBackend {
  readonly name: string;
  /** How many sandboxes may be alive at once; create() beyond it is a caller's error. */
  readonly capacity: number;
  create(spec: SandboxSpec): Promise<Sandbox>;
  status(): BackendStatus;
  /** Destroys every sandbox and releases what the backend holds. */
  shutdown(): Promise<void>;
}
