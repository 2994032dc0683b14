// The peers a user would run instead of SOCK, each started the way its own documentation starts
// a one-off process, on the same Debian base: a bare `chroot` (the reference every ratio is to),
// bubblewrap, runc and crun (one OCI bundle over the base, `runc spec`'s defaults), gVisor's
// runsc, and the Docker CLI. Each start is one execve of the peer's command from the addon's
// native spawn, the same for every peer, so the launcher costs them all alike; its output goes to
// a log in the run's own directory, read back only when a start fails.
//
// Every runtime keeps its state under the run's directory (--root) and every container is named
// after it, so what a crashed run left is found and removed by the next (removeLeftovers).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureImage, removeContainers, STATE_LABEL } from '../../engine/sandbox/dockerEngine.js';
import { pingDocker } from '../../engine/sandbox/dockerPing.js';
import { spawn, watchExit } from '../../native/index.js';

const run = promisify(execFile);

export const COMMAND_PEERS = ['bare', 'bwrap', 'runc', 'crun', 'runsc', 'docker-netnone', 'docker'] as const;
export type CommandPeerName = (typeof COMMAND_PEERS)[number];

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const OCI_RUNTIMES = ['runc', 'crun', 'runsc'] as const;

/** How each peer is invoked, in words, for the isolation table and the docs. */
export const INVOCATION: Record<CommandPeerName, string> = {
  bare: 'chroot <base> python3',
  bwrap: 'bwrap --unshare-all --die-with-parent, the base read-only, its own /proc, /dev and /tmp',
  runc: 'runc run, a bundle from `runc spec` over the base (read-only)',
  crun: 'crun run, the same bundle',
  runsc: 'runsc --network=none run, the same bundle',
  'docker-netnone': 'docker run --rm --network none',
  docker: 'docker run --rm (the default bridge network)',
};

/** The program each peer runs. */
const PROGRAM: Record<CommandPeerName, string> = {
  bare: 'chroot',
  bwrap: 'bwrap',
  runc: 'runc',
  crun: 'crun',
  runsc: 'runsc',
  'docker-netnone': 'docker',
  docker: 'docker',
};

function which(command: string): string | undefined {
  for (const dir of PATH.split(':')) {
    const file = path.join(dir, command);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** One peer, ready to start `python3 -c <code>` in its sandbox as many times as asked. */
export class CommandPeer {
  private starts = 0;

  private constructor(
    readonly name: CommandPeerName,
    private readonly dir: string,
    private readonly argvOf: (id: string, code: string) => string[],
  ) {}

  /**
   * The peer, set up in dir (its bundle, state and log), or why it cannot run on this host: its
   * program is missing, or it refused the probe run (crun on a cgroup v1/v2 hybrid, for one).
   */
  static async prepare(
    name: CommandPeerName,
    o: { dir: string; base: string; say: (line: string) => void },
  ): Promise<CommandPeer | { skipped: string }> {
    const binary = which(PROGRAM[name]);
    if (!binary) return { skipped: `${PROGRAM[name]} is not installed (scripts/setup.sh installs it)` };
    const dir = path.join(o.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    const python = ['/usr/bin/python3', '-c'];
    switch (name) {
      case 'bare':
        return new CommandPeer(name, dir, (_id, code) => [binary, o.base, ...python, code]);
      case 'bwrap':
        return new CommandPeer(name, dir, (_id, code) => [
          binary,
          '--unshare-all',
          '--die-with-parent',
          '--ro-bind',
          o.base,
          '/',
          '--proc',
          '/proc',
          '--dev',
          '/dev',
          '--tmpfs',
          '/tmp',
          '--clearenv',
          '--setenv',
          'PATH',
          '/usr/bin:/bin',
          ...python,
          code,
        ]);
      case 'runc':
      case 'crun':
      case 'runsc': {
        const bundle = await ociBundle(o.dir, o.base);
        const root = path.join(dir, 'state');
        fs.mkdirSync(root, { recursive: true });
        const global = name === 'runsc' ? ['--root', root, '--network=none'] : ['--root', root];
        // The bundle's process is `python3 -c <code>`: each code gets a bundle of its own.
        const bundles = new Map<string, string>([['', bundle]]);
        const bundleFor = (code: string) => {
          let b = bundles.get(code);
          if (!b) {
            b = path.join(dir, `bundle-${bundles.size}`);
            fs.mkdirSync(b);
            const config = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
            config.process.args = [...python, code];
            fs.writeFileSync(path.join(b, 'config.json'), JSON.stringify(config));
            bundles.set(code, b);
          }
          return b;
        };
        return new CommandPeer(name, dir, (id, code) => [binary, ...global, 'run', '--bundle', bundleFor(code), id]);
      }
      case 'docker-netnone':
      case 'docker': {
        const ping = await pingDocker();
        if (!ping.ok) return { skipped: `no Docker daemon answers (${ping.why}); scripts/setup.sh starts one` };
        const image = await ensureImage(o.base, o.say);
        const network = name === 'docker' ? [] : ['--network', 'none'];
        return new CommandPeer(name, dir, (id, code) => [
          binary,
          'run',
          '--rm',
          ...network,
          '--name',
          id,
          '--label',
          `${STATE_LABEL}=${o.dir}`,
          image,
          ...python,
          code,
        ]);
      }
    }
  }

  /** One start of `python3 -c code`, waited for; milliseconds from the spawn to the exit. */
  async start(code = 'pass'): Promise<number> {
    const id = `${path.basename(path.dirname(this.dir))}-${this.name}-${++this.starts}`;
    const log = path.join(this.dir, 'log');
    const t0 = performance.now();
    const pid = spawn({
      steps: [
        { op: 'redirect', path: log },
        { op: 'exec', argv: this.argvOf(id, code), env: [`PATH=${PATH}`] },
      ],
    });
    const status = await watchExit(pid);
    const ms = performance.now() - t0;
    if (status.exitCode !== 0) {
      const tail = fs.readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' / ');
      throw new Error(
        `${this.name}: python3 exited ${status.exitCode ?? `on signal ${status.signal}`}${tail ? `: ${tail}` : ''}`,
      );
    }
    return ms;
  }

  /** What python3 -c code printed in the sandbox (its one run's stdout). */
  async output(code: string): Promise<string> {
    const argv = this.argvOf(`${path.basename(path.dirname(this.dir))}-${this.name}-probe`, code);
    const { stdout } = await run(argv[0]!, argv.slice(1), { env: { PATH }, timeout: 120_000 });
    return stdout;
  }
}

/** `runc spec`'s default bundle, its root the base read-only and no terminal. */
async function ociBundle(dir: string, base: string): Promise<string> {
  const bundle = path.join(dir, 'bundle');
  if (fs.existsSync(path.join(bundle, 'config.json'))) return bundle;
  fs.mkdirSync(bundle, { recursive: true });
  const spec = which('runc') ?? which('crun');
  if (!spec) throw new Error('no runc or crun to write an OCI spec with');
  await run(spec, ['spec', '--bundle', bundle]);
  const config = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  config.root = { path: base, readonly: true };
  config.process.terminal = false;
  config.process.args = ['/usr/bin/python3', '-c', 'pass'];
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(config));
  return bundle;
}

/**
 * Removes the containers a run in dir started and left (killed mid-start): the OCI runtimes'
 * under its --root, Docker's by label. Returns how many.
 */
export async function removeLeftovers(dir: string): Promise<number> {
  let removed = 0;
  for (const runtime of OCI_RUNTIMES) {
    const root = path.join(dir, runtime, 'state');
    const binary = which(runtime);
    if (!binary || !fs.existsSync(root)) continue;
    const ids = fs.readdirSync(root).filter((id) => fs.statSync(path.join(root, id)).isDirectory());
    for (const id of ids) {
      await run(binary, ['--root', root, 'delete', '--force', id]).catch(() => {});
      removed++;
    }
  }
  return removed + (await removeContainers(dir));
}
