import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { confidenceInterval95, latencySummary, modifiedZScores, outlierFlags, summarize } from '../../harness/stats.js';
import type { Row } from '../../harness/types.js';

const close = (actual: number, expected: number, eps = 1e-4) =>
  assert.ok(Math.abs(actual - expected) < eps, `${actual} is not within ${eps} of ${expected}`);

test('latencySummary of 1..100 uses linear interpolation (numpy default)', () => {
  // Shuffled, to show the summary sorts a copy.
  const values = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
  const us = Float64Array.from(values);
  const s = latencySummary(us);
  close(s.p50, 50.5);
  close(s.p99, 99.01);
  close(s.mean, 50.5);
  assert.equal(Array.from(us), values);
});

test('latencySummary of nothing is NaN', () => {
  const s = latencySummary(new Float64Array(0));
  assert.ok(Number.isNaN(s.p50) && Number.isNaN(s.p99) && Number.isNaN(s.mean));
});

test('confidenceInterval95 uses Student t', () => {
  // mean 14, s = sqrt(10), t(0.975, 4) = 2.7764: half-width 2.7764 * sqrt(10) / sqrt(5) = 3.9264
  const ci = confidenceInterval95([10, 12, 14, 16, 18]);
  assert.is(ci.n, 5);
  close(ci.mean, 14);
  close(ci.halfWidth, 3.9264);
  close(ci.low, 10.0736);
  close(ci.high, 17.9264);
});

test('confidenceInterval95 of one value has a mean but no interval', () => {
  const ci = confidenceInterval95([7]);
  assert.is(ci.mean, 7);
  assert.ok(Number.isNaN(ci.halfWidth) && Number.isNaN(ci.low) && Number.isNaN(ci.high));
});

test('an obvious outlier is flagged, its neighbours are not', () => {
  const values = [10, 11, 10, 12, 11, 10, 50];
  close(modifiedZScores(values)[6], 39 * 0.6745);
  assert.equal(outlierFlags(values), [false, false, false, false, false, false, true]);
});

test('zero MAD gives zero scores', () => {
  assert.equal(modifiedZScores([5, 5, 5, 9]), [0, 0, 0, 0]);
});

function row(config: string, concurrency: number, repeat: number, opsPerSec: number): Row {
  return {
    experiment: 'netns',
    config,
    concurrency,
    repeat,
    ops: opsPerSec,
    seconds: 1,
    ops_per_sec: opsPerSec,
    p50_us: 10,
    p99_us: 20,
  };
}

test('summarize groups by point in first-seen order', () => {
  const rows = [
    row('b', 1, 0, 100),
    row('a', 4, 0, 300),
    row('b', 1, 1, 102),
    row('a', 4, 1, 310),
    row('b', 1, 2, 98),
    row('a', 1, 0, 50),
    row('b', 1, 3, 101),
    row('b', 1, 4, 99),
    row('b', 1, 5, 1000),
  ];
  const summary = summarize(rows, ['ops_per_sec', 'p50_us']);
  assert.equal(
    summary.map((s) => [s.config, s.concurrency, s.repeats]),
    [
      ['b', 1, 6],
      ['a', 4, 2],
      ['a', 1, 1],
    ],
  );
  const [b, a4, a1] = summary;
  assert.is(b.outliers, 1);
  assert.is(a4.outliers, 0);
  close(b.ops_per_sec_median as number, 100.5);
  close(a4.ops_per_sec_mean as number, 305);
  close(a4.ops_per_sec_ci95_low as number, 305 - 12.7062 * 5);
  close(a4.ops_per_sec_ci95_high as number, 305 + 12.7062 * 5);
  assert.is(a1.p50_us_median, 10);
  assert.ok(Number.isNaN(a1.ops_per_sec_ci95_low as number));
});

test.run();
