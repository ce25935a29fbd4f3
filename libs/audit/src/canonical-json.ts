import canonicalize from 'canonicalize';

/**
 * RFC 8785 (JSON Canonicalization Scheme) text of a JSON value: object members sorted by UTF-16
 * code units, no whitespace, ECMAScript number and string serialisation. The same value always
 * gives the same bytes, so its hash can be recomputed by anyone with any RFC 8785 implementation.
 * Values JSON cannot hold (undefined at the top, functions, NaN, Infinity, lone surrogates,
 * bigint) are refused rather than silently dropped.
 */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('the value has no JSON form');
  return text;
}
