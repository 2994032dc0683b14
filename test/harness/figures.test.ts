import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { renderFigure } from '../../harness/figures.js';

test('a line chart renders to SVG beside its spec', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sockbench-fig-'));
  try {
    const spec = {
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      data: {
        values: [
          { concurrency: 1, ops_per_sec: 900, config: 'no netns' },
          { concurrency: 8, ops_per_sec: 2900, config: 'no netns' },
          { concurrency: 1, ops_per_sec: 200, config: 'netns' },
          { concurrency: 8, ops_per_sec: 400, config: 'netns' },
        ],
      },
      mark: 'line',
      encoding: {
        x: { field: 'concurrency', type: 'quantitative' },
        y: { field: 'ops_per_sec', type: 'quantitative' },
        color: { field: 'config', type: 'nominal' },
      },
    };
    const { vlPath, svgPath } = await renderFigure(spec, dir, 'netns');
    assert.is(vlPath, join(dir, 'figures', 'netns.vl.json'));
    assert.is(svgPath, join(dir, 'figures', 'netns.svg'));
    assert.equal(JSON.parse(readFileSync(vlPath, 'utf8')), spec);
    const svg = readFileSync(svgPath, 'utf8');
    assert.ok(svg.startsWith('<svg'));
    assert.ok(svg.includes('<path'));
    assert.equal(readdirSync(join(dir, 'figures')).sort(), ['netns.svg', 'netns.vl.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
