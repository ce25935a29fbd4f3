import { textLength } from './ledger.limits.js';

/**
 * The caller's own data on a usage, a hold or a settle (a model name, a request id): a flat object
 * of strings, numbers and booleans, stored in the event and shown in history and the audit API. Flat
 * on purpose (ADR 0026): what a ledger row needs to be traced is a handful of labels, and one level
 * keeps every bound below simple to state and to check.
 */
export type MetadataValue = string | number | boolean;
export type Metadata = { readonly [key: string]: MetadataValue };

/** Keys per object. */
export const METADATA_KEYS_MAX = 20;
/** A key: a letter, then letters, digits, `_`, `.`, `:` or `-`; 1 to 40 characters. */
export const METADATA_KEY_LENGTH_MAX = 40;
export const METADATA_KEY_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]{0,39}$/;
/** A string value, in characters (code points, as `textLength` counts them). */
export const METADATA_STRING_LENGTH_MAX = 500;

/** Every rule a metadata object can break, in the order they are checked. */
export const METADATA_RULES = ['metadataObject', 'metadataKeysMax', 'metadataKey', 'metadataValueType', 'metadataValueLength', 'metadataValueText'] as const;
export type MetadataRule = (typeof METADATA_RULES)[number];

export type MetadataViolation = {
  readonly rule: MetadataRule;
  /** `metadata`, or `metadata.<key>` for a rule of one entry. */
  readonly field: string;
  readonly message: string;
};

// NUL and unpaired surrogates cannot be stored in jsonb (nor canonicalized for the hash chain).
// eslint-disable-next-line no-control-regex -- matching NUL is the point
const UNSTORABLE = /[\u0000]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The first rule `value` breaks as a metadata object, or null when it is one. The one check of the
 * HTTP validation and of the ledger's decisions alike.
 */
export function metadataViolation(value: unknown): MetadataViolation | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) {
    return { rule: 'metadataObject', field: 'metadata', message: 'metadata must be an object of strings, numbers and booleans' };
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > METADATA_KEYS_MAX) {
    return { rule: 'metadataKeysMax', field: 'metadata', message: `metadata must have at most ${METADATA_KEYS_MAX} keys` };
  }
  for (const [key, entry] of entries) {
    const field = `metadata.${key}`;
    if (!METADATA_KEY_PATTERN.test(key)) {
      return {
        rule: 'metadataKey',
        field: 'metadata',
        message: `metadata keys must be 1 to ${METADATA_KEY_LENGTH_MAX} characters: a letter, then letters, digits, _ . : or - (${JSON.stringify(key.slice(0, METADATA_KEY_LENGTH_MAX + 1))} is not)`,
      };
    }
    if (typeof entry === 'number' ? !Number.isFinite(entry) : typeof entry !== 'string' && typeof entry !== 'boolean') {
      return { rule: 'metadataValueType', field, message: `${field} must be a string, a finite number or a boolean (no objects, arrays or null)` };
    }
    if (typeof entry === 'string' && textLength(entry) > METADATA_STRING_LENGTH_MAX) {
      return { rule: 'metadataValueLength', field, message: `${field} must be at most ${METADATA_STRING_LENGTH_MAX} characters` };
    }
    if (typeof entry === 'string' && UNSTORABLE.test(entry)) {
      return { rule: 'metadataValueText', field, message: `${field} must not contain NUL or unpaired surrogate characters` };
    }
  }
  return null;
}

/** Whether two metadata objects hold the same entries (key order aside): a repeated command must carry the same. */
export function sameMetadata(left: Metadata | null | undefined, right: Metadata | null | undefined): boolean {
  const a = Object.entries(left ?? {});
  const b = right ?? {};
  return a.length === Object.keys(b).length && a.every(([key, value]) => Object.hasOwn(b, key) && b[key] === value);
}
