// What npm run check:workflow does for each `uses:` action it knows, in place of the action:
// the same effect on the job's workspace as the action has on GitHub, made with what this host
// has (its git, its Node, a directory for artifacts). An action it does not know, or an input
// of one it does not follow, is refused by name.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { PrivilegeError, UsageError } from '../../harness/errors.js';

const execFileAsync = promisify(execFile);

/** The host side of one job: its workspace and what the stand-ins need. */
export interface StandInContext {
  /** The job's workspace on this host (GITHUB_WORKSPACE in the container). */
  workspace: string;
  /** The repository the checkout is made from, and the commit. */
  repo: string;
  sha: string;
  /** One directory per uploaded artifact, named after it, shared by every job of the run. */
  artifacts: string;
  node: ToolCacheNode;
  /** Puts a directory (a path in the container) on PATH for the job's later steps. */
  addPath: (dir: string) => void;
  say: (line: string) => void;
}

/** This host's Node, laid out as GitHub's tool cache holds one (mounted at /__t in a container job). */
export interface ToolCacheNode {
  version: string;
  /** Its bin directory as the container sees it. */
  bin: string;
}

export const TOOL_CACHE = '/__t';

/**
 * Copies this host's Node (the binary, npm, the headers node-gyp builds against) into
 * <dir>/node/<version>/x64, the layout of GitHub's tool cache, where setup-node finds a
 * version that is already there. Exit 3 when this host's Node lacks npm or its headers.
 */
export function prepareToolCache(dir: string): ToolCacheNode {
  const prefix = path.dirname(path.dirname(fs.realpathSync(process.execPath)));
  const npm = path.join(prefix, 'lib/node_modules/npm');
  const include = path.join(prefix, 'include/node');
  if (!fs.existsSync(path.join(npm, 'bin/npm-cli.js')))
    throw new PrivilegeError(`no npm beside this host's node (${npm}): setup-node's stand-in is this host's Node`);
  if (!fs.existsSync(path.join(include, 'node_api.h')))
    throw new PrivilegeError(
      `no Node headers beside this host's node (${include}): the addon is built against them (apt-get install libnode-dev, or Node's release tarball)`,
    );
  const version = process.versions.node;
  const root = path.join(dir, 'node', version, 'x64');
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
  fs.copyFileSync(process.execPath, path.join(root, 'bin/node'));
  fs.chmodSync(path.join(root, 'bin/node'), 0o755);
  fs.cpSync(npm, path.join(root, 'lib/node_modules/npm'), { recursive: true, verbatimSymlinks: true });
  fs.cpSync(include, path.join(root, 'include/node'), { recursive: true });
  fs.symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(root, 'bin/npm'));
  fs.symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', path.join(root, 'bin/npx'));
  return { version, bin: `${TOOL_CACHE}/node/${version}/x64/bin` };
}

/** A path inside the workspace, given relative to it (as the workflow gives them); refuses globs and escapes. */
function inWorkspace(ctx: StandInContext, given: string, where: string): string {
  if (given.includes('\n') || /[*?[\]!]/.test(given) || path.isAbsolute(given))
    throw new UsageError(`${where}: the check follows one relative path without wildcards, not '${given}'`);
  const resolved = path.resolve(ctx.workspace, given);
  if (resolved !== ctx.workspace && !resolved.startsWith(`${ctx.workspace}${path.sep}`))
    throw new UsageError(`${where}: '${given}' is outside the workspace`);
  return resolved;
}

/** upload-artifact@v4 leaves out hidden files and directories (include-hidden-files is false). */
function copyVisible(from: string, to: string): number {
  let files = 0;
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const src = path.join(from, entry.name);
    if (entry.isDirectory()) files += copyVisible(src, path.join(to, entry.name));
    else {
      fs.copyFileSync(src, path.join(to, entry.name));
      files++;
    }
  }
  return files;
}

// upload-artifact@v4 refuses these in a name.
const BAD_NAME = /["<>|*?:\\/\r\n]/;

/** The actions the check stands in for, by `owner/name@version` exactly: another major version may behave otherwise. */
interface StandIn {
  /** The inputs (with:) it follows. */
  inputs: readonly string[];
  run: (ctx: StandInContext, given: Record<string, string>, where: string) => Promise<void>;
}

const STAND_INS: Record<string, StandIn> = {
  // A shallow fetch of the one commit, detached, as actions/checkout makes it (with git in the container).
  'actions/checkout@v4': {
    inputs: [],
    run: async (ctx) => {
      const git = (...args: string[]) => execFileAsync('git', ['-C', ctx.workspace, ...args]);
      await git('init', '-q');
      await git('fetch', '-q', '--depth', '1', ctx.repo, ctx.sha);
      await git('checkout', '-q', '--detach', 'FETCH_HEAD');
      ctx.say(`checked out ${ctx.sha.slice(0, 12)} (a depth-1 fetch from ${ctx.repo})`);
    },
  },
  // GitHub's tool cache (mounted at /__t in a container job) already holds Node 20; setup-node puts it on PATH.
  'actions/setup-node@v4': {
    inputs: ['node-version'],
    run: async (ctx, given, where) => {
      const wanted = given['node-version'];
      if (wanted === undefined || !/^\d+(\.x)?$/.test(wanted))
        throw new UsageError(
          `${where}.with.node-version: the check follows a major version (20 or 20.x), not '${wanted}'`,
        );
      const major = wanted.replace('.x', '');
      if (ctx.node.version.split('.')[0] !== major)
        throw new PrivilegeError(
          `${where}: the workflow asks for Node ${major}, and this host's Node, which stands in for it, is ${ctx.node.version}`,
        );
      ctx.addPath(ctx.node.bin);
      ctx.say(`Node ${ctx.node.version} (this host's) on PATH: ${ctx.node.bin}`);
    },
  },
  'actions/upload-artifact@v4': {
    inputs: ['name', 'path', 'if-no-files-found'],
    run: async (ctx, given, where) => {
      const name = given.name ?? 'artifact';
      if (name === '' || BAD_NAME.test(name))
        throw new Error(`artifact name '${name}' is empty or holds a character upload-artifact refuses`);
      if (given.path === undefined) throw new UsageError(`${where}.with.path: missing`);
      const source = inWorkspace(ctx, given.path, `${where}.with.path`);
      const ifNone = given['if-no-files-found'] ?? 'warn';
      if (!['warn', 'error', 'ignore'].includes(ifNone))
        throw new UsageError(`${where}.with.if-no-files-found: '${ifNone}' is not warn, error or ignore`);
      const target = path.join(ctx.artifacts, name);
      if (fs.existsSync(target)) throw new Error(`an artifact named ${name} was already uploaded in this run`);
      const files = !fs.existsSync(source)
        ? 0
        : fs.statSync(source).isDirectory()
          ? copyVisible(source, target)
          : (fs.mkdirSync(target, { recursive: true }),
            fs.copyFileSync(source, path.join(target, path.basename(source))),
            1);
      if (files === 0) {
        fs.rmSync(target, { recursive: true, force: true });
        if (ifNone === 'error') throw new Error(`no files found at ${given.path}`);
        if (ifNone === 'warn') ctx.say(`warning: no files found at ${given.path}: no artifact uploaded`);
        return;
      }
      ctx.say(`artifact ${name}: ${files} files from ${given.path}`);
    },
  },
  // Without a name, each artifact matching the pattern lands in <path>/<its name>/.
  'actions/download-artifact@v4': {
    inputs: ['pattern', 'path'],
    run: async (ctx, given, where) => {
      const pattern = given.pattern ?? '*';
      const matcher = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')}$`);
      const into = inWorkspace(ctx, given.path ?? '.', `${where}.with.path`);
      const names = (fs.existsSync(ctx.artifacts) ? fs.readdirSync(ctx.artifacts) : []).filter((n) => matcher.test(n));
      for (const name of names.sort())
        fs.cpSync(path.join(ctx.artifacts, name), path.join(into, name), { recursive: true });
      ctx.say(
        names.length === 0
          ? `warning: no artifact matches ${pattern}`
          : `downloaded ${names.join(', ')} into ${given.path ?? '.'}`,
      );
    },
  },
};

/** Refuses, before anything runs, an action the check has no stand-in for, or an input it does not follow. */
export function checkStandIn(uses: string, inputs: readonly string[], where: string): void {
  const known = STAND_INS[uses];
  if (!known)
    throw new UsageError(
      `${where}.uses: the check has no stand-in for ${uses} (it knows ${Object.keys(STAND_INS).join(', ')})`,
    );
  for (const key of inputs)
    if (!known.inputs.includes(key))
      throw new UsageError(
        `${where}.with.${key}: the check's stand-in for ${uses} does not follow '${key}' (it knows ${known.inputs.join(', ') || 'no inputs'})`,
      );
}

/** Runs the stand-in for uses (checked by checkStandIn before the run). */
export function standIn(
  uses: string,
  ctx: StandInContext,
  given: Record<string, string>,
  where: string,
): Promise<void> {
  return STAND_INS[uses]!.run(ctx, given, where);
}
