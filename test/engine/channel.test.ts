// The reply channel alone, over a real Unix socket with the test as the sandbox's end: how a
// line is cut from the bytes however they are split, the bound on a line, and what breaks the
// channel. No root, no sandbox: the attacks through a real worker are in attacks-channel.test.ts.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Channel, ChannelError, type Message } from '../../engine/sandbox/channel.js';
import { rejection } from '../helpers/helpers.js';

const MAX = 1 << 20;

/** A channel whose other end (the "sandbox") is the returned socket; the hello is already through. */
async function connected(
  maxLineBytes = MAX,
): Promise<{ channel: Channel; peer: net.Socket; violations: [ChannelError, boolean][]; done: () => void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-channel-'));
  const { listening, accepted } = Channel.listen(path.join(dir, 's'), new AbortController().signal, maxLineBytes);
  await listening;
  const peer = net.connect(path.join(dir, 's'));
  const channel = await accepted;
  const violations: [ChannelError, boolean][] = [];
  channel.onViolation((e, unasked) => violations.push([e, unasked]));
  peer.write('{"ready": true}\n');
  assert.equal(await channel.hello(new AbortController().signal), { ready: true });
  return {
    channel,
    peer,
    violations,
    done: () => {
      peer.destroy();
      channel.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const byId = (id: string) => (r: Message) => (r.id === id ? undefined : "sent a reply with another request's id");

/** Writes each piece as its own write, waiting for the previous to leave (so that they arrive as separate chunks). */
async function writeApart(peer: net.Socket, pieces: (string | Buffer)[]): Promise<void> {
  for (const p of pieces) {
    await new Promise<void>((resolve) => peer.write(p, () => resolve()));
    await new Promise((r) => setTimeout(r, 2));
  }
}

const c = suite('channel');

c('a reply split anywhere, a multi-byte character across chunks included, is one message decoded right', async () => {
  const { channel, peer, done } = await connected();
  const reply = channel.request({ id: 'a' }, byId('a'));
  const bytes = Buffer.from('{"id": "a", "result": "\u00e9t\u00e9 \u2603"}\n');
  await writeApart(peer, [bytes.subarray(0, 3), bytes.subarray(3, 27), bytes.subarray(27, 28), bytes.subarray(28)]);
  assert.equal(await reply, { id: 'a', result: '\u00e9t\u00e9 \u2603' });
  done();
});

c('a line longer than the limit breaks the channel once the limit is passed, not at its newline', async () => {
  const { channel, peer, violations, done } = await connected(4096);
  const reply = channel.request({ id: 'a' }, byId('a'));
  peer.write('x'.repeat(4097));
  const e = await rejection<ChannelError>(reply);
  assert.is(e.kind, 'too-large');
  assert.match(e.message, '4096');
  assert.equal(
    violations.map(([v, unasked]) => [v.kind, unasked]),
    [['too-large', false]],
  );
  assert.is(channel.broken, e);
  done();
});

c('a line of exactly the limit passes', async () => {
  const { channel, peer, done } = await connected(4096);
  const reply = channel.request({ id: 'a' }, byId('a'));
  const head = '{"id": "a", "result": "';
  peer.write(`${head}${'x'.repeat(4096 - head.length - 2)}"}\n`);
  assert.is(((await reply).result as string).length, 4096 - head.length - 2);
  done();
});

c('many megabytes in small chunks are read in linear time', async () => {
  const { channel, peer, done } = await connected(64 << 20);
  const reply = channel.request({ id: 'a' }, byId('a'));
  const t0 = performance.now();
  const block = 'x'.repeat(4096);
  peer.write('{"id": "a", "result": "');
  for (let i = 0; i < 4096; i++) peer.write(block);
  peer.write('"}\n');
  assert.is(((await reply).result as string).length, 16 << 20);
  const ms = performance.now() - t0;
  assert.ok(ms < 3000, `16 MiB in 4 KiB writes took ${ms.toFixed(0)} ms`);
  done();
});

c('garbage, a reply the check refuses, and JSON that is not an object each fail the request at once', async () => {
  for (const [line, says] of [
    ['not json\n', 'not JSON'],
    ['{"id": "b", "result": 1}\n', 'another request'],
    ['[1, 2]\n', 'not a JSON object'],
  ]) {
    const { channel, peer, violations, done } = await connected();
    const reply = channel.request({ id: 'a' }, byId('a'));
    peer.write(line!);
    const e = await rejection<ChannelError>(reply);
    assert.is(e.kind, 'protocol');
    assert.match(e.message, says!);
    assert.is(violations.length, 1);
    assert.is(violations[0]![1], false, 'a request was outstanding to be told');
    done();
  }
});

c(
  'a byte while no request is outstanding breaks the channel when it arrives, and the next request is refused',
  async () => {
    const { channel, peer, violations, done } = await connected();
    peer.write('{"id": "later", "result": "pwned"}\n');
    for (let i = 0; i < 100 && violations.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(
      violations.map(([v, unasked]) => [v.kind, unasked]),
      [['protocol', true]],
    );
    assert.match(violations[0]![0].message, 'while no request was outstanding');
    const e = await rejection<ChannelError>(channel.request({ id: 'later' }, byId('later')));
    assert.is(e, violations[0]![0]);
    done();
  },
);

c(
  'a second line after the reply, in the same chunk, is refused as unasked; the reply itself is delivered',
  async () => {
    const { channel, peer, violations, done } = await connected();
    const reply = channel.request({ id: 'a' }, byId('a'));
    peer.write('{"id": "a", "result": 1}\n{"id": "a", "result": 2}\n');
    assert.equal(await reply, { id: 'a', result: 1 });
    for (let i = 0; i < 100 && violations.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(
      violations.map(([v, unasked]) => [v.kind, unasked]),
      [['protocol', true]],
    );
    done();
  },
);

c('the socket closing fails the outstanding request as closed, with no violation', async () => {
  const { channel, peer, violations, done } = await connected();
  const reply = channel.request({ id: 'a' }, byId('a'));
  peer.end();
  assert.is((await rejection<ChannelError>(reply)).kind, 'closed');
  assert.equal(violations, []);
  done();
});

c('hello: the first line, kept until asked for; an abort first rejects with its reason', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-channel-'));
  const { listening, accepted } = Channel.listen(path.join(dir, 's'), new AbortController().signal, MAX);
  await listening;
  const peer = net.connect(path.join(dir, 's'));
  const channel = await accepted;
  const abort = new AbortController();
  const waiting = channel.hello(abort.signal);
  abort.abort(new Error('no hello in time'));
  assert.match((await rejection<ChannelError>(waiting)).message, 'no hello in time');
  peer.write('{"ready": true, "pid": 7}\n');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(await channel.hello(new AbortController().signal), { ready: true, pid: 7 });
  peer.destroy();
  channel.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

c.run();
