// The figures page as a reader sees it: written from the committed SVGs and opened from
// file:// in a real headless Chromium (Debian's, installed by scripts/setup.sh), which must
// load it without errors or network and draw every chart.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { suite, test } from 'uvu';
import * as assert from 'uvu/assert';
import { escapeHtml, inline, writeFiguresPage, type FigureCaption } from '../../harness/figuresPage.js';

const FIGURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../figures');
const CHROMIUM = '/usr/bin/chromium';
// Without the background-networking flags Chromium dials out at start, and this machine's
// closed network refuses it.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const source = { run: 'results/netns/20261123-073841', machine: '2-vCPU Debian 12 VM', kernel: '6.18.0' };
const HOSTILE_TITLE = `Network namespaces <script>alert("x")</script> & 'quotes'`;
const CAPTIONS: FigureCaption[] = [
  {
    file: 'netns.svg',
    title: HOSTILE_TITLE,
    paper: 'peaks at **~200/s** with netns',
    ours: 'the `unshare -n` path peaks at **1,100/s**',
    sources: [source],
  },
  {
    file: 'mntns copy #2.svg',
    title: 'Mount namespaces (a file name that needs URL escaping)',
    paper: '~1500/s, falling to zero',
    ours: 'falls with host mounts',
    sources: [source, { ...source, machine: '16-core H100 host' }],
  },
  {
    file: 'storage-locks.svg',
    title: 'Storage: lock waits',
    paper: 'not measured',
    ours: 'overlayfs waits on `namespace_sem`',
    sources: [],
  },
  {
    file: 'zygote-never-drawn.svg',
    title: 'A figure no run has drawn',
    paper: '3x over lean containers',
    ours: 'not run yet',
    sources: [],
  },
];
const MISSING = CAPTIONS[3]!;

test('escapeHtml leaves nothing that HTML would read as markup', () => {
  assert.is(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

test('inline renders **bold** and `code`, and escapes everything else', () => {
  assert.is(inline('a **b** `c<d>` & e'), 'a <strong>b</strong> <code>c&lt;d&gt;</code> &amp; e');
  assert.is(inline('**bold `code` in bold**'), '<strong>bold <code>code</code> in bold</strong>');
  assert.is(inline('`a**b**c`'), '<code>a**b**c</code>', '** inside code stays literal');
  assert.is(inline('2 ** 3 and `unclosed'), '2 ** 3 and `unclosed', 'unpaired markers are text');
  assert.is(inline('**<b>**'), '<strong>&lt;b&gt;</strong>');
});

const browser = suite<{ dir: string; context?: BrowserContext; page?: Page; problems: string[]; requests: string[] }>(
  'in Chromium',
  {
    dir: '',
    problems: [],
    requests: [],
  },
);

browser.before(async (ctx) => {
  ctx.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-figpage-'));
  try {
    assert.ok(
      fs.existsSync(CHROMIUM),
      `${CHROMIUM} is missing: scripts/setup.sh installs it (apt-get install chromium)`,
    );
    const figures = path.join(ctx.dir, 'figures');
    fs.mkdirSync(figures);
    fs.copyFileSync(path.join(FIGURES, 'netns.svg'), path.join(figures, 'netns.svg'));
    fs.copyFileSync(path.join(FIGURES, 'mntns.svg'), path.join(figures, 'mntns copy #2.svg'));
    fs.copyFileSync(path.join(FIGURES, 'storage-locks.svg'), path.join(figures, 'storage-locks.svg'));
    const index = writeFiguresPage(figures, CAPTIONS, {
      title: 'sockbench figures',
      generatedFrom: 'written by `figuresPage.test`',
    });

    ctx.context = await chromium.launchPersistentContext(path.join(ctx.dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
    const page = (ctx.page = ctx.context.pages()[0] ?? (await ctx.context.newPage()));
    page.on('console', (m) => m.type() === 'error' && ctx.problems.push(`console: ${m.text()}`));
    page.on('pageerror', (e) => ctx.problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => ctx.problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('request', (r) => ctx.requests.push(r.url()));
    await page.goto(pathToFileURL(index).href, { waitUntil: 'load', timeout: 15_000 });
  } catch (e) {
    // uvu skips the after hook when before fails, and reports only skipped tests: say why and clean up here.
    console.error('figures page setup failed:', e);
    await closeAll(ctx);
    throw e;
  }
});

browser.after(closeAll);

async function closeAll(ctx: { dir: string; context?: BrowserContext }) {
  try {
    await ctx.context?.close();
  } finally {
    fs.rmSync(ctx.dir, { recursive: true, force: true });
  }
}

browser(
  'loads from file:// with no console errors, page errors, failed requests or network',
  ({ page, problems, requests }) => {
    assert.equal(problems, []);
    assert.ok(requests.length >= 4, `the page and its three figures were requested: ${requests.join(', ')}`);
    assert.equal(
      requests.filter((u) => !u.startsWith('file://')),
      [],
      'the page reaches nothing but local files',
    );
    assert.is(page!.url().startsWith('file://'), true);
  },
);

browser('text is shown as text: no injected element, bold and code rendered', async ({ page }) => {
  assert.is(await page!.locator('script').count(), 0);
  assert.is(await page!.locator('h2').first().textContent(), HOSTILE_TITLE);
  assert.is(await page!.locator('nav a').first().textContent(), HOSTILE_TITLE);
  const first = page!.locator('section').first();
  assert.equal(await first.locator('strong').allTextContents(), ['~200/s', '1,100/s']);
  assert.equal(await first.locator('dd code').allTextContents(), ['unshare -n', source.run]);
});

browser('every image is loaded and drawn at its size', async ({ page }) => {
  const images = await page!.$$eval('img', (els) =>
    els.map((img) => ({
      src: img.getAttribute('src'),
      complete: img.complete,
      width: img.naturalWidth,
      height: img.naturalHeight,
    })),
  );
  assert.equal(
    images.map((i) => i.src),
    ['netns.svg', 'mntns%20copy%20%232.svg', 'storage-locks.svg'],
  );
  for (const img of images) {
    assert.ok(img.complete && img.width > 0 && img.height > 0, `${img.src}: ${JSON.stringify(img)}`);
  }
});

browser('a caption whose figure is missing says why and points at nothing', async ({ page }) => {
  const section = page!.locator('#fig-zygote-never-drawn');
  assert.match(
    (await section.locator('.missing').textContent()) ?? '',
    `figure missing: no file ${MISSING.file} beside this page`,
  );
  assert.is(await section.locator('img').count(), 0);
  assert.is(await section.locator('h2').textContent(), MISSING.title);
  assert.is(await page!.locator('nav a').count(), CAPTIONS.length, 'the table of contents lists it too');
});

browser('each chart screenshot has drawn content, not a blank or broken image', async ({ page }) => {
  const imgs = page!.locator('figure img');
  for (let i = 0; i < (await imgs.count()); i++) {
    const png = await imgs.nth(i).screenshot();
    const s = await pixelStats(page!, png);
    const what = `${await imgs.nth(i).getAttribute('src')}: ${JSON.stringify(s)}`;
    assert.ok(s.width > 300 && s.height > 150, what);
    // A Vega chart on white: axes, grid, lines and text ink a few per cent of the pixels and
    // antialiasing gives hundreds of colours; a broken-image icon or blank box does neither.
    assert.ok(s.inked > 0.02 && s.inked < 0.9, what);
    assert.ok(s.colours > 50, what);
  }
});

browser('a full-page screenshot is a PNG of the whole page', async ({ page, dir }) => {
  const file = path.join(dir, 'page.png');
  await page!.screenshot({ path: file, fullPage: true });
  const png = fs.readFileSync(file);
  assert.equal([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  const [width, height] = [png.readUInt32BE(16), png.readUInt32BE(20)];
  const shown = await page!.evaluate(() => ({
    width: window.innerWidth,
    height: document.documentElement.scrollHeight,
  }));
  assert.equal({ width, height }, shown);
  assert.ok(height > 3 * 400, `three charts of about 400 px stack up: ${height}`);
  assert.ok(png.length > 50_000, `${png.length} bytes`);
});

browser('the committed figures/index.html loads offline and draws every figure it names', async ({ context }) => {
  const page = await context!.newPage();
  const problems: string[] = [];
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  try {
    await page.goto(pathToFileURL(path.join(FIGURES, 'index.html')).href, { waitUntil: 'load', timeout: 15_000 });
    assert.equal(problems, []);
    const sections = await page.locator('section').count();
    const imgs = page.locator('figure img');
    assert.is(await imgs.count(), sections - (await page.locator('.missing').count()));
    assert.ok(sections >= 10, `every study has a section: ${sections}`);
    for (let i = 0; i < (await imgs.count()); i++) {
      const s = await pixelStats(page, await imgs.nth(i).screenshot());
      const what = `${await imgs.nth(i).getAttribute('src')}: ${JSON.stringify(s)}`;
      assert.ok(s.inked > 0.02 && s.colours > 50, what);
    }
  } finally {
    await page.close();
  }
});

/** Decodes a PNG in the browser and measures how much of it differs from its commonest colour. */
function pixelStats(page: Page, png: Buffer) {
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const canvas = document.createElement('canvas');
    [canvas.width, canvas.height] = [img.naturalWidth, img.naturalHeight];
    const g = canvas.getContext('2d')!;
    g.drawImage(img, 0, 0);
    const data = g.getImageData(0, 0, canvas.width, canvas.height).data;
    const counts = new Map<number, number>();
    for (let i = 0; i < data.length; i += 4) {
      const rgb = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
      counts.set(rgb, (counts.get(rgb) ?? 0) + 1);
    }
    const background = Math.max(...counts.values());
    const pixels = canvas.width * canvas.height;
    return { width: canvas.width, height: canvas.height, colours: counts.size, inked: 1 - background / pixels };
  }, png.toString('base64'));
}

/** Every src and href in a page points at a file beside it, or at an id in it. */
function brokenReferences(dir: string, html: string): string[] {
  const refs = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => unescapeHtml(m[1]!));
  assert.ok(refs.length > 0, 'the page references something');
  return refs.filter((ref) => {
    if (ref.startsWith('#')) return !html.includes(` id="${escapeHtml(ref.slice(1))}"`);
    if (/^[a-z][a-z0-9+.-]*:|^\/\//i.test(ref)) return true; // the page must stand alone, offline
    return !fs.statSync(path.join(dir, decodeURIComponent(ref)), { throwIfNoEntry: false })?.isFile();
  });
}

const unescapeHtml = (s: string) =>
  s.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]!);

test('the committed figures/index.html references only files that exist', () => {
  const committed = path.join(FIGURES, 'index.html');
  assert.ok(fs.existsSync(committed), 'figures/index.html is committed (npm run sockbench -- paper-repro writes it)');
  assert.equal(brokenReferences(FIGURES, fs.readFileSync(committed, 'utf8')), []);
});

test.run();
browser.run();
