// Numbers as paper-repro.md prints them: rates with thousands separators, times to three
// significant figures, ratios to one decimal.

export function rate(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '?';
}

/** Three significant figures (19.0, 7.68, 129), thousands separated from 1,000 up. */
export function sig(n: number): string {
  if (!Number.isFinite(n)) return '?';
  if (Math.abs(n) >= 999.5) return Math.round(n).toLocaleString('en-US');
  return n.toPrecision(3);
}

/** Milliseconds to a fixed number of decimals, for columns the paper compares that way. */
export function fixed(n: number, decimals: number): string {
  return Number.isFinite(n) ? n.toFixed(decimals) : '?';
}

export function ratio(n: number): string {
  return Number.isFinite(n) ? `${n.toFixed(1)}x` : '?';
}

/** "lo–hi" of some values in one format, or the one value when they round alike. */
export function range(values: number[], fmt: (n: number) => string): string {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return '?';
  const lo = fmt(Math.min(...finite));
  const hi = fmt(Math.max(...finite));
  return lo === hi ? lo : `${lo}–${hi}`;
}

/** "c=1–64" or "c=8". */
export function cRange(cs: number[]): string {
  if (cs.length === 0) return 'c=?';
  return cs.length === 1 ? `c=${cs[0]}` : `c=${Math.min(...cs)}–${Math.max(...cs)}`;
}
