// The registry never follows a link out: the attacks a lambda's author can make on the worker
// (root) that snapshots their files, performed for real. The lambdas belong to nobody, as a
// real author's would belong to them; the secret is root's, mode 0600, in a root-only
// directory. The swap race, the hard link and the linked lambda directory each put the secret
// into a snapshot (and a reply) of the registry that read files by path, and a plain link was
// dropped from the snapshot without a word; each is now refused with one line naming the entry.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BadLambdaError } from '../../../engine/worker/lambdaConfig.js';
import { type Lambda, Registry } from '../../../engine/worker/registry.js';
import { StateDir } from '../../../engine/state/stateDir.js';
import { constants, mount, umount2 } from '../../../native/index.js';
import { engineScratch, post, removeScratch, startWorker } from '../../helpers/sockWorker.js';

/** The registries' bound on a .tar.gz unpacked, and the bomb's size: twice as much. */
const BOMB_BOUND = 8 * 2 ** 20;

/** nobody and its primary group (nogroup): the lambdas' owner. */
const OWNER = 65534;

let root: string;
let secretFile: string;
let secret: string;
let registryDir: string;
let snapshots: string;
let registry: Registry;

/** Writes a lambda owned by OWNER: each file's content (and mode; 0644 when not given). */
function ownedLambda(
  dir: string,
  name: string,
  files: Record<string, string | [content: string, mode: number]>,
): string {
  const top = path.join(dir, name);
  fs.mkdirSync(top);
  fs.chownSync(top, OWNER, OWNER);
  for (const [rel, spec] of Object.entries(files)) {
    const [content, mode] = typeof spec === 'string' ? [spec, 0o644] : spec;
    const file = path.join(top, rel);
    for (let d = path.dirname(file); !fs.existsSync(d); d = path.dirname(d)) {
      fs.mkdirSync(d, { recursive: true });
      fs.chownSync(d, OWNER, OWNER);
    }
    fs.writeFileSync(file, content);
    fs.chownSync(file, OWNER, OWNER);
    fs.chmodSync(file, mode);
  }
  return top;
}

/** Files under dir (followed by nothing) that hold the secret. */
function holdingSecret(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .filter((f) => fs.readFileSync(f).includes(secret));
}

/** lookup()'s lambda, or the error it threw. */
function attempt(name: string): Lambda | Error | undefined {
  try {
    return registry.lookup(name);
  } catch (e) {
    return e as Error;
  }
}

/** The lookup was refused with one line naming what, and no snapshot holds the secret. */
function refused(name: string, ...mentions: string[]): void {
  const outcome = attempt(name);
  assert.equal(holdingSecret(snapshots), [], 'no snapshot holds the secret');
  assert.instance(outcome, BadLambdaError, `refused, not ${JSON.stringify(outcome)}`);
  const message = (outcome as Error).message;
  assert.not.match(message, secret);
  assert.not.match(message, '\n');
  for (const m of [`lambda '${name}'`, ...mentions]) assert.match(message, m);
}

const attacks = suite('attacks: the registry never follows a link out');

attacks.before(() => {
  root = engineScratch();
  fs.chmodSync(root, 0o755); // the author (nobody) reaches their own lambdas
  const vault = path.join(root, 'vault');
  fs.mkdirSync(vault, { mode: 0o700 });
  secret = `sockbench-secret-${crypto.randomBytes(12).toString('hex')}`;
  secretFile = path.join(vault, 'secret.txt');
  fs.writeFileSync(secretFile, secret, { mode: 0o600 });
  registryDir = path.join(root, 'registry');
  fs.mkdirSync(registryDir, { mode: 0o755 });
});

// Snapshots of their own, so that what one attack copies is held against it alone.
attacks.before.each(() => {
  snapshots = fs.mkdtempSync(path.join(root, 'snapshots-'));
  // A small bound on unpacking, so that the bomb below is cheap to make and to refuse (also under emulation).
  registry = new Registry(registryDir, snapshots, BOMB_BOUND);
});

attacks('a symbolic link to the secret in a lambda is refused, naming the link', () => {
  const top = ownedLambda(registryDir, 'symlink', { 'f.py': 'def f(event):\n    return open("data.txt").read()\n' });
  fs.symlinkSync(secretFile, path.join(top, 'data.txt'));
  fs.lchownSync(path.join(top, 'data.txt'), OWNER, OWNER);
  refused('symlink', 'data.txt is a symbolic link');
  const nested = ownedLambda(registryDir, 'nested', { 'f.py': 'def f(event):\n    return 1\n', 'lib/ok.py': '' });
  fs.symlinkSync(path.dirname(secretFile), path.join(nested, 'lib', 'vault'));
  refused('nested', 'lib/vault is a symbolic link');
});

attacks('a file swapped for a link to the secret while lookup() runs is never read through the link', async () => {
  const top = ownedLambda(registryDir, 'race', {
    'f.py': 'def f(event):\n    return open("data.txt").read()\n',
    'data.txt': 'public',
  });
  const stage = path.join(root, 'stage');
  fs.mkdirSync(stage);
  fs.chownSync(stage, OWNER, OWNER);
  // The author's loop, as nobody: rename a fresh link over data.txt, then a fresh file back.
  const swapper = spawn(
    process.execPath,
    [
      '-e',
      `
    const fs = require('node:fs');
    const [secret, stage, target] = process.argv.slice(1);
    process.stdout.write('ready\\n');
    for (;;) {
      fs.symlinkSync(secret, stage + '/l');
      fs.renameSync(stage + '/l', target);
      fs.writeFileSync(stage + '/r', 'public');
      fs.renameSync(stage + '/r', target);
    }`,
      secretFile,
      stage,
      path.join(top, 'data.txt'),
    ],
    { uid: OWNER, gid: OWNER, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise((resolve) => swapper.on('exit', resolve));
  const served = new Set<string>();
  const refusals = new Set<string>();
  let lookups = 0;
  try {
    await new Promise((resolve) => swapper.stdout!.once('data', resolve));
    for (const end = Date.now() + 3000; Date.now() < end || served.size === 0 || refusals.size === 0;) {
      const outcome = attempt('race');
      if (outcome instanceof Error) refusals.add(outcome.message);
      else if (outcome) served.add(outcome.code);
      if (++lookups % 100 === 0 && Date.now() > end + 20_000) break;
    }
  } finally {
    swapper.kill();
    await exited;
  }
  assert.equal(holdingSecret(snapshots), [], 'no snapshot ever held the secret');
  assert.ok(
    served.size > 0 && refusals.size > 0 && lookups >= 300,
    `the race was live: ${lookups} lookups, served ${[...served]}, refused: ${[...refusals]}`,
  );
  for (const code of served) assert.is(fs.readFileSync(path.join(code, 'data.txt'), 'utf8'), 'public');
  assert.equal(
    [...refusals],
    [
      "lambda 'race': data.txt is a symbolic link, and the registry follows no link (put the file itself in the lambda)",
    ],
  );
});

attacks('a hard link to the secret is refused, and so is any file its owner could not read', () => {
  const top = ownedLambda(registryDir, 'hardlink', { 'f.py': 'def f(event):\n    return open("data.txt").read()\n' });
  fs.linkSync(secretFile, path.join(top, 'data.txt'));
  refused('hardlink', 'data.txt', 'hard link', 'uid 0', `uid ${OWNER}`);
  // A copy root left behind (one name) is as unreadable to the owner as the secret itself.
  fs.rmSync(path.join(top, 'data.txt'));
  fs.copyFileSync(secretFile, path.join(top, 'data.txt'));
  refused('hardlink', 'data.txt', 'mode 0600', 'not readable');
  // Readable through the owner's primary group: theirs to publish.
  fs.chownSync(path.join(top, 'data.txt'), 0, OWNER);
  fs.chmodSync(path.join(top, 'data.txt'), 0o640);
  fs.writeFileSync(path.join(top, 'data.txt'), 'shared with nogroup');
  assert.ok(registry.lookup('hardlink'), 'group-readable is readable');
  // The owner's own file they made unreadable to themselves, and a directory they cannot enter.
  const own = ownedLambda(registryDir, 'ownbits', { 'f.py': 'def f(event):\n    return 1\n', 'w.txt': ['', 0o200] });
  refused('ownbits', 'w.txt', 'not readable');
  fs.rmSync(path.join(own, 'w.txt'));
  fs.mkdirSync(path.join(own, 'shut'), { mode: 0o600 });
  fs.chownSync(path.join(own, 'shut'), OWNER, OWNER);
  refused('ownbits', 'shut', 'not readable');
});

attacks('a lambda directory that is a symbolic link is refused, to a root-only directory or to another lambda', () => {
  const hidden = path.join(path.dirname(secretFile), 'lambda');
  fs.mkdirSync(hidden, { mode: 0o700 });
  fs.writeFileSync(path.join(hidden, 'f.py'), `def f(event):\n    return "${secret}"\n`, { mode: 0o600 });
  fs.symlinkSync(hidden, path.join(registryDir, 'aliased'));
  refused('aliased', `its directory ${registryDir}/aliased is a symbolic link`);
  ownedLambda(registryDir, 'target', { 'f.py': 'def f(event):\n    return 1\n' });
  fs.symlinkSync(path.join(registryDir, 'target'), path.join(registryDir, 'alias'));
  refused('alias', 'is a symbolic link');
  assert.not.ok(
    registry.names().includes('aliased') || registry.names().includes('alias'),
    'names() does not follow them',
  );
  assert.ok(registry.names().includes('target'));
});

attacks('a fifo or a mount inside a lambda is refused (neither hangs nor crosses into another file system)', () => {
  const top = ownedLambda(registryDir, 'special', { 'f.py': 'def f(event):\n    return 1\n', 'm/x': '' });
  execFileSync('mkfifo', [path.join(top, 'pipe')]);
  refused('special', 'pipe is a fifo');
  fs.rmSync(path.join(top, 'pipe'));
  mount('tmpfs', path.join(top, 'm'), 'tmpfs', 0, 'mode=0755');
  try {
    refused('special', 'm is on another file system');
  } finally {
    umount2(path.join(top, 'm'), constants.MNT_DETACH);
  }
});

attacks(
  "a snapshot keeps its files' permission bits without setuid, setgid and sticky; its directories are 0755",
  () => {
    ownedLambda(registryDir, 'modes', {
      'f.py': 'def f(event):\n    return 1\n',
      'bin/helper.sh': ['#!/bin/sh\necho hi\n', 0o755],
      'bin/data.bin': ['private to the group', 0o640],
      'bin/suid': ['#!/bin/sh\n', 0o6755],
    });
    fs.chmodSync(path.join(registryDir, 'modes', 'bin'), 0o700);
    const { code } = registry.lookup('modes')!;
    const mode = (rel: string) => fs.statSync(path.join(code, rel)).mode & 0o7777;
    assert.equal(
      [mode('.'), mode('f.py'), mode('bin'), mode('bin/helper.sh'), mode('bin/data.bin'), mode('bin/suid')],
      [0o755, 0o644, 0o755, 0o755, 0o640, 0o755],
    );
    fs.chmodSync(path.join(registryDir, 'modes', 'bin/data.bin'), 0o644);
    const next = registry.lookup('modes')!.code;
    assert.is.not(next, code, 'a new mode is a new version');
    assert.is(fs.statSync(path.join(next, 'bin/data.bin')).mode & 0o7777, 0o644);
  },
);

/**
 * <registry>/<name>.tar.gz made by Python's tarfile, owned by OWNER: f.py, then each member
 * [name, kind, target or content] as given, whatever its name or kind, as an attacker would.
 */
function ownedTarball(name: string, members: [string, 'file' | 'symlink' | 'hardlink' | 'dir', string][]): string {
  const file = path.join(registryDir, `${name}.tar.gz`);
  const script = `
import io, json, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    for name, kind, data in [["f.py", "file", "def f(event):\\n    return 1\\n"]] + json.loads(sys.argv[2]):
        info = tarfile.TarInfo(name)
        if kind == "file":
            info.size = len(data.encode())
            t.addfile(info, io.BytesIO(data.encode()))
            continue
        info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE}[kind]
        info.linkname = data
        t.addfile(info)
`;
  execFileSync('python3', ['-c', script, file, JSON.stringify(members)]);
  fs.chownSync(file, OWNER, OWNER);
  return file;
}

attacks(
  'a .tar.gz lambda holding a link, a path out of the lambda or a device is refused whole; nothing is written outside',
  () => {
    ownedTarball('tarlink', [['data.txt', 'symlink', secretFile]]);
    refused('tarlink', 'tarlink.tar.gz', 'data.txt', 'SymbolicLink', 'only files and directories');
    ownedTarball('tarhard', [['data.txt', 'hardlink', secretFile]]);
    refused('tarhard', 'data.txt', 'Link');
    const escape = path.join(root, 'escaped.py');
    ownedTarball('tarclimb', [['../../escaped.py', 'file', 'import os']]);
    refused('tarclimb', '../../escaped.py', 'outside the lambda');
    ownedTarball('tarabs', [[escape, 'file', 'import os']]);
    refused('tarabs', 'outside the lambda');
    assert.not.ok(fs.existsSync(escape), 'nothing was written outside the registry');
    ownedTarball('tarok', [
      ['lib/data.txt', 'file', 'public'],
      ['lib', 'dir', ''],
    ]);
    const ok = registry.lookup('tarok')!;
    assert.ok(ok.packed);
    assert.is(fs.readFileSync(path.join(ok.code, 'lib/data.txt'), 'utf8'), 'public');
  },
);

attacks(
  'a .tar.gz that is a link or a hard link to a root-only archive, or unpacks past the bound, is refused',
  async () => {
    const vaultTar = path.join(path.dirname(secretFile), 'vault.tar.gz');
    const staged = ownedTarball('staged', [['data.txt', 'file', secret]]);
    fs.renameSync(staged, vaultTar);
    fs.chownSync(vaultTar, 0, 0);
    fs.chmodSync(vaultTar, 0o600);
    fs.symlinkSync(vaultTar, path.join(registryDir, 'tarsym.tar.gz'));
    refused('tarsym', 'tarsym.tar.gz is not a regular file');
    fs.linkSync(vaultTar, path.join(registryDir, 'tarhl.tar.gz'));
    refused('tarhl', 'tarhl.tar.gz', 'hard link');
    // Zeros twice the bound, gzipped to a few KiB: refused without unpacking it whole.
    const bomb = path.join(registryDir, 'tarbomb.tar.gz');
    const gzip = (await import('node:zlib')).createGzip();
    const out = fs.createWriteStream(bomb);
    gzip.pipe(out);
    const zeros = Buffer.alloc(2 ** 20);
    for (let i = 0; i < (2 * BOMB_BOUND) / zeros.length; i++)
      if (!gzip.write(zeros)) await new Promise((r) => gzip.once('drain', r));
    gzip.end();
    await new Promise<void>((r) => out.on('close', () => r()));
    fs.chownSync(bomb, OWNER, OWNER);
    refused('tarbomb', `unpacks to more than ${BOMB_BOUND} bytes`);
    // Both shapes under one name: which one is meant is not guessed.
    ownedLambda(registryDir, 'twice', { 'f.py': 'def f(event):\n    return 1\n' });
    ownedTarball('twice', []);
    refused('twice', 'both twice/ and twice.tar.gz');
  },
);

attacks.run();

const http = suite('attacks: through the worker');

http(
  'a lambda reading a linked secret is a 403 bad-lambda naming the link; the reply and snapshots never hold the secret',
  async () => {
    const w = await startWorker();
    try {
      const peek = 'def f(event):\n    return open("/handler/data.txt").read()\n';
      ownedLambda(w.registry, 'ok', { 'f.py': peek, 'data.txt': 'public' });
      fs.symlinkSync(secretFile, path.join(ownedLambda(w.registry, 'symlink', { 'f.py': peek }), 'data.txt'));
      fs.linkSync(secretFile, path.join(ownedLambda(w.registry, 'hardlink', { 'f.py': peek }), 'data.txt'));
      fs.symlinkSync(path.join(w.registry, 'ok'), path.join(w.registry, 'alias'));
      assert.equal(await post(w.url, 'ok', ''), { status: 200, body: 'public' });
      const cases = [
        ['symlink', 'data.txt is a symbolic link'],
        ['hardlink', 'data.txt'],
        ['alias', 'is a symbolic link'],
      ] as const;
      const replies = await Promise.all(cases.map(([name]) => post(w.url, name, '')));
      assert.not.match(JSON.stringify(replies), secret, 'no reply holds the secret');
      cases.forEach(([name, mention], i) => {
        const r = replies[i]!;
        assert.is(r.status, 403, JSON.stringify(r.body));
        assert.is(r.body.kind, 'bad-lambda');
        assert.match(r.body.error, `bad-lambda: lambda '${name}': `);
        assert.match(r.body.error, mention);
      });
      assert.equal(holdingSecret(new StateDir(w.stateDir).code), []);
      const status = (await (await fetch(`${w.url}/status`)).json()) as { worker: { lambdas: string[] } };
      assert.equal(
        status.worker.lambdas,
        ['hardlink', 'ok', 'symlink'],
        'GET /status lists no linked lambda directory',
      );
      assert.match(w.log(), "symlink: bad-lambda: lambda 'symlink'", 'the worker logs a refusal');
    } finally {
      assert.is(await w.stop(), 0);
    }
  },
);

// The secret the first suite made is used here too: both are removed at the end.
http.after(removeScratch);

http.run();
