// The Docker baseline behind the same sandbox interface: a container per sandbox, made by a
// real Docker engine through its API (dockerode), from an image imported from the same base
// root file system, running the same runtime with the same handler, scratch and Unix socket
// bind-mounted in. What differs is only how the sandbox is made: Docker's own network (bridge,
// or none), mount namespace, overlay root and cgroups.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { finished } from 'node:stream/promises';
import path from 'node:path';
import Docker from 'dockerode';
import { requireBase } from './baseRootfs.js';
import { DEFAULT_LIMITS, type Limits } from '../cgroups/cgroupHierarchy.js';
import { Channel, DEFAULT_MAX_REPLY_BYTES, lineBytesFor } from './channel.js';
import { DOCKER_SOCKET, pingDocker } from './dockerPing.js';
import { EngineSetupError, SandboxError } from '../errors.js';
import {
  deathErrorOf,
  requireReadable,
  compileRuntime,
  RUNTIME_DIR,
  runtimeCommand,
  RuntimeSandbox,
  SANDBOX_USER,
} from './runtimeSandbox.js';
import type { BackendStatus, Sandbox, SandboxBackend, SandboxSpec } from './sandbox.js';
import { SandboxLedger } from './sandboxLedger.js';
import { StateDir } from '../state/stateDir.js';
import { linkLibraries, makeScratch, unstitch } from '../isolation/stitch.js';

/** Every container carries this label, valued with the state directory that owns it. */
export const STATE_LABEL = 'sockbench.state-dir';
const API_TIMEOUT_MS = 60_000;

export type DockerNetwork = 'bridge' | 'none';

export interface DockerEngineOptions {
  stateDir: string;
  base?: string;
  capacity: number;
  limits?: Limits;
  /** bridge: what a Docker user gets by default; none: no network namespace setup beyond loopback. */
  network?: DockerNetwork;
  startTimeoutMs?: number;
  /** The longest line a sandbox may send; past it, it is destroyed. */
  maxReplyBytes?: number;
  socketPath?: string;
  log?: (line: string) => void;
}

/** The image made from a base: named by the base's marker, so a rebuilt base gets a new image. */
function imageFor(base: string): string {
  const marker = fs.readFileSync(path.join(base, '.sockbench-base.json'));
  return `sockbench/base:${crypto.createHash('sha256').update(marker).digest('hex').slice(0, 12)}`;
}

function connect(socketPath: string): Docker {
  return new Docker({ socketPath, timeout: API_TIMEOUT_MS });
}

async function requireDaemon(socketPath: string): Promise<void> {
  const ping = await pingDocker(socketPath);
  if (!ping.ok)
    throw new EngineSetupError(
      `no Docker daemon answers (${ping.why}); scripts/setup.sh installs Docker and starts dockerd`,
      3,
    );
}

/**
 * `docker import` of the base, through the API, unless the image exists. `tar` only packs the
 * directory (once, at setup); nothing on a request's path shells out.
 */
export async function ensureImage(
  base: string,
  say: (line: string) => void,
  socketPath = DOCKER_SOCKET,
): Promise<string> {
  requireBase(base);
  await requireDaemon(socketPath);
  const docker = connect(socketPath);
  const image = imageFor(base);
  try {
    await docker.getImage(image).inspect();
    return image;
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode !== 404) throw e;
  }
  say(`docker: importing ${base} as ${image}`);
  const started = Date.now();
  const tar = spawn('tar', ['-C', base, '--numeric-owner', '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tarError = '';
  tar.stderr!.on('data', (d: Buffer) => (tarError += d.toString()));
  const [repo, tag] = image.split(':');
  const tarClosed = new Promise<number | null>((resolve) => tar.on('close', resolve));
  const progress = await docker.importImage(tar.stdout!, { repo, tag });
  progress.resume();
  await finished(progress);
  const code = await tarClosed;
  if (code !== 0)
    throw new EngineSetupError(`packing ${base} for docker import failed: ${tarError.trim() || `tar exit ${code}`}`);
  await docker.getImage(image).inspect();
  say(`docker: ${image} ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return image;
}

/** Removes every container labelled with this state directory; returns how many. */
export async function removeContainers(stateDir: string, socketPath = DOCKER_SOCKET): Promise<number> {
  if (!(await pingDocker(socketPath)).ok) return 0;
  const docker = connect(socketPath);
  const found = await docker.listContainers({
    all: true,
    filters: { label: [`${STATE_LABEL}=${path.resolve(stateDir)}`] },
  });
  await Promise.all(
    found.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => {}),
    ),
  );
  return found.length;
}

export class DockerEngine implements SandboxBackend {
  readonly name: string;
  readonly sandboxes = new SandboxLedger<DockerSandbox>();

  private constructor(
    readonly docker: Docker,
    readonly state: StateDir,
    readonly image: string,
    readonly capacity: number,
    readonly limits: Limits,
    readonly network: DockerNetwork,
    private readonly startTimeoutMs: number,
    readonly maxReplyBytes: number,
    /** Where a sandbox destroyed for what it did while idle says why. */
    readonly log: (line: string) => void,
  ) {
    this.name = network === 'none' ? 'docker-netnone' : 'docker';
  }

  static async start(options: DockerEngineOptions): Promise<DockerEngine> {
    const log = options.log ?? (() => {});
    if (process.getuid?.() !== 0)
      throw new EngineSetupError("the Docker backend must run as root (it mounts each sandbox's scratch)", 3);
    const socketPath = options.socketPath ?? DOCKER_SOCKET;
    const state = new StateDir(options.stateDir);
    const base = path.resolve(options.base ?? state.defaultBase);
    const image = await ensureImage(base, log, socketPath);
    state.claim();
    try {
      const removed = await removeContainers(state.root, socketPath);
      const left = state.reclaim();
      if (removed > 0) left.unshift(`${removed} containers labelled ${STATE_LABEL}=${state.root}`);
      if (left.length > 0) log(`removed what a previous engine left: ${left.join('; ')}`);
      if (!compileRuntime(base))
        log(
          "the runtime is not byte-compiled (this machine's python3 is not the base's, or engine/runtime is not writable): each lean start compiles it",
        );
      return new DockerEngine(
        connect(socketPath),
        state,
        image,
        options.capacity,
        options.limits ?? DEFAULT_LIMITS,
        options.network ?? 'bridge',
        options.startTimeoutMs ?? 60_000,
        options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
        log,
      );
    } catch (e) {
      state.release();
      throw e;
    }
  }

  async create(spec: SandboxSpec): Promise<Sandbox> {
    requireReadable(spec);
    const id = this.sandboxes.nextId('dk');
    const t0 = performance.now();
    const dir = path.join(this.state.sandboxes, id);
    let scratch: string;
    try {
      scratch = makeScratch(dir, { ...SANDBOX_USER, scratchBytes: this.limits.memoryBytes });
    } catch (e) {
      this.sandboxes.failed();
      await unstitch(dir);
      throw new SandboxError('sandbox', `making the scratch of ${id} failed: ${(e as Error).message}`);
    }
    const abort = new AbortController();
    const { listening, accepted } = Channel.listen(
      path.join(scratch, 'worker.sock'),
      abort.signal,
      lineBytesFor(this.maxReplyBytes),
    );
    const sandbox = new DockerSandbox(id, dir, scratch, this);
    this.sandboxes.add(sandbox);
    const t1 = performance.now();
    try {
      await listening;
      await sandbox.run(spec);
    } catch (e) {
      abort.abort();
      await sandbox.destroy().catch(() => {});
      throw e instanceof SandboxError
        ? e
        : new SandboxError('sandbox', `starting ${id} failed: ${(e as Error).message}`);
    }
    await sandbox.becomeReady(accepted, abort, this.startTimeoutMs, t0, t1, performance.now());
    return sandbox;
  }

  status(): BackendStatus {
    return {
      backend: this.name,
      ...this.sandboxes.counts(),
      memoryBytes: [...this.sandboxes.alive].reduce((sum, s) => sum + s.memoryBytes(), 0),
      image: this.image,
      network: this.network,
      limits: this.limits,
      maxReplyBytes: this.maxReplyBytes,
      stateDir: this.state.root,
    };
  }

  async shutdown(): Promise<void> {
    await this.sandboxes.close();
    await removeContainers(this.state.root);
    this.state.release();
  }
}

class DockerSandbox extends RuntimeSandbox {
  private container: Docker.Container | undefined;
  private exitCode: number | undefined;
  private waited: Promise<unknown> = new Promise(() => {});

  constructor(
    id: string,
    private readonly dir: string,
    protected readonly scratch: string,
    private readonly engine: DockerEngine,
  ) {
    super(id, engine.log, engine.maxReplyBytes);
    this.origin = 'docker';
  }

  protected get exited(): Promise<unknown> {
    return this.waited;
  }

  protected hasExited(): boolean {
    return this.exitCode !== undefined;
  }

  /** Creates and starts the container; its exit is watched from then on. */
  async run(spec: SandboxSpec): Promise<void> {
    const e = this.engine;
    const runtime = runtimeCommand(spec);
    // The packages' shared libraries, linked from one directory as in a stitched root.
    const libraries = path.join(this.dir, 'lib');
    linkLibraries(libraries, spec.packages);
    this.container = await e.docker.createContainer({
      Image: e.image,
      Cmd: runtime.argv,
      Env: runtime.env,
      User: `${SANDBOX_USER.uid}:${SANDBOX_USER.gid}`,
      WorkingDir: '/',
      Hostname: this.id,
      Labels: { [STATE_LABEL]: e.state.root, 'sockbench.sandbox': this.id },
      HostConfig: {
        Binds: [
          `${this.scratch}:/host`,
          `${path.join(this.scratch, 'tmp')}:/tmp`,
          `${spec.code}:/handler:ro`,
          `${RUNTIME_DIR}:/sock:ro`,
          ...Object.entries(spec.packages).map(([name, dir]) => `${dir}:/packages/${name}:ro`),
          `${libraries}:/packages/.lib:ro`,
        ],
        NetworkMode: e.network,
        Memory: e.limits.memoryBytes,
        MemorySwap: e.limits.memoryBytes,
        PidsLimit: e.limits.pids,
        CpuShares: e.limits.cpuShares,
        // The SOCK sandbox's guarantees, so that the two backends pass the same behavioural tests.
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
      },
    });
    // Asked before start: the default condition, not-running, is already true of a created container.
    this.waited = this.container.wait({ condition: 'next-exit' }).then(
      (r: { StatusCode: number }) => (this.exitCode = r.StatusCode),
      () => (this.exitCode = -1),
    );
    await this.container.start();
  }

  async pause(): Promise<void> {
    await this.container!.pause();
  }

  async unpause(): Promise<void> {
    await this.container!.unpause();
  }

  memoryBytes(): number {
    // cgroupfs driver on v1: memory/docker/<id>; elsewhere not worth an API round trip per status.
    try {
      return Number(
        fs.readFileSync(`/sys/fs/cgroup/memory/docker/${this.container!.id}/memory.usage_in_bytes`, 'utf8'),
      );
    } catch {
      return 0;
    }
  }

  protected async teardown(): Promise<void> {
    const errors: string[] = [];
    if (this.container) {
      try {
        await this.container.remove({ force: true });
      } catch (e) {
        // A paused container cannot be killed on cgroup v1 until it is thawed.
        try {
          await this.container.unpause();
          await this.container.remove({ force: true });
        } catch {
          if ((e as { statusCode?: number }).statusCode !== 404) errors.push(`its container: ${(e as Error).message}`);
        }
      }
    }
    try {
      await unstitch(this.dir);
    } catch (e) {
      errors.push(`its scratch: ${(e as Error).message}`);
    }
    this.engine.sandboxes.forget(this);
    if (errors.length > 0) throw new SandboxError('sandbox', `destroying ${this.id} left ${errors.join('; ')}`);
  }

  protected async deathError(when: string): Promise<SandboxError> {
    let oom = false;
    try {
      oom = (await this.container!.inspect()).State.OOMKilled;
    } catch {
      /* removed meanwhile */
    }
    const code = this.exitCode;
    const how =
      code === undefined || code < 0
        ? 'ended'
        : code > 128
          ? `was killed by signal ${code - 128}`
          : `exited with status ${code}`;
    return deathErrorOf(when, { oom, how, memoryBytes: this.engine.limits.memoryBytes, scratch: this.scratch });
  }
}
