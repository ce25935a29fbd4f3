import { API_KEY_NAME_FORBIDDEN, parseTtl } from '@app/auth';
import { InvalidArgumentError } from 'commander';

/** The CLI's argument parsers: each refuses a value as a usage error (InvalidArgumentError, exit 2), naming the rule. */

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** What a key name may not hold (controls, line separators, direction marks), every one of them in a text. */
const UNPRINTABLE = new RegExp(API_KEY_NAME_FORBIDDEN.source, 'gu');

/** Text from clients (descriptions, rows) with its control, line-separator and direction characters escaped, so it cannot rewrite the operator's terminal. */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (character) => `\\u${(character.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

/** A lifetime `parseTtl` takes (seconds, or 15m, 12h, 7d; at most 30 days), kept as given. */
export function ttl(value: string): string {
  try {
    parseTtl(value);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
  return value;
}

export function oneOf<T extends string>(values: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(values as readonly string[]).includes(value)) throw new InvalidArgumentError(`must be one of ${values.join(', ')}`);
    return value as T;
  };
}

export function uuid(value: string): string {
  if (!UUID_PATTERN.test(value)) throw new InvalidArgumentError('must be a UUID');
  return value.toLowerCase();
}

export function integer(min: number, max: number): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    return parsed;
  };
}
