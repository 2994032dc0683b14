#!/usr/bin/env node
// sock: run the SOCK engine's worker, invoke its lambdas, and clean up after it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UsageError } from '../harness/errors.js';
import { runIfMain, wholeAtLeast } from './flags.js';
import { baseProblem, buildBase, DEFAULT_MIRROR } from '../engine/sandbox/baseRootfs.js';
import { DEFAULT_MAX_REPLY_BYTES } from '../engine/sandbox/channel.js';
import { ensureImage } from '../engine/sandbox/dockerEngine.js';
import { reclaimStateDir } from '../engine/sandbox/gc.js';
import { EngineSetupError } from '../engine/errors.js';
import { openInstallCache } from '../engine/worker/installSetup.js';
import { SockEngine } from '../engine/sandbox/sockEngine.js';
import { DEFAULT_STATE_DIR, StateDir } from '../engine/state/stateDir.js';
import { FREEZE_AFTER_MS } from '../engine/caches/handlerCache.js';
import { type BackendName, startWorkerStack } from '../engine/worker/stack.js';

/** Room for a hello and an error with a short traceback: a smaller --max-reply-bytes would refuse every sandbox. */
const MIN_REPLY_BYTES = 4096;

const say = (line: string) => process.stderr.write(`sock: ${line}\n`);

const stateDirOption = (y: Argv) =>
  y.option('state-dir', {
    type: 'string',
    default: process.env.SOCK_STATE_DIR ?? DEFAULT_STATE_DIR,
    defaultDescription: `$SOCK_STATE_DIR or ${DEFAULT_STATE_DIR}`,
    describe: "the engine's state directory (sandbox roots, code snapshots, base)",
  });

const baseOption = (y: Argv) =>
  y.option('base', {
    type: 'string',
    describe: `base root file system [default: $SOCK_BASE, else <state-dir>/base, else ${DEFAULT_STATE_DIR}/base (where setup builds it) when <state-dir> has none]`,
  });

/**
 * --base, $SOCK_BASE or <state-dir>/base. A new --state-dir has no base of its own: to use one
 * (not to build one) the base setup built in the default state directory is found there.
 */
function baseOf(args: Record<string, unknown>, toBuild = false): string {
  const given = args.base ?? process.env.SOCK_BASE;
  if (given !== undefined) return path.resolve(String(given));
  const own = path.resolve(new StateDir(String(args['state-dir'])).defaultBase);
  if (toBuild || !baseProblem(own)) return own;
  const setupBuilt = new StateDir(DEFAULT_STATE_DIR).defaultBase;
  return baseProblem(setupBuilt) ? own : setupBuilt;
}

/** Where to reach the worker: --port/--host, else what the worker of --state-dir wrote, else 127.0.0.1:5000. */
function workerUrl(args: Record<string, unknown>): string {
  let port = args.port as number | undefined;
  let host = args.host as string | undefined;
  if (port === undefined) {
    try {
      const written = JSON.parse(fs.readFileSync(new StateDir(String(args['state-dir'])).workerFile, 'utf8')) as {
        port: number;
        host: string;
      };
      port = written.port;
      host ??= written.host;
    } catch {
      port = 5000;
    }
  }
  return `http://${host ?? '127.0.0.1'}:${wholeAtLeast('port', port, 1)}`;
}

const clientOptions = (y: Argv) =>
  stateDirOption(y)
    .option('port', {
      type: 'number',
      describe: "the worker's port [default: the one the worker of --state-dir listens on, else 5000]",
    })
    .option('host', { type: 'string', describe: "the worker's address [default: 127.0.0.1]" });

async function request(url: string, init?: RequestInit): Promise<{ status: number; body: unknown; text: string }> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new EngineSetupError(
      `no worker answers at ${new URL(url).origin} (${(e as { cause?: Error }).cause?.message ?? (e as Error).message}); start one with \`sock worker up\``,
    );
  }
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text), text };
  } catch {
    return { status: res.status, body: text, text };
  }
}

async function workerUp(args: Record<string, unknown>): Promise<number> {
  const registryDir = path.resolve(String(args.registry));
  if (!fs.existsSync(registryDir) || !fs.statSync(registryDir).isDirectory())
    throw new UsageError(`--registry: ${registryDir} is not a directory`);
  const port = wholeAtLeast('port', args.port, 0);
  const capacity = wholeAtLeast('max-sandboxes', args['max-sandboxes'], 1);
  const cgroupVersion = args['cgroup-version'] === 'auto' ? undefined : (Number(args['cgroup-version']) as 1 | 2);
  const sock = args.backend === 'sock';
  if (!sock && args.zygotes === 'on')
    throw new UsageError(`--zygotes on: zygotes are the SOCK backend's; --backend ${args.backend} has none`);
  if (!sock && args.seccomp === false)
    throw new UsageError(
      `--no-seccomp: the filter is the SOCK backend's; --backend ${args.backend} uses Docker's own profile`,
    );
  const zygotes = sock && args.zygotes !== 'off';
  const handlerCacheOn = args['handler-cache'] !== 'off';
  const maxIdle = wholeAtLeast('handler-cache-size', args['handler-cache-size'], 1);
  const maxZygotes = wholeAtLeast('max-zygotes', args['max-zygotes'], 0);
  const threshold = wholeAtLeast('zygote-threshold', args['zygote-threshold'], 1);
  const zygoteBudget = wholeAtLeast('zygote-budget-mb', args['zygote-budget-mb'], 1) * 2 ** 20;
  const handlerBudget = wholeAtLeast('handler-cache-mb', args['handler-cache-mb'], 1) * 2 ** 20;
  const freezeAfterMs = wholeAtLeast('freeze-after-ms', args['freeze-after-ms'], 0);
  const timeoutMs = wholeAtLeast('timeout', args.timeout, 1);
  const queueLimit = wholeAtLeast('queue-limit', args['queue-limit'], 0);
  if (args.installer !== 'pip' && (args['pip-index-url'] !== undefined || args['pip-find-links'] !== undefined))
    throw new UsageError('--pip-index-url and --pip-find-links go with --installer pip');
  if (args.installer === 'pip' && args['pip-index-url'] === undefined && args['pip-find-links'] === undefined)
    throw new UsageError('--installer pip needs --pip-index-url or --pip-find-links (where pip finds packages)');
  const { engine, handlerCache, installCache, worker } = await startWorkerStack({
    backend: args.backend as BackendName,
    stateDir: String(args['state-dir']),
    base: baseOf(args),
    registry: registryDir,
    capacity,
    limits: {
      memoryBytes: wholeAtLeast('memory-mb', args['memory-mb'], 8) * 2 ** 20,
      pids: wholeAtLeast('pids', args.pids, 4),
      cpuShares: wholeAtLeast('cpu-shares', args['cpu-shares'], 2),
    },
    // A sandbox's hello, or an error with its traceback, must fit.
    maxReplyBytes: wholeAtLeast('max-reply-bytes', args['max-reply-bytes'], MIN_REPLY_BYTES),
    cgroupVersion,
    seccomp: args.seccomp !== false,
    zygotes: zygotes ? { threshold, budgetBytes: zygoteBudget, maxZygotes } : undefined,
    handlerCache: handlerCacheOn ? { maxIdle, budgetBytes: handlerBudget, freezeAfterMs } : undefined,
    installCache:
      args.installer === 'off'
        ? undefined
        : () =>
            openInstallCache({
              installer: args.installer as 'debian' | 'pip',
              stateDir: String(args['state-dir']),
              base: baseOf(args),
              pipIndexUrl: args['pip-index-url'] as string | undefined,
              pipFindLinks: (args['pip-find-links'] as string[] | undefined)?.map((l) =>
                /^\w+:\/\//.test(l) ? l : path.resolve(l),
              ),
              log: say,
            }),
    timeoutMs,
    queueLimit,
    outbound: args.outbound !== false,
    log: say,
  });
  let address;
  try {
    address = await worker.listen(port, String(args.host));
  } catch (e) {
    await engine.shutdown();
    throw new EngineSetupError(`cannot listen on ${args.host}:${port}: ${(e as Error).message}`);
  }
  fs.writeFileSync(
    engine.state.workerFile,
    JSON.stringify({ pid: process.pid, host: address.address, port: address.port }),
  );
  const described =
    engine instanceof SockEngine
      ? `sock, cgroup v${engine.pool.hierarchy.version} pool in ${engine.status().cgroupParent as string}`
      : `${engine.name}, image ${engine.image}`;
  const caches = `caches: install ${installCache ? String(args.installer) : 'off'}, import ${zygotes ? 'zygotes' : 'off'}, handler ${handlerCache ? `${maxIdle} idle` : 'off'}`;
  // The handlers go in before the line that says the worker is up: a caller that signals the
  // moment it reads that line would otherwise find Node's default action, and no cleanup.
  const stopped = new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        say(`${signal} again: exiting now; the next start removes what is left`);
        process.exit(1);
      }
      stopping = true;
      say(`${signal}: destroying sandboxes and shutting down`);
      worker.close().then(
        () => resolve(0),
        (e) => {
          say(`shutdown failed: ${(e as Error).message}`);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
  say(
    `worker listening on http://${address.address}:${address.port} (registry ${registryDir}, state ${engine.state.root}, ${described}, ${capacity} sandboxes at once; ${caches})`,
  );
  return stopped;
}

/** POSTs the event (none: an empty body, which a handler gets as {}) and prints the answer's bytes as they came. */
async function invoke(args: Record<string, unknown>): Promise<number> {
  const body = args.event === undefined ? '' : String(args.event);
  try {
    if (body !== '') JSON.parse(body);
  } catch (e) {
    throw new UsageError(`event: '${body}' is not JSON (${(e as Error).message})`);
  }
  const {
    status,
    body: answer,
    text,
  } = await request(`${workerUrl(args)}/run/${encodeURIComponent(String(args.lambda))}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  if (status >= 200 && status < 300) {
    process.stdout.write(`${text}\n`);
    return 0;
  }
  const error =
    typeof answer === 'object' && answer && 'error' in answer
      ? String((answer as { error: unknown }).error)
      : String(answer);
  process.stderr.write(`sock: ${args.lambda}: HTTP ${status}: ${error}\n`);
  return 1;
}

async function status(args: Record<string, unknown>): Promise<number> {
  const { status: code, body } = await request(`${workerUrl(args)}/status`);
  process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  return code === 200 ? 0 : 1;
}

/** Removes what a crashed engine left under --state-dir (mounts, sandbox directories, its cgroups, containers and processes). */
async function gc(args: Record<string, unknown>): Promise<number> {
  if (process.getuid?.() !== 0) throw new EngineSetupError('sock gc must run as root', 3);
  const dir = String(args['state-dir']);
  if (!fs.existsSync(dir)) {
    say(`${dir} does not exist: nothing to remove`);
    return 0;
  }
  const removed = await reclaimStateDir(dir);
  say(removed.length > 0 ? `removed ${removed.join('; ')}` : `nothing left behind in ${path.resolve(dir)}`);
  return 0;
}

async function dockerImage(args: Record<string, unknown>): Promise<number> {
  const image = await ensureImage(baseOf(args), say);
  say(`${image} is the Docker baseline's image`);
  return 0;
}

async function base(args: Record<string, unknown>, build: boolean): Promise<number> {
  const dir = baseOf(args, build);
  if (!build) {
    const problem = baseProblem(dir);
    say(problem ?? `${dir} is a complete base`);
    return problem ? 3 : 0;
  }
  if (process.getuid?.() !== 0) throw new EngineSetupError('building the base needs root (debootstrap)', 3);
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  await buildBase(dir, say, String(args.mirror));
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const action = (fn: (args: Record<string, unknown>) => Promise<number>) => async (args: Record<string, unknown>) => {
    exitCode = await fn(args);
  };
  const parser = yargs(argv)
    .scriptName('sock')
    .usage('$0 <command>\n\nThe SOCK engine: lean containers that run Python handlers f(event) behind an HTTP worker.')
    .command('worker', 'run the HTTP worker', (y) =>
      y
        .command(
          'up',
          'serve /run/<lambda>[/<path>] (OpenLambda style), GET /status and GET /metrics in the foreground until SIGINT or SIGTERM',
          (w) =>
            baseOption(stateDirOption(w))
              .option('registry', {
                type: 'string',
                demandOption: true,
                describe:
                  "the lambdas: <name>/ or <name>.tar.gz, each holding f.py (or an ol.yaml naming its entry, or the SOCK paper's lambda_func.py), optionally requirements.txt and sock.json",
              })
              .option('port', {
                type: 'number',
                default: 5000,
                describe: 'TCP port (0: any free port, printed at start)',
              })
              .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on' })
              .option('max-sandboxes', {
                type: 'number',
                default: Math.max(4, 2 * os.availableParallelism()),
                describe: 'sandboxes alive at once (the cgroup pool); more requests wait',
              })
              .option('queue-limit', {
                type: 'number',
                default: 1024,
                describe: 'requests that may wait for a sandbox; beyond it the worker answers 503',
              })
              .option('timeout', {
                type: 'number',
                default: 30000,
                describe: 'per-invocation limit in ms; past it the sandbox is killed and the caller gets 504',
              })
              .option('max-reply-bytes', {
                type: 'number',
                default: DEFAULT_MAX_REPLY_BYTES,
                describe:
                  'longest answer body a handler may send (its line to the worker, in base64 with headers, is bounded to match); past it the sandbox is destroyed and the caller gets 502',
              })
              .option('memory-mb', { type: 'number', default: 256, describe: 'memory limit of each sandbox' })
              .option('pids', { type: 'number', default: 256, describe: 'task limit of each sandbox' })
              .option('cpu-shares', {
                type: 'number',
                default: 512,
                describe: 'CPU share of each sandbox (v1 cpu.shares; v2 gets the matching cpu.weight)',
              })
              .option('cgroup-version', {
                choices: ['auto', '1', '2'],
                default: 'auto',
                describe: 'cgroup hierarchy for the pool (sock backend)',
              })
              .option('backend', {
                choices: ['sock', 'docker', 'docker-netnone'],
                default: 'sock',
                describe:
                  'how sandboxes are made: SOCK lean containers, or Docker containers (bridge network, or --network none)',
              })
              .option('installer', {
                choices: ['debian', 'pip', 'off'],
                default: 'debian',
                describe:
                  "install cache: how requirements.txt is installed (once, into <state-dir>/packages): Debian's python3-* packages, or pip against --pip-index-url / --pip-find-links; off answers 501",
              })
              .option('pip-index-url', { type: 'string', describe: 'package index for --installer pip' })
              .option('pip-find-links', {
                type: 'array',
                string: true,
                describe:
                  'wheel directories or URLs for --installer pip (with no --pip-index-url, only these are used)',
              })
              .option('zygotes', {
                choices: ['on', 'off'],
                describe:
                  'import cache: fork handlers from zygotes that have imported their packages [default: on with --backend sock]',
              })
              .option('zygote-threshold', {
                type: 'number',
                default: 2,
                describe: 'a package set gets its own zygote once this many sandboxes have asked for it',
              })
              .option('zygote-budget-mb', {
                type: 'number',
                default: 512,
                describe: 'memory the zygotes may hold together (sum of PSS); the least asked-for per byte are evicted',
              })
              .option('max-zygotes', {
                type: 'number',
                default: 16,
                describe: 'zygotes besides the root (each holds a pooled cgroup)',
              })
              .option('handler-cache', {
                choices: ['on', 'off'],
                default: 'on',
                describe: "keep instances that answered frozen, for their lambda version's next request",
              })
              .option('handler-cache-size', {
                type: 'number',
                default: 16,
                describe: 'instances kept at most (least recently used evicted first)',
              })
              .option('freeze-after-ms', {
                type: 'number',
                default: FREEZE_AFTER_MS,
                describe:
                  'a kept instance is frozen once idle this long (a request sooner gets it with no freeze or thaw); 0 freezes at once',
              })
              .option('handler-cache-mb', {
                type: 'number',
                default: 1024,
                describe: 'memory the frozen instances may hold together',
              })
              .option('outbound', {
                type: 'boolean',
                default: true,
                describe:
                  'let a lambda whose sock.json says {"network": "outbound"} open connections beyond its sandbox (never to the host\'s loopback); --no-outbound answers such a lambda 403. Other sandboxes have loopback only',
              })
              .option('seccomp', {
                type: 'boolean',
                default: true,
                describe:
                  'sock backend: every sandbox under the seccomp filter of engine/isolation/seccomp/profile.json; --no-seccomp is for measuring its cost only',
              })
              .strict(),
          action(workerUp),
        )
        .demandCommand(1, 'name a worker command: up'),
    )
    .command(
      'invoke <lambda> [event]',
      'POST an event to a lambda through the worker and print its answer as it came',
      (y) =>
        clientOptions(y)
          .positional('lambda', { type: 'string', describe: "the lambda's name (its directory in the registry)" })
          .positional('event', {
            type: 'string',
            describe: 'the event, as JSON [default: none, which the handler gets as {}]',
          })
          .strict(),
      action(invoke),
    )
    .command(
      'status',
      "print the worker's sandboxes, memory and cache state",
      (y) => clientOptions(y).strict(),
      action(status),
    )
    .command(
      'gc',
      'remove what a crashed worker left in --state-dir (refused while a worker runs there)',
      (y) => stateDirOption(y).strict(),
      action(gc),
    )
    .command('base', 'the base root file system sandboxes are stitched on', (y) =>
      y
        .command(
          'build',
          'build it with debootstrap (about a minute; does nothing if it is complete)',
          (b) =>
            baseOption(stateDirOption(b))
              .option('mirror', {
                type: 'string',
                default: process.env.SOCK_DEBIAN_MIRROR ?? DEFAULT_MIRROR,
                describe: 'Debian mirror [$SOCK_DEBIAN_MIRROR]',
              })
              .strict(),
          action((a) => base(a, true)),
        )
        .command(
          'check',
          'exit 0 if it is complete, 3 (saying why) if not',
          (b) => baseOption(stateDirOption(b)).strict(),
          action((a) => base(a, false)),
        )
        .command(
          'docker-image',
          "import it into Docker as the baseline's image (docker import, once)",
          (b) => baseOption(stateDirOption(b)).strict(),
          action(dockerImage),
        )
        .demandCommand(1, 'name a base command: build, check or docker-image'),
    )
    .demandCommand(1, 'name a command: worker up, invoke, status, gc or base')
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      throw err ?? new UsageError(msg ?? 'bad usage');
    });
  try {
    await parser.parseAsync();
  } catch (e) {
    if (e instanceof UsageError) {
      say(`${e.message} (see sock --help)`);
      return 2;
    }
    if (e instanceof EngineSetupError) {
      say(e.message);
      return e.exitCode;
    }
    say(`error: ${(e as Error).stack ?? e}`);
    return 1;
  }
  return exitCode;
}

runIfMain(import.meta.url, 'sock', () => main(hideBin(process.argv)));
