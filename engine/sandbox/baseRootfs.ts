// The base root file system every sandbox is stitched on: a minimal Debian with python3, made
// once by debootstrap. It is built beside its final place and renamed there only once it is
// complete and has run `python3 -c pass`, and it carries a marker naming the recipe it was made
// by: a directory without that marker is half-built (or someone else's) and is never used.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { EngineSetupError } from '../errors.js';

/** Bumped whenever what a base must contain changes, so older bases are rebuilt. */
const RECIPE = 'debootstrap --variant=minbase --include=python3 bookworm; mount points handler host packages sock; v1';
const MARKER = '.sockbench-base.json';
const SUITE = 'bookworm';
export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

/** Directories the stitched root mounts onto: they must exist in the (read-only) base. */
const MOUNT_POINTS = ['handler', 'host', 'packages', 'sock', 'proc', 'tmp'] as const;

/** Why dir is not a usable base, or undefined when it is one. */
export function baseProblem(dir: string): string | undefined {
  let marker: { recipe?: string };
  try {
    marker = JSON.parse(fs.readFileSync(path.join(dir, MARKER), 'utf8'));
  } catch {
    return fs.existsSync(dir)
      ? `${dir} has no ${MARKER}: it is half-built or not a sockbench base`
      : `${dir} does not exist`;
  }
  if (marker.recipe !== RECIPE) return `${dir} was built by an older recipe`;
  if (!fs.existsSync(path.join(dir, 'usr/bin/python3'))) return `${dir} has no usr/bin/python3`;
  const missing = MOUNT_POINTS.filter((m) => !fs.existsSync(path.join(dir, m)));
  if (missing.length > 0) return `${dir} lacks the mount points ${missing.join(', ')}`;
  return undefined;
}

/** Throws unless dir is a complete base; says how to build one. */
export function requireBase(dir: string): void {
  const problem = baseProblem(dir);
  if (problem)
    throw new EngineSetupError(
      `no usable base root file system: ${problem}; build it with \`sock base build --base ${dir}\``,
      3,
    );
}

/**
 * Makes dir a complete base unless it already is one. `say` gets one line per step of progress.
 * A directory at dir that is not a sockbench base (no marker, not empty) is refused, not removed.
 */
export async function buildBase(dir: string, say: (line: string) => void, mirror = DEFAULT_MIRROR): Promise<void> {
  if (baseProblem(dir) === undefined) {
    say(`base: ${dir} is ready`);
    return;
  }
  if (!fs.existsSync('/usr/sbin/debootstrap'))
    throw new EngineSetupError('debootstrap is not installed (apt-get install debootstrap)', 3);
  const partial = `${dir}.partial`;
  if (fs.existsSync(dir)) {
    const ours =
      fs.existsSync(path.join(dir, MARKER)) ||
      fs.existsSync(path.join(dir, '.sockbench-partial')) ||
      fs.readdirSync(dir).length === 0;
    if (!ours)
      throw new EngineSetupError(`${dir} exists and is not a sockbench base; move it away or choose another --base`);
    say(`base: ${baseProblem(dir)}; rebuilding`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // A build that was interrupted left this behind; it is never used, only started over.
  fs.rmSync(partial, { recursive: true, force: true });
  fs.mkdirSync(partial, { recursive: true });
  fs.writeFileSync(path.join(partial, '.sockbench-partial'), '');
  const started = Date.now();
  await debootstrap(partial, mirror, say);
  for (const m of MOUNT_POINTS) fs.mkdirSync(path.join(partial, m), { recursive: true });
  // Downloaded .debs are not needed at run time and are a third of the size.
  for (const deb of fs.readdirSync(path.join(partial, 'var/cache/apt/archives')).filter((f) => f.endsWith('.deb'))) {
    fs.rmSync(path.join(partial, 'var/cache/apt/archives', deb));
  }
  const check = spawnSync('chroot', [partial, '/usr/bin/python3', '-c', 'pass'], { encoding: 'utf8' });
  if (check.status !== 0)
    throw new EngineSetupError(`the new base cannot run python3: ${check.stderr.trim() || `exit ${check.status}`}`);
  const version = spawnSync('chroot', [partial, '/usr/bin/python3', '--version'], { encoding: 'utf8' }).stdout.trim();
  fs.rmSync(path.join(partial, '.sockbench-partial'));
  fs.writeFileSync(
    path.join(partial, MARKER),
    JSON.stringify(
      { recipe: RECIPE, suite: SUITE, mirror, python: version, builtAt: new Date().toISOString() },
      null,
      2,
    ),
  );
  fs.renameSync(partial, dir);
  say(`base: ${dir} ready (${version}) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

// debootstrap prints one "I: <Verb> <package>..." line per package and step; we pass on the
// first line of each step and a count every 25 packages, so a person sees it moving.
function debootstrap(target: string, mirror: string, say: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('debootstrap', ['--variant=minbase', '--include=python3', SUITE, target, mirror], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail: string[] = [];
    let verb = '';
    let count = 0;
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      const m = /^I: (\w+) (.*)$/.exec(line);
      if (!m) return;
      if (m[1] !== verb) {
        verb = m[1]!;
        count = 0;
        say(`base: ${line.slice(3)}`);
      } else if (++count % 25 === 0) {
        say(`base: ${verb} ... ${count} done`);
      }
    };
    readline.createInterface({ input: child.stdout! }).on('line', onLine);
    readline.createInterface({ input: child.stderr! }).on('line', onLine);
    child.on('error', (e) => reject(new EngineSetupError(`debootstrap did not start: ${e.message}`, 3)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new EngineSetupError(`debootstrap failed (${signal ?? `exit ${code}`}); its last lines:\n${tail.join('\n')}`),
        );
    });
  });
}
