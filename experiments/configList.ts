// A study's --configs: a comma-separated list of names it knows, in the order given.
import { UsageError } from '../harness/errors.js';

export function parseConfigList(value: unknown, known: readonly string[], flag = '--configs'): string[] {
  const names = String(value)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new UsageError(`${flag}: give at least one of ${known.join(', ')}`);
  for (const n of names)
    if (!known.includes(n)) throw new UsageError(`${flag}: unknown configuration '${n}' (known: ${known.join(', ')})`);
  return [...new Set(names)];
}
