import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readCsv, writeCsv } from '../../harness/csv.js';

let dir = '';
test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'sockbench-csv-'));
});
test.after.each(() => {
  rmSync(dir, { recursive: true, force: true });
});

test('rows round-trip, NaN as an empty cell', () => {
  const path = join(dir, 'data.csv');
  const rows = [
    { experiment: 'netns', config: 'ipc+net, "five"', concurrency: 64, ops_per_sec: 1234.5678, tiny: 1e-7 },
    { experiment: 'netns', config: 'plain', concurrency: 1, ops_per_sec: NaN, tiny: -2, note: 'late key' },
  ];
  writeCsv(path, rows);
  assert.equal(readdirSync(dir), ['data.csv']);
  const text = readFileSync(path, 'utf8');
  assert.ok(text.startsWith('experiment,config,concurrency,ops_per_sec,tiny,note\n'));
  assert.ok(text.includes(',1,,-2,late key\n'));

  const back = readCsv(path);
  assert.is(back.length, 2);
  assert.equal(back[0], { ...rows[0], note: '' });
  assert.equal({ ...back[1], ops_per_sec: 0 }, { ...rows[1], ops_per_sec: 0 });
  assert.ok(Number.isNaN(back[1].ops_per_sec));
});

test('explicit columns choose and order the output; zero rows still get a header', () => {
  const path = join(dir, 'summary.csv');
  writeCsv(path, [{ a: 1, b: 'x', c: 3 }], ['c', 'a']);
  assert.is(readFileSync(path, 'utf8'), 'c,a\n3,1\n');
  writeCsv(path, [], ['c', 'a']);
  assert.is(readFileSync(path, 'utf8'), 'c,a\n');
  assert.equal(readCsv(path), []);
  assert.equal(readdirSync(dir), ['summary.csv']);
});

test.run();
