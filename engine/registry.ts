// The lambdas a worker serves: <registry>/<name>/f.py (defining f(event)) and an optional
// requirements.txt. A lambda's version is the hash of its files; each version is run from a
// snapshot in the state directory, so editing the registry never changes code under a sandbox
// that is running, and a new version is picked up by the next request without a restart.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** Byte-compiled leftovers of running the handler outside the engine are not part of it. */
const SKIP = new Set(['__pycache__', '.git']);

export interface Lambda {
  name: string;
  /** First 16 hex digits of the SHA-256 of its files' names and contents. */
  version: string;
  /** The snapshot the sandbox mounts as /handler. */
  code: string;
  /** requirements.txt's lines without comments and blanks, e.g. "numpy==2.1.0". */
  requirements: string[];
}

interface Entry {
  signature: string;
  lambda: Lambda;
}

export class Registry {
  private readonly known = new Map<string, Entry>();

  constructor(readonly dir: string, private readonly snapshots: string) {}

  /** The lambda's current version, or undefined when there is no such lambda. */
  lookup(name: string): Lambda | undefined {
    if (!NAME.test(name)) return undefined;
    const dir = path.join(this.dir, name);
    let files: string[];
    try {
      if (!fs.statSync(path.join(dir, 'f.py')).isFile()) return undefined;
      files = listFiles(dir);
    } catch {
      return undefined;
    }
    // Sizes and modification times tell a change without reading the files.
    const signature = files.map((f) => {
      const st = fs.statSync(path.join(dir, f));
      return `${f}\0${st.size}\0${st.mtimeMs}`;
    }).join('\n');
    const cached = this.known.get(name);
    if (cached?.signature === signature) return cached.lambda;
    const lambda = this.snapshot(name, dir, files);
    this.known.set(name, { signature, lambda });
    return lambda;
  }

  /** Names of the lambdas in the registry now. */
  names(): string[] {
    try {
      return fs.readdirSync(this.dir).filter((n) => NAME.test(n) && fs.existsSync(path.join(this.dir, n, 'f.py'))).sort();
    } catch {
      return [];
    }
  }

  private snapshot(name: string, dir: string, files: string[]): Lambda {
    const hash = crypto.createHash('sha256');
    const contents = files.map((f) => fs.readFileSync(path.join(dir, f)));
    files.forEach((f, i) => hash.update(`${f}\0${contents[i]!.length}\0`).update(contents[i]!));
    const version = hash.digest('hex').slice(0, 16);
    const code = path.join(this.snapshots, `${name}-${version}`);
    if (!fs.existsSync(code)) {
      const partial = `${code}.partial-${process.pid}`;
      files.forEach((f, i) => {
        fs.mkdirSync(path.dirname(path.join(partial, f)), { recursive: true });
        fs.writeFileSync(path.join(partial, f), contents[i]!, { mode: 0o644 });
      });
      fs.renameSync(partial, code);
    }
    const requirementsAt = files.indexOf('requirements.txt');
    const requirements = requirementsAt < 0 ? [] : parseRequirements(contents[requirementsAt]!.toString('utf8'));
    return { name, version, code, requirements };
  }
}

/** Package lines of a pip-style requirements file: comments (# ...) and blank lines dropped. */
export function parseRequirements(text: string): string[] {
  return text.split('\n').map((line) => line.replace(/#.*/, '').trim()).filter((line) => line.length > 0);
}

function listFiles(dir: string, prefix = ''): string[] {
  return fs.readdirSync(path.join(dir, prefix), { withFileTypes: true })
    .filter((e) => !SKIP.has(e.name))
    .flatMap((e) => {
      const rel = path.join(prefix, e.name);
      if (e.isDirectory()) return listFiles(dir, rel);
      return e.isFile() ? [rel] : [];
    })
    .sort();
}
