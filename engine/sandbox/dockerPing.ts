// Whether a Docker daemon answers, asked over its socket: a `docker` client that is installed
// says nothing about a daemon, and `docker info` waits far longer than we want to on a dead one.
import http from 'node:http';

export const DOCKER_SOCKET = '/var/run/docker.sock';

export type DockerPing = { ok: true; apiVersion: string | null } | { ok: false; why: string };

export function pingDocker(socketPath = DOCKER_SOCKET, timeoutMs = 2000): Promise<DockerPing> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      const apiVersion = res.headers['api-version'];
      resolve(
        res.statusCode === 200
          ? { ok: true, apiVersion: typeof apiVersion === 'string' ? apiVersion : null }
          : { ok: false, why: `/_ping answered HTTP ${res.statusCode}` },
      );
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'ENOENT'
          ? `no socket at ${socketPath}`
          : e.code === 'ECONNREFUSED'
            ? `nothing listening on ${socketPath}`
            : e.message;
      resolve({ ok: false, why });
    });
  });
}
