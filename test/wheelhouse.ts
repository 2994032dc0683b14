// Wheels built by hand for the tests (no network, no build backend): a package's files and
// dist-info's METADATA, WHEEL and RECORD, zipped.
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
  const made = spawnSync('python3', ['-c', MAKE_WHEEL, wheelhouse, name, version, ...requires], { encoding: 'utf8', env });
  if (made.status !== 0) throw new Error(`building the wheel ${name}: ${made.stderr}`);
}
