import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
// vega 5 and vega-lite 5 are CommonJS packages; Node's ESM loader exposes their named exports
// (checked on Node 20). Their 6.x lines are ESM-only and vega-lite 6 requires Node 22.
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from './atomic-write.js';

/**
 * Saves a Vega-Lite spec and its SVG rendering under `<outDir>/figures/`. The spec is written
 * first, with its data inline, so a figure can be restyled or re-rendered by any Vega-Lite
 * tool without rerunning the experiment, even when rendering here fails.
 */
export async function renderFigure(
  spec: object,
  outDir: string,
  name: string,
): Promise<{ vlPath: string; svgPath: string }> {
  const dir = join(outDir, 'figures');
  mkdirSync(dir, { recursive: true });
  const vlPath = join(dir, `${name}.vl.json`);
  const svgPath = join(dir, `${name}.svg`);
  writeFileAtomic(vlPath, `${JSON.stringify(spec, null, 2)}\n`);

  // renderer 'none' builds the scenegraph without a canvas, so SVG needs no native module.
  const view = new View(parse(compile(spec as TopLevelSpec).spec), { renderer: 'none' });
  try {
    writeFileAtomic(svgPath, await view.toSVG());
  } finally {
    view.finalize();
  }
  return { vlPath, svgPath };
}
