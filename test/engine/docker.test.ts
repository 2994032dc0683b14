// The daemon check asks the socket itself: a real HTTP answer on /_ping is "running", and no
// socket, or nothing behind it, says which.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pingDocker } from '../../engine/sandbox/dockerPing.js';

const made: string[] = [];
const tmp = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-docker-'));
  made.push(dir);
  return dir;
};

test('a daemon answering /_ping is running, with its API version', async () => {
  const socket = path.join(tmp(), 'docker.sock');
  const server = http.createServer((req, res) => {
    res.writeHead(req.url === '/_ping' ? 200 : 404, { 'Api-Version': '1.41' }).end('OK');
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  try {
    assert.equal(await pingDocker(socket), { ok: true, apiVersion: '1.41' });
  } finally {
    server.close();
  }
});

test('no socket, and a socket nobody answers on, are told apart', async () => {
  const dir = tmp();
  const missing = await pingDocker(path.join(dir, 'none.sock'));
  assert.equal(missing, { ok: false, why: `no socket at ${path.join(dir, 'none.sock')}` });
  // A listener that accepts and never replies: a hung daemon.
  const socket = path.join(dir, 'silent.sock');
  const server = net.createServer(() => {});
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  try {
    const r = await pingDocker(socket, 200);
    assert.equal(r, { ok: false, why: 'no answer within 0.2 s' });
  } finally {
    server.close();
  }
});

test.after(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

test.run();
