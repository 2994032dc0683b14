// Wheels built by hand for the tests (no network, no build backend): a package's files and
// dist-info's METADATA, WHEEL and RECORD, zipped. And sdists: a setup.py of the test's own (pip
// builds them with the host's setuptools), PKG-INFO and the package, tarred.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

const MAKE_WHEEL = `
import base64, hashlib, os, sys, zipfile
out, name, version, *requires = sys.argv[1:]
dist = f'{name}-{version}.dist-info'
files = {
    f'{name}/__init__.py': os.environ.get('SOCK_WHEEL_INIT') or f'from .greet import hello\\nVERSION = {version!r}\\n',
    f'{name}/greet.py': f'def hello():\\n    return "hello from {name}"\\n',
    f'{dist}/METADATA': f'Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n' + ''.join(f'Requires-Dist: {r}\\n' for r in requires),
    f'{dist}/WHEEL': 'Wheel-Version: 1.0\\nGenerator: sockbench-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n',
}
def digest(text):
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()
files[f'{dist}/RECORD'] = ''.join(f'{p},sha256={digest(t)},{len(t.encode())}\\n' for p, t in files.items()) + f'{dist}/RECORD,,\\n'
with zipfile.ZipFile(f'{out}/{name}-{version}-py3-none-any.whl', 'w') as z:
    for p, t in files.items():
        z.writestr(p, t)
`;

/** <wheelhouse>/<name>-<version>-py3-none-any.whl: a package whose hello() says its name, needing requires. */
export function wheel(wheelhouse: string, name: string, version: string, ...requires: string[]): void {
  build(wheelhouse, name, version, requires);
}

/** A package whose __init__.py is init: code that runs wherever it is imported (a zygote, a handler). */
export function wheelWithInit(wheelhouse: string, name: string, version: string, init: string): void {
  build(wheelhouse, name, version, [], init);
}

function build(wheelhouse: string, name: string, version: string, requires: string[], init?: string): void {
  fs.mkdirSync(wheelhouse, { recursive: true });
  const env = init === undefined ? process.env : { ...process.env, SOCK_WHEEL_INIT: init };
  const made = spawnSync('python3', ['-c', MAKE_WHEEL, wheelhouse, name, version, ...requires], {
    encoding: 'utf8',
    env,
  });
  if (made.status !== 0) throw new Error(`building the wheel ${name}: ${made.stderr}`);
}

const MAKE_SDIST = `
import io, sys, tarfile
out, name, version, setup_py = sys.argv[1:]
top = f'{name}-{version}'
files = {
    f'{top}/PKG-INFO': f'Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n',
    f'{top}/setup.py': setup_py,
    f'{top}/{name}/__init__.py': f'VERSION = {version!r}\\n',
}
with tarfile.open(f'{out}/{top}.tar.gz', 'w:gz') as t:
    for p, text in files.items():
        data = text.encode()
        info = tarfile.TarInfo(p)
        info.size = len(data)
        info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
`;

/** <dir>/<name>-<version>.tar.gz: an sdist whose setup.py is setupPy (which must call setuptools.setup with that name and version). */
export function sdist(dir: string, name: string, version: string, setupPy: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const made = spawnSync('python3', ['-c', MAKE_SDIST, dir, name, version, setupPy], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`building the sdist ${name}: ${made.stderr}`);
}
