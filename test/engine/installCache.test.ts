// The install cache, for real: pip against a wheelhouse built here (no network), PyYAML from
// Debian's mirror, each package imported by the base's own python3 the way a sandbox sees it
// (/packages/<name>, read-only), installs shared by concurrent callers, a failed install leaving
// nothing and retried cleanly, and an interrupted one's leftovers removed at the next open.
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cacheKey, InstallCache, InstallError, parseRequirement } from '../../engine/caches/installCache.js';
import { DebianProvider, satisfies } from '../../engine/installers/debian.js';
import { InstallWork } from '../../engine/installers/installSandbox.js';
import { ROOT_ENV } from '../../engine/installers/packageRoot.js';
import { PipProvider } from '../../engine/installers/pip.js';
import { readMounts } from '../../engine/state/mountinfo.js';
import { selfIdentity } from '../../engine/state/processIdentity.js';
import { BASE, engineScratch, removeScratch } from '../helpers/sockWorker.js';
import { wheel } from '../helpers/wheelhouse.js';
import { rejection } from '../helpers/helpers.js';

const run = promisify(execFile);

/** A scratch directory with a wheelhouse holding sbdemo and sbbroken (which needs sbmissing, absent), and a pip cache on it. */
function pipSetup(): { scratch: string; wheelhouse: string; cache: InstallCache; lines: string[] } {
  const scratch = newScratch();
  const wheelhouse = path.join(scratch, 'wheels');
  wheel(wheelhouse, 'sbdemo', '1.2');
  wheel(wheelhouse, 'sbbroken', '0.1', 'sbmissing');
  const lines: string[] = [];
  const provider = new PipProvider({
    findLinks: [wheelhouse],
    noIndex: true,
    base: BASE,
    workDir: path.join(scratch, 'work'),
  });
  return {
    scratch,
    wheelhouse,
    cache: InstallCache.open(path.join(scratch, 'packages'), provider, (l) => lines.push(l)),
    lines,
  };
}

/** What the base's python3 prints running code with the packages at /packages/<name>, read-only, as a sandbox has them (unprivileged, in the install sandbox). */
async function inBase(scratch: string, packages: Record<string, string>, code: string): Promise<string> {
  const names = Object.keys(packages);
  const env = {
    ...ROOT_ENV,
    PYTHONPATH: names.map((n) => `/packages/${n}/python`).join(':'),
    LD_LIBRARY_PATH: names.map((n) => `/packages/${n}/lib`).join(':'),
  };
  const work = InstallWork.create(path.join(scratch, 'check'), 'check');
  try {
    const out = await work.inBase(BASE, packages, false, {
      argv: ['/usr/bin/python3', '-B', '-c', code],
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    });
    return out.trim();
  } finally {
    work.remove();
  }
}

function mountsIn(dir: string): string[] {
  return readMounts()
    .map((m) => m.mountPoint)
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

const scratches: string[] = [];
/** A scratch directory, removed after the tests (which is refused if anything is still mounted in it). */
function newScratch(): string {
  scratches.push(engineScratch());
  return scratches.at(-1)!;
}

/** Entries of the cache's provider directory. */
const entries = (scratch: string, provider: string) => fs.readdirSync(path.join(scratch, 'packages', provider)).sort();

test.after(() => removeScratch());

test('requirement lines: names normalized, specifiers kept, anything but name[specifier] refused', async () => {
  assert.equal(parseRequirement(' Pillow >= 9 , <11 '), {
    line: 'Pillow >= 9 , <11',
    name: 'pillow',
    specifier: '>=9,<11',
  });
  assert.equal(parseRequirement('PyYAML'), { line: 'PyYAML', name: 'pyyaml', specifier: '' });
  assert.is(cacheKey(parseRequirement('numpy==1.24.2')), 'numpy==1.24.2');
  assert.match(cacheKey(parseRequirement('Pillow>=9')), /^pillow@[0-9a-f]{16}$/);
  assert.is.not(cacheKey(parseRequirement('Pillow>=9')), cacheKey(parseRequirement('Pillow>=10')));
  for (const bad of [
    '-e .',
    'https://example.com/x.whl',
    'numpy[extra]',
    '--index-url x',
    'numpy; python_version>"3"',
    'a b',
  ]) {
    assert.throws(
      () => parseRequirement(bad),
      (e: Error) => e instanceof InstallError && e.message.includes(`'${bad}'`),
      bad,
    );
  }
  const { scratch, cache } = pipSetup();
  const e = await rejection(cache.ensure(['sbdemo', 'git+https://example.com/x']));
  assert.instance(e, InstallError);
  assert.equal(entries(scratch, 'pip'), [], 'a refused line installs nothing, not even the good one beside it');
});

test('pip: a wheel installs with python/, lib/ and package.json, imports in the base, and its .pyc say /packages/<name>', async () => {
  const { scratch, cache } = pipSetup();
  const [p] = await cache.ensure(['SBDemo==1.2']);
  assert.is(p!.dir, path.join(scratch, 'packages/pip/sbdemo==1.2'));
  assert.equal(entries(scratch, 'pip'), ['sbdemo==1.2']);
  assert.ok(fs.existsSync(path.join(p!.dir, 'python/sbdemo/__init__.py')));
  assert.equal(fs.readdirSync(path.join(p!.dir, 'lib')), []);
  assert.is(fs.statSync(p!.dir).mode & 0o777, 0o755);
  const marker = JSON.parse(fs.readFileSync(path.join(p!.dir, 'package.json'), 'utf8'));
  assert.equal(Object.keys(marker).sort(), [
    'bytes',
    'downloadMs',
    'installMs',
    'installedAt',
    'name',
    'provider',
    'requirement',
    'version',
  ]);
  assert.equal(
    [marker.name, marker.requirement, marker.provider, marker.version],
    ['sbdemo', 'SBDemo==1.2', 'pip', '1.2'],
  );
  assert.ok(marker.downloadMs > 0 && marker.installMs > 0 && marker.bytes > 0, JSON.stringify(marker));
  assert.equal({ ...p, dir: undefined }, { ...marker, dir: undefined });

  const probe = [
    'import importlib.util, marshal, sbdemo.greet',
    'data = open(importlib.util.cache_from_source(sbdemo.greet.__file__), "rb").read()',
    'print(sbdemo.hello(), data[:4] == importlib.util.MAGIC_NUMBER, marshal.loads(data[16:]).co_filename)',
  ].join('\n');
  assert.is(
    await inBase(scratch, { sbdemo: p!.dir }, probe),
    'hello from sbdemo True /packages/sbdemo/python/sbdemo/greet.py',
  );
  assert.equal(mountsIn(scratch), []);

  const again = InstallCache.open(path.join(scratch, 'packages'), new PipProvider({ python: '/nonexistent/python3' }));
  assert.equal(
    await again.ensure(['sbdemo==1.2']),
    [p],
    'a new cache on the same directory uses what is installed, without pip',
  );
  assert.equal(again.status(), {
    provider: 'pip',
    dir: path.join(scratch, 'packages'),
    packages: 1,
    installs: 0,
    failures: 0,
    installing: [],
    bytes: p!.bytes,
  });
});

test('five concurrent callers share one install', async () => {
  const { scratch, cache, lines } = pipSetup();
  const asked = Array.from({ length: 5 }, () => cache.ensure(['sbdemo']));
  assert.equal(cache.status().installing, ['sbdemo']);
  const got = await Promise.all(asked);
  assert.equal(new Set(got.map(([p]) => p!.dir)).size, 1);
  const status = cache.status();
  assert.equal([status.installs, status.failures, status.packages, status.installing], [1, 0, 1, []]);
  assert.is(lines.filter((l) => l.includes('installing sbdemo')).length, 1);
  assert.equal(entries(scratch, 'pip'), ['sbdemo']);
});

test('a failed install leaves nothing, is not remembered, and succeeds once what it lacked is there', async () => {
  const { scratch, wheelhouse, cache } = pipSetup();
  const e = await rejection(cache.ensure(['sbdemo', 'sbbroken']));
  assert.instance(e, InstallError);
  assert.is(e.message.split('\n').length, 1, e.message);
  assert.match(e.message, 'cannot install sbbroken (pip)');
  assert.match(e.message, 'sbmissing');
  assert.equal(entries(scratch, 'pip'), ['sbdemo'], 'no sbbroken directory, not even a .partial one');
  assert.equal(fs.readdirSync(path.join(scratch, 'work')), [], 'no temporary files');
  assert.is(cache.status().failures, 1);

  wheel(wheelhouse, 'sbmissing', '1.0');
  const [, broken] = await cache.ensure(['sbdemo', 'sbbroken']);
  assert.equal(entries(scratch, 'pip'), ['sbbroken', 'sbdemo']);
  assert.ok(
    fs.existsSync(path.join(broken!.dir, 'python/sbmissing/__init__.py')),
    'dependencies land beside the package',
  );
  assert.equal([cache.status().installs, cache.status().failures], [2, 1]);
});

test("open() removes what an interrupted install left (a dead owner's .partial, a directory without package.json) and nothing else", () => {
  const scratch = newScratch();
  const dir = path.join(scratch, 'packages');
  const dead = `${spawnSync('true').pid}-1`;
  const leftovers = [`pip/.partial-sbdemo-${dead}-0a1b2c3d`, 'pip/sbhalf'];
  // A live owner's partial (this very process's), another provider's, and what the cache did not make.
  const kept = [
    `pip/.partial-sbdemo-${selfIdentity()}-0a1b2c3d`,
    `debian/.partial-x-${dead}-00`,
    'pip/.hidden',
    'pip/notes.txt',
    'unrelated.txt',
  ];
  for (const d of [...leftovers, ...kept.slice(0, 3)]) fs.mkdirSync(path.join(dir, d, 'python'), { recursive: true });
  for (const f of kept.slice(3)) fs.writeFileSync(path.join(dir, f), 'mine');
  const removed: string[] = [];
  const cache = InstallCache.open(dir, new PipProvider(), (l) => removed.push(l));
  for (const d of leftovers) assert.not.ok(fs.existsSync(path.join(dir, d)), d);
  assert.is(removed.length, 2, removed.join('\n'));
  for (const d of kept) assert.ok(fs.existsSync(path.join(dir, d)), d);
  assert.is(cache.status().packages, 0);
});

test('debian: PyYAML from the mirror, libyaml linked in lib/, imported by the base with its C extension', async () => {
  const scratch = newScratch();
  const cache = InstallCache.open(
    path.join(scratch, 'packages'),
    new DebianProvider({ base: BASE, workDir: path.join(scratch, 'work') }),
  );
  const [p] = await cache.ensure(['PyYAML']);
  assert.is(p!.dir, path.join(scratch, 'packages/debian/pyyaml'));
  assert.is(fs.readlinkSync(path.join(p!.dir, 'python')), 'root/usr/lib/python3/dist-packages');
  const lib = fs.readlinkSync(path.join(p!.dir, 'lib/libyaml-0.so.2'));
  assert.ok(lib.startsWith('../root/usr/lib/') && lib.endsWith('/libyaml-0.so.2'), lib);
  assert.ok(fs.existsSync(path.join(p!.dir, 'lib/libyaml-0.so.2')), 'the link resolves');
  assert.match(p!.version, /^\d/);
  assert.ok(p!.downloadMs > 0 && p!.installMs > 0 && p!.bytes > 100_000, JSON.stringify(p));
  const out = await inBase(
    scratch,
    { pyyaml: p!.dir },
    'import yaml, importlib.util; print(yaml.__with_libyaml__, yaml.__file__, importlib.util.cache_from_source(yaml.__file__))',
  );
  const [withLibyaml, file, pyc] = out.split(' ');
  assert.is(withLibyaml, 'True', out);
  assert.is(file, '/packages/pyyaml/python/yaml/__init__.py');
  assert.ok(
    fs.existsSync(path.join(p!.dir, 'python', path.relative('/packages/pyyaml/python', pyc!))),
    `byte-compiled: ${pyc}`,
  );
  assert.equal(mountsIn(scratch), []);
  assert.equal(fs.readdirSync(path.join(scratch, 'work')), []);
});

test('debian: a package Debian does not have is one InstallError line naming it; nothing is left', async () => {
  const scratch = newScratch();
  const cache = InstallCache.open(
    path.join(scratch, 'packages'),
    new DebianProvider({ base: BASE, workDir: path.join(scratch, 'work') }),
  );
  const e = await rejection(cache.ensure(['no-such-package-xyz']));
  assert.instance(e, InstallError);
  assert.is(e.message.split('\n').length, 1, e.message);
  assert.match(
    e.message,
    'cannot install no-such-package-xyz (debian): apt cannot resolve python3-no-such-package-xyz',
  );
  assert.equal(entries(scratch, 'debian'), []);
  assert.equal(fs.readdirSync(path.join(scratch, 'work')), []);
});

test('debian: version specifiers are checked against the one version Debian ships', async () => {
  assert.ok(
    satisfies([1, 24, 2], '==1.24.2') &&
      satisfies([1, 24, 2], '==1.24.*') &&
      satisfies([9, 4, 0], '>=9,<11') &&
      satisfies([3, 1, 2], '~=3.1'),
  );
  assert.not.ok(
    satisfies([1, 24, 2], '==2.1.0') ||
      satisfies([9, 4, 0], '<9') ||
      satisfies([4, 0], '~=3.1') ||
      satisfies([1, 24, 2], '!=1.24.*'),
  );
  const scratch = newScratch();
  const cache = InstallCache.open(
    path.join(scratch, 'packages'),
    new DebianProvider({ base: BASE, workDir: path.join(scratch, 'work') }),
  );
  const e = await rejection(cache.ensure(['PyYAML==5.0']));
  assert.instance(e, InstallError);
  assert.match(
    e.message,
    /cannot install PyYAML==5.0 \(debian\): Debian's python3-yaml is \d\S*, which is not ==5.0; .*--installer pip/,
  );
  assert.equal(entries(scratch, 'debian'), []);
  const [p] = await cache.ensure(['PyYAML>=5']);
  assert.match(p!.version, /^6\./);
});

test('a python3 without pip: the InstallError says so and what installs it', async () => {
  const scratch = newScratch();
  const venv = path.join(scratch, 'venv');
  await run('python3', ['-m', 'venv', '--without-pip', venv]);
  const python = path.join(venv, 'bin/python3');
  const cache = InstallCache.open(path.join(scratch, 'packages'), new PipProvider({ python, base: BASE }));
  const e = await rejection(cache.ensure(['sbdemo']));
  assert.instance(e, InstallError);
  assert.match(e.message, `\`${python} -m pip\` is not available (${python}: No module named pip)`);
  assert.match(e.message, 'scripts/setup.sh installs python3-pip');
  assert.equal(entries(scratch, 'pip'), []);
});

test('no mount is left under the scratch directories', () => {
  assert.equal(scratches.flatMap(mountsIn), []);
});

test.run();
