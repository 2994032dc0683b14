// The container one job of npm run check:workflow runs in, standing in for the job's
// debian:bookworm container on a GitHub runner: made from the engine's debootstrap base (Docker
// imports it; no registry is reachable), started as the runner starts a job container
// (`tail -f /dev/null`, the workspace at /__w, the tool cache at /__t), each step a `docker exec`.
//
// Through Docker's API (dockerode), not the docker CLI: Ctrl-C in a terminal reaches every
// process of the foreground group, so `docker exec` children would die before the check could
// stop their steps and remove their containers in order; API calls are the check's own.
import fs from 'node:fs';
import { PassThrough } from 'node:stream';
import readline from 'node:readline';
import Docker from 'dockerode';
import { ensureImage } from '../../engine/sandbox/dockerEngine.js';
import { DOCKER_SOCKET, pingDocker } from '../../engine/sandbox/dockerPing.js';
import { isAlive, selfIdentity } from '../../engine/state/processIdentity.js';
import { PrivilegeError } from '../../harness/errors.js';

/** Every container of the check carries this label, valued with its owner's "<pid>-<start time>". */
export const OWNER_LABEL = 'sockbench.check-workflow';

// What the official debian:bookworm image has and a debootstrap root lacks: its apt sources
// (updates and security beside bookworm) and the dpkg and apt settings its builder adds, of which
// these two change what the jobs do: dpkg without an fsync per file, and no translation indexes.
const DEBIAN_IMAGE_SETTINGS = `set -e
rm -f /etc/apt/sources.list
cat > /etc/apt/sources.list.d/debian.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
echo force-unsafe-io > /etc/dpkg/dpkg.cfg.d/docker-apt-speedup
echo 'Acquire::Languages "none";' > /etc/apt/apt.conf.d/docker-no-languages
`;

export interface Mount {
  host: string;
  container: string;
  readonly?: boolean;
}

/** Docker answering and the base imported as an image (exit 3 otherwise); the image's name. */
export async function prepareImage(base: string, say: (line: string) => void): Promise<string> {
  const ping = await pingDocker(DOCKER_SOCKET);
  if (!ping.ok)
    throw new PrivilegeError(`no Docker daemon answers (${ping.why}); scripts/setup.sh installs Docker and starts it`);
  return ensureImage(base, say);
}

/** Removes the containers of checks that are gone (killed outright); returns how many. */
export async function reclaimContainers(): Promise<number> {
  const docker = new Docker({ socketPath: DOCKER_SOCKET });
  const found = await docker.listContainers({ all: true, filters: { label: [OWNER_LABEL] } });
  const orphans = found.filter((c) => !isAlive(c.Labels[OWNER_LABEL] ?? ''));
  await Promise.all(orphans.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  return orphans.length;
}

export class JobContainer {
  private removed = false;

  private constructor(
    private readonly docker: Docker,
    private readonly container: Docker.Container,
  ) {}

  /**
   * Creates and starts the job's container. privileged stands in for `--privileged`, which this
   * host refuses (no CAP_SYS_RESOURCE): every other capability, no seccomp or AppArmor profile,
   * /proc and /sys unmasked, and this host's /dev/kvm when it has one.
   */
  static async start(image: string, mounts: Mount[], workdir: string, privileged: boolean): Promise<JobContainer> {
    const docker = new Docker({ socketPath: DOCKER_SOCKET });
    const container = await docker.createContainer({
      Image: image,
      Entrypoint: ['tail'],
      Cmd: ['-f', '/dev/null'],
      WorkingDir: workdir,
      Labels: { [OWNER_LABEL]: selfIdentity() },
      HostConfig: {
        Binds: mounts.map((m) => `${m.host}:${m.container}${m.readonly ? ':ro' : ''}`),
        ...(privileged
          ? {
              CapAdd: ['ALL'],
              CapDrop: ['SYS_RESOURCE'],
              SecurityOpt: ['seccomp=unconfined', 'apparmor=unconfined'],
              MaskedPaths: [],
              ReadonlyPaths: [],
              Devices: fs.existsSync('/dev/kvm')
                ? [{ PathOnHost: '/dev/kvm', PathInContainer: '/dev/kvm', CgroupPermissions: 'rwm' }]
                : [],
            }
          : {}),
      },
    });
    const job = new JobContainer(docker, container);
    try {
      await container.start();
      const rc = await job.exec(['sh', '-c', DEBIAN_IMAGE_SETTINGS], [], '/', () => {});
      if (rc !== 0) throw new Error(`giving the container debian:bookworm's apt settings failed (exit ${rc})`);
    } catch (e) {
      await job.remove();
      throw e;
    }
    return job;
  }

  /** Runs cmd to its end, each line of its output to onLine; its exit status (null: the container went away). */
  async exec(cmd: string[], env: string[], workdir: string, onLine: (line: string) => void): Promise<number | null> {
    const exec = await this.container.exec({
      Cmd: cmd,
      Env: env,
      WorkingDir: workdir,
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({ hijack: true, stdin: false });
    const out = new PassThrough();
    const err = new PassThrough();
    this.docker.modem.demuxStream(stream, out, err);
    const read = [out, err].map(
      (s) =>
        new Promise<void>((resolve) =>
          readline.createInterface({ input: s, crlfDelay: Infinity }).on('line', onLine).on('close', resolve),
        ),
    );
    await new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    out.end();
    err.end();
    await Promise.all(read);
    if (this.removed) return null;
    try {
      return (await exec.inspect()).ExitCode ?? null;
    } catch {
      return null;
    }
  }

  /** Stops whatever runs in it and removes it (also what ends a running exec). */
  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    await this.container.remove({ force: true }).catch((e: { statusCode?: number }) => {
      if (e.statusCode !== 404) throw e;
    });
  }
}
