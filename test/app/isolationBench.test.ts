// npm run bench:isolation as a user runs it: bad input is refused in one line, and a short real
// run writes every variant's and start's samples, a summary with each protection's cost, and
// meta.json, and leaves no engine behind.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'csv-parse/sync';
import { scratchDir } from '../helpers/helpers.js';

const BENCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../app/bench/isolation.js');

function bench(
  args: string[],
  user: { uid?: number; gid?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BENCH, ...args], user, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

for (const [flags, mention] of [
  [['--rounds', '1'], '--rounds'],
  [['--gap', '-1'], '--gap'],
  [['--bogus'], 'bogus'],
  [['--starts', 'bogus'], 'Choices'],
] as const) {
  test(`bench:isolation ${flags.join(' ')}: exit 2, one line naming ${mention}`, async () => {
    const r = await bench([...flags]);
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, mention);
  });
}

test('bench:isolation as a user who is not root: exit 3, one line', async () => {
  const r = await bench(['--quick'], { uid: 65534, gid: 65534 });
  assert.is(r.code, 3, r.stderr);
  assert.is(r.stderr.trim(), 'bench:isolation: run as root: it starts SOCK engines');
});

test("bench:isolation: a short run times every variant's lean, zygote and warm start, and the network namespace choices", async () => {
  const out = scratchDir();
  try {
    const r = await bench(['--rounds', '2', '--warmup', '0', '--gap', '0', '--out', out]);
    assert.is(r.code, 0, r.stderr);
    const runs = fs.readdirSync(path.join(out, 'results', 'isolation-overhead'));
    assert.is(runs.length, 1);
    const dir = path.join(out, 'results', 'isolation-overhead', runs[0]!);
    const summary = parse(fs.readFileSync(path.join(dir, 'summary.csv')), { columns: true }) as Record<
      string,
      string
    >[];
    const keys = summary.map((s) => `${s.variant} ${s.start}`).sort();
    for (const variant of ['full', 'no-terminal', 'no-network', 'no-userns', 'no-seccomp', 'none']) {
      for (const start of ['lean', 'zygote', 'warm'])
        assert.ok(keys.includes(`${variant} ${start}`), `${variant} ${start}`);
    }
    for (const mode of ['plain', 'clone-newnet', 'setns-pooled', 'create'])
      assert.ok(keys.includes(`kernel netns:${mode}`), mode);
    for (const s of summary) assert.is(Number(s.n), 2, `${s.variant} ${s.start}`);
    assert.ok(
      summary.filter((s) => s.variant === 'none').every((s) => Number(s.full_over_this) > 0),
      'the whole cost, as a ratio',
    );
    assert.is(JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')).status, 'complete');
    assert.match(r.stdout, 'full / no-<p> is what protection p costs');
    assert.not.match(fs.readFileSync('/proc/self/mountinfo', 'utf8'), 'sockbench-isolation-', 'no mount left');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test.run();
