// The paper's image-resizing case study (section 6.2): a handler that shrinks a photo with
// Pillow, read from local disk (the paper fetched from S3 and left that time out). Each request
// is timed end to end over the worker and split into compute (what the handler itself measured:
// open, resize, save) and platform (everything else: making or thawing the sandbox, starting
// Python, importing Pillow, the worker); sandbox_ms is the part of platform the worker spent
// getting the sandbox (making, forking or thawing it). Three states of the caches:
//   cold    the handler's first run: Pillow is installed, nothing is imported, no zygote has it
//           (a lean container: Python starts and imports Pillow)
//   cold+   another handler used Pillow recently, so a zygote has imported it: this handler's
//           sandbox is a fork of that zygote (handler cache off, so every request is one)
//   warm    the handler cache holds a frozen instance of this handler: thawed and run
import fs from 'node:fs';
import path from 'node:path';
import { median } from 'simple-statistics';
import type { Argv } from 'yargs';
import type { InstallCache } from '../../engine/caches/installCache.js';
import { UsageError } from '../../harness/errors.js';
import { removeOwnedDir } from '../../harness/ownedDirs.js';
import type { Experiment, Measurement, Point, RunContext, Row } from '../../harness/types.js';
import { parseConfigList } from '../configList.js';
import {
  installFirst,
  openStudyDir,
  preflightCacheStudy,
  repeatForPoint,
  type StudyWorker,
  StudyWorkers,
  writeLambda,
} from '../studyWorker.js';
import { resizeFigure } from './figure.js';
import { paper } from './paper.js';

const KIND = 'resize';
export const CONFIGS = ['cold', 'cold+', 'warm'];
const EXPECTED_START: Record<string, string> = { cold: 'lean', 'cold+': 'zygote:pillow', warm: 'warm' };

const RESIZE = `import time
from PIL import Image


def f(event):
    t = time.perf_counter()
    with Image.open("/handler/photo.jpg") as image:
        image.thumbnail((event["width"], event["width"]))
        image.save("/tmp/thumbnail.jpg", "JPEG", quality=85)
        size = image.size
    return {"compute_ms": (time.perf_counter() - t) * 1000, "size": size}
`;

/** Another handler that uses Pillow: what leaves a zygote with Pillow behind for cold+. */
const OTHER = 'from PIL import Image\n\n\ndef f(event):\n    return Image.new("RGB", (8, 8)).size\n';

/** The photo: a fractal rendered and JPEG-encoded by Pillow itself, in a sandbox (no image ships with the project). */
const MAKE_PHOTO = `import base64, io
from PIL import Image


def f(event):
    w, h = event["size"]
    image = Image.merge("RGB", [Image.effect_mandelbrot((w, h), (-2.2, -1.2, 1.0, 1.2), n).resize((w, h)) for n in (40, 80, 160)])
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return base64.b64encode(out.getvalue()).decode()
`;

let dir: string | undefined;
let installCache: InstallCache | undefined;
let workers: StudyWorkers | undefined;

/** A fresh worker per point: what one configuration's caches hold must not leak into another's. */
function startWorker(config: string): Promise<StudyWorker> {
  return workers!.get(
    config,
    {
      zygotes: config === 'cold' ? undefined : { threshold: 1, budgetBytes: 2 ** 31, maxZygotes: 4 },
      handlerCache: config === 'warm' ? { maxIdle: 2, budgetBytes: 2 ** 31 } : undefined,
    },
    { fresh: true },
  );
}

export const resize: Experiment = {
  name: KIND,
  summary:
    'image resizing with Pillow: platform and compute time, cold, cold+ (a zygote has Pillow) and warm (handler cache)',
  paper,
  defaults: { concurrency: [1], duration: 8, repeat: 3, warmup: 0 },
  quick: { concurrency: [1], duration: 3, repeat: 1, warmup: 0 },

  options(argv: Argv): Argv {
    return argv
      .option('configs', {
        type: 'string',
        default: CONFIGS.join(','),
        describe: `comma-separated among ${CONFIGS.join(', ')}`,
      })
      .option('photo-size', {
        type: 'string',
        default: '1920x1080',
        describe: 'width x height of the photo the handler shrinks',
      })
      .option('thumbnail', { type: 'number', default: 256, describe: "the thumbnail's longest side, in pixels" })
      .option('base', {
        type: 'string',
        describe: 'base root file system [default: $SOCK_BASE or /var/lib/sockbench/base]',
      });
  },

  configs(options) {
    photoSize(options);
    return parseConfigList(options.configs, CONFIGS);
  },

  async preflight(options) {
    preflightCacheStudy(KIND, options);
  },

  async setup(ctx: RunContext) {
    ({ dir, installCache } = await openStudyDir(KIND, ctx, ['state']));
    workers = new StudyWorkers(dir, installCache, ctx.options);
    await installFirst(KIND, ctx, installCache, ['Pillow']);
    const registry = path.join(dir, 'registry');
    writeLambda(registry, 'make-photo', MAKE_PHOTO, ['Pillow']);
    const worker = await startWorker('cold');
    const photo = Buffer.from(
      String((await worker.run('make-photo', { size: photoSize(ctx.options) })).result),
      'base64',
    );
    await workers.stop();
    writeLambda(registry, 'resize', RESIZE, ['Pillow']);
    fs.writeFileSync(path.join(registry, 'resize', 'photo.jpg'), photo, { mode: 0o644 });
    writeLambda(registry, 'other-pillow', OTHER, ['Pillow']);
    ctx.notes.photo = { size: photoSize(ctx.options), bytes: photo.length, thumbnail: Number(ctx.options.thumbnail) };
  },

  async teardown() {
    try {
      await workers!.stop();
    } finally {
      if (dir) removeOwnedDir(dir);
      dir = undefined;
      installCache = undefined;
      workers = undefined;
    }
  },

  async measure(point: Point, ctx: RunContext): Promise<Measurement> {
    const worker = await startWorker(point.config);
    const event = { width: Number(ctx.options.thumbnail) };
    // What the state needs before its requests: cold+ a zygote with Pillow, left by another
    // handler; warm this handler's instance, frozen in the handler cache.
    if (point.config === 'cold+') await worker.run('other-pillow');
    if (point.config === 'warm') await worker.run('resize', event);
    await worker.settle();
    const latenciesUs: number[] = [];
    const computeMs: number[] = [];
    const sandboxMs: number[] = [];
    const seconds = await repeatForPoint(point, ctx.signal, async () => {
      const answer = await worker.run('resize', event);
      if (answer.start !== EXPECTED_START[point.config])
        throw new Error(`${point.config}: a request started as ${answer.start}, not ${EXPECTED_START[point.config]}`);
      latenciesUs.push(answer.ms * 1000);
      computeMs.push((answer.result as { compute_ms: number }).compute_ms);
      sandboxMs.push(answer.timing.sandbox ?? NaN);
      await worker.settle();
    });
    const platformMs = latenciesUs.map((us, i) => us / 1000 - computeMs[i]!);
    return {
      ops: latenciesUs.length,
      seconds,
      latenciesUs: Float64Array.from(latenciesUs),
      extra: { platform_ms: median(platformMs), compute_ms: median(computeMs), sandbox_ms: median(sandboxMs) },
    };
  },

  figure(rows: Row[]) {
    return resizeFigure(rows);
  },
};

function photoSize(options: Record<string, unknown>): [number, number] {
  const m = /^(\d+)x(\d+)$/.exec(String(options['photo-size']));
  const [w, h] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!(w >= 16 && h >= 16 && w <= 8000 && h <= 8000))
    throw new UsageError(`--photo-size: '${options['photo-size']}' is not WIDTHxHEIGHT between 16 and 8000`);
  const t = Number(options.thumbnail);
  if (!Number.isInteger(t) || t < 8)
    throw new UsageError(`--thumbnail: '${options.thumbnail}' is not a whole number >= 8`);
  return [w, h];
}
