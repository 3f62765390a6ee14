import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses `args` strictly against `options`; unknown flags and missing values become one-line {@link UsageError}s. */
export function parseFlags<T extends Options>(args: readonly string[], options: T, usage: string): ReturnType<typeof parseArgs<{ options: T; strict: true; allowPositionals: false }>>['values'] {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    // Node's messages go on with advice about positionals; the first sentence is the point.
    const first = (error instanceof Error ? error.message : String(error)).split(/\.( |$)/)[0];
    throw new UsageError(`${first} (usage: ${usage})`);
  }
}

/** An integer flag value in [min, max]. */
export function integerFlag(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got '${value}'`);
  return n;
}
