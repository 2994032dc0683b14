// Numbers as paper-repro.md prints them: rates with thousands separators, times to three
// significant figures, ratios to one decimal. A number that is not there (a column or point the
// run lacks) is never printed as a placeholder: the row says what is missing instead.
import { MissingData } from './runData.js';

function known(n: number): number {
  if (!Number.isFinite(n)) throw new MissingData('a column or point this row reads is not in the run');
  return n;
}

export function rate(n: number): string {
  return Math.round(known(n)).toLocaleString('en-US');
}

/** Three significant figures (19.0, 7.68, 129), thousands separated from 1,000 up. */
export function sig(n: number): string {
  if (Math.abs(known(n)) >= 999.5) return Math.round(n).toLocaleString('en-US');
  return n.toPrecision(3);
}

/** Three significant figures without trailing zeros (2.25, 9, 1.45), thousands separated from 1,000 up. */
export function compact(n: number): string {
  if (Math.abs(known(n)) >= 999.5) return Math.round(n).toLocaleString('en-US');
  return String(Number(n.toPrecision(3)));
}

/** Milliseconds to a fixed number of decimals, for columns the paper compares that way. */
export function fixed(n: number, decimals: number): string {
  return known(n).toFixed(decimals);
}

export function ratio(n: number): string {
  return `${known(n).toFixed(1)}x`;
}

/** "lo–hi" of some values in one format, or the one value when they round alike. */
export function range(values: number[], fmt: (n: number) => string): string {
  if (values.length === 0) known(NaN);
  const lo = fmt(known(Math.min(...values)));
  const hi = fmt(known(Math.max(...values)));
  return lo === hi ? lo : `${lo}–${hi}`;
}

/** "c=1–64" or "c=8". */
export function cRange(cs: number[]): string {
  if (cs.length === 0) known(NaN);
  return cs.length === 1 ? `c=${cs[0]}` : `c=${Math.min(...cs)}–${Math.max(...cs)}`;
}
