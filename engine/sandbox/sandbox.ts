// The one sandbox interface the worker and the harness drive. SOCK's lean containers
// (sockEngine.ts) implement it; the Docker baseline implements the same, so the two differ only
// in how a sandbox is made. Caches wrap a backend; they are not part of it.

export interface SandboxSpec {
  /** Directory holding the handler's f.py (mounted read-only). */
  code: string;
  /** package name -> directory of the installed package (each mounted read-only). */
  packages: Record<string, string>;
  /**
   * loopback (the default): a network namespace with loopback only. outbound: connections
   * beyond the sandbox too, never to the host's loopback (the SOCK backend: slirp4netns, on a
   * lean start). The Docker baseline's network is its own --network, for every lambda.
   */
  network?: 'loopback' | 'outbound';
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
