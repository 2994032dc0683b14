// figures/index.html: every figure with what the paper found, what we found, and where our
// numbers came from, readable offline in any browser.
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from './atomic-write.js';

export interface FigureCaption {
  /**
   * The figure's file, relative to the figures directory: 'netns.svg', or a run's own figure
   * such as '../results/netns/<run>/netns.svg' (anywhere under the directory holding figures/).
   */
  file: string;
  /** Why there is no figure to show (its study was not run), when there is none. */
  missing?: string;
  title: string;
  /** What the paper found. */
  paper: string;
  /** What we found. */
  ours: string;
  sources: { run: string; machine: string; kernel: string }[];
}

/**
 * Writes `<figuresDir>/index.html` and returns its path. Figures are referenced with <img>
 * rather than inlined: Vega's SVGs reuse element ids (clip paths), which would collide in one
 * document. Each links to its SVG, since the wide lock figures shrink to fit the window.
 * The page carries no date, so regenerating it unchanged leaves the file unchanged.
 */
export function writeFiguresPage(
  figuresDir: string,
  captions: FigureCaption[],
  options: { title?: string; generatedFrom?: string } = {},
): string {
  const title = options.title ?? 'sockbench figures';
  const ids = sectionIds(captions);
  const toc = captions.map((c, i) => `<li><a href="#${ids[i]}">${inline(c.title)}</a></li>`).join('\n');
  const body = [
    `<h1>${escapeHtml(title)}</h1>`,
    options.generatedFrom ? `<p class="from">${inline(options.generatedFrom)}</p>` : '',
    captions.length > 0 ? `<nav><ol>\n${toc}\n</ol></nav>` : '<p>No figures.</p>',
    ...captions.map((c, i) => section(figuresDir, c, ids[i]!)),
  ].filter(Boolean);
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
${body.join('\n')}
</body>
</html>
`;
  const out = path.join(figuresDir, 'index.html');
  writeFileAtomic(out, html);
  return out;
}

const STYLE = `
body { font: 16px/1.5 system-ui, sans-serif; margin: 2rem; color: #222; }
h1, .from, nav, h2, figcaption, .missing { max-width: 62rem; }
h1 { margin-bottom: .25rem; }
.from { color: #666; margin-top: 0; }
section { border-top: 1px solid #ddd; margin-top: 2rem; padding-top: 1rem; }
figure { margin: 0; }
img { display: block; max-width: 100%; height: auto; }
.missing { padding: 2rem; background: #fff4f4; border: 1px dashed #c66; color: #933; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: bold; }
dd { margin: 0; }
dd ul { margin: 0; padding-left: 1.2em; }
code { font: .9em ui-monospace, monospace; background: #f4f4f4; padding: 0 .2em; }
`.trim();

function section(figuresDir: string, c: FigureCaption, id: string): string {
  const why = c.missing ?? missingReason(figuresDir, c.file);
  const url = escapeHtml(fileUrl(c.file));
  const picture = why
    ? `<p class="missing">figure missing: ${escapeHtml(why)}</p>`
    : `<a href="${url}"><img src="${url}" alt="${escapeHtml(`${plain(c.title)} (${c.file})`)}"></a>`;
  const sources =
    c.sources.length === 0
      ? 'not recorded'
      : `<ul>${c.sources.map((s) => `<li><code>${escapeHtml(s.run)}</code> on ${escapeHtml(s.machine)}, kernel ${escapeHtml(s.kernel)}</li>`).join('')}</ul>`;
  return `<section id="${id}">
<h2>${inline(c.title)}</h2>
<figure>
${picture}
<figcaption><dl>
<dt>Paper</dt><dd>${inline(c.paper)}</dd>
<dt>Ours</dt><dd>${inline(c.ours)}</dd>
<dt>Runs</dt><dd>${sources}</dd>
</dl></figcaption>
</figure>
</section>`;
}

/** Why a figure cannot be shown, or undefined when it can. */
function missingReason(figuresDir: string, file: string): string | undefined {
  const full = path.resolve(figuresDir, file);
  // The page may show a run's own figure from results/, never a file outside the output directory.
  const rel = path.relative(path.dirname(figuresDir), full);
  if (path.isAbsolute(file) || rel === '..' || rel.startsWith(`..${path.sep}`))
    return `${file} is not inside the output directory`;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(full);
  } catch {
    return `no file ${file} beside this page`;
  }
  if (!stat.isFile()) return `${file} is not a file`;
  if (stat.size === 0) return `${file} is empty`;
  return undefined;
}

/** A relative URL for a file name that may hold spaces, '#' or '?'. */
const fileUrl = (file: string) => file.split('/').map(encodeURIComponent).join('/');

/** Anchors derived from the file name, so links to a figure survive reordering the page. */
function sectionIds(captions: FigureCaption[]): string[] {
  const seen = new Map<string, number>();
  return captions.map((c) => {
    const base = `fig-${
      path
        .basename(c.file)
        .replace(/\.[^.]*$/, '')
        .replace(/[^A-Za-z0-9_-]+/g, '-') || 'figure'
    }`;
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return n === 1 ? base : `${base}-${n}`;
  });
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Safe in element content and in quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ENTITIES[ch]!);
}

/**
 * Caption text with `code` and **bold** rendered and everything else escaped. Code spans are
 * cut out first, as in Markdown, so `**` inside one stays literal, and a bold run may hold code.
 * An unpaired ` or ** is shown as typed.
 */
export function inline(text: string): string {
  const parts = text.split(/(`[^`]+`)/);
  const markers = parts.reduce((n, p, i) => (i % 2 === 0 ? n + p.split('**').length - 1 : n), 0);
  let toggles = markers - (markers % 2);
  let bold = false;
  return parts
    .map((p, i) => {
      if (i % 2 === 1) return `<code>${escapeHtml(p.slice(1, -1))}</code>`;
      return p
        .split('**')
        .map((s, j) => {
          if (j === 0) return escapeHtml(s);
          if (toggles === 0) return `**${escapeHtml(s)}`;
          toggles--;
          bold = !bold;
          return `${bold ? '<strong>' : '</strong>'}${escapeHtml(s)}`;
        })
        .join('');
    })
    .join('');
}

/** A caption's text without its markup, for alt attributes. */
const plain = (text: string) => text.replace(/\*\*|`/g, '');
