// Outbound network for a lambda that asks for it (sock.json {"network": "outbound"}): the
// sandbox's own network namespace gets a tap device whose other end is slirp4netns, a user-mode
// TCP/IP stack that opens the sandbox's connections as ordinary sockets of the host. It is told
// never to reach the host's loopback (--disable-host-loopback), which is where the worker and
// the host's local services listen; it runs in a mount namespace of its own with its
// capabilities dropped (--enable-sandbox) and under its own seccomp filter (--enable-seccomp),
// since it parses the sandbox's packets. Chosen over a veth pair and NAT rules: nothing to
// configure or undo in the host's network namespace, and it ends on its own when the worker
// dies (its exit descriptor closes).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { SandboxError } from '../errors.js';

const SLIRP = '/usr/bin/slirp4netns';
const READY_TIMEOUT_MS = 5000;

export class Outbound {
  private constructor(private readonly proc: ChildProcess) {}

  /** Connects the network namespace that netnsFd (ours) refers to, once slirp4netns says it is configured. */
  static async start(netnsFd: number): Promise<Outbound> {
    if (!fs.existsSync(SLIRP))
      throw new SandboxError(
        'sandbox',
        `outbound network needs ${SLIRP} (Debian package slirp4netns; scripts/setup.sh installs it)`,
      );
    // fd 3: it writes "1" once the tap is up; fd 4: it exits when this end closes (or we die).
    const proc = spawn(
      SLIRP,
      [
        '--configure',
        '--mtu=65520',
        '--disable-host-loopback',
        '--enable-sandbox',
        '--enable-seccomp',
        '--ready-fd=3',
        '--exit-fd=4',
        '--netns-type=path',
        `/proc/${process.pid}/fd/${netnsFd}`,
        'tap0',
      ],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] },
    );
    const outbound = new Outbound(proc);
    let stderr = '';
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`not configured within ${READY_TIMEOUT_MS} ms`)),
          READY_TIMEOUT_MS,
        );
        (proc.stdio[3] as NodeJS.ReadableStream).once('data', () => {
          clearTimeout(timer);
          resolve();
        });
        proc.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`exited with status ${code}`));
        });
        proc.once('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
    } catch (e) {
      outbound.stop();
      throw new SandboxError(
        'sandbox',
        `slirp4netns ${(e as Error).message}: ${stderr.trim().split('\n').pop() ?? ''}`,
      );
    }
    return outbound;
  }

  /** Ends slirp4netns (the sandbox's connections beyond it with it). */
  stop(): void {
    (this.proc.stdio[4] as NodeJS.WritableStream | null)?.end();
    this.proc.kill('SIGKILL');
  }
}
