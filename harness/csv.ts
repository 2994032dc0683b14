import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { writeFileAtomic } from './atomic-write.js';

/**
 * Writes rows as CSV with a header line, even for zero rows, so a consumer always learns the
 * columns. Columns default to the union of the rows' keys in first-seen order, which keeps the
 * contract columns of a Row first. NaN (a statistic of too few values) is written as an empty
 * cell, which spreadsheets and pandas both read as missing; other numbers are written as
 * JavaScript prints them, so nothing is rounded away.
 */
export function writeCsv(path: string, rows: object[], columns?: string[]): void {
  const csv = stringify(rows, {
    header: true,
    columns: columns ?? unionOfKeys(rows),
    cast: {
      number: (value) => (Number.isNaN(value) ? '' : String(value)),
      // csv-stringify's default writes true as "1" and false as "", which reads back as 1 and NaN.
      boolean: (value) => String(value),
    },
  });
  writeFileAtomic(path, csv);
}

function unionOfKeys(rows: object[]): string[] {
  const seen = new Set<string>();
  for (const row of rows) for (const key of Object.keys(row)) seen.add(key);
  return [...seen];
}

// Decimal and scientific notation as String(number) prints it, plus the infinities; not
// Number()'s wider grammar, which would turn a config named "0x10" or " " into a number.
const NUMBER = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?Infinity$/;

/**
 * Reads a CSV written by writeCsv back into objects keyed by the header. A column whose
 * non-empty cells are all numbers is numeric: its cells become numbers and its empty cells
 * NaN, undoing writeCsv's NaN-as-empty. Every other column keeps its strings, empty ones
 * included; so does a column with no non-empty cell at all, since nothing says it is numeric.
 */
export function readCsv(path: string): Record<string, string | number>[] {
  const records: Record<string, string>[] = parse(readFileSync(path, 'utf8'), { columns: true });
  if (records.length === 0) return [];

  const numeric = Object.keys(records[0]).filter((column) => {
    const cells = records.map((r) => r[column]).filter((cell) => cell !== '');
    return cells.length > 0 && cells.every((cell) => NUMBER.test(cell));
  });

  return records.map((record) => {
    const row: Record<string, string | number> = { ...record };
    for (const column of numeric) row[column] = record[column] === '' ? NaN : Number(record[column]);
    return row;
  });
}
