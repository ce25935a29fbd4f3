import { METADATA_KEY_LENGTH_MAX, METADATA_KEYS_MAX, METADATA_STRING_LENGTH_MAX, metadataViolation, sameMetadata } from './metadata.js';

const ruleOf = (value: unknown) => metadataViolation(value)?.rule ?? null;

describe('metadata rules', () => {
  it('accepts a flat object of strings, finite numbers and booleans, at every bound', () => {
    expect(metadataViolation({ model: 'gpt-4o', 'request.id': 'req_1', 'a:b-c_d': 'x', tokens: 812, ratio: 0.25, negative: -3, cached: false })).toBeNull();
    expect(metadataViolation({})).toBeNull();
    const full = Object.fromEntries(Array.from({ length: METADATA_KEYS_MAX }, (_, index) => [`k${index}`, 'v'.repeat(METADATA_STRING_LENGTH_MAX)]));
    expect(metadataViolation(full)).toBeNull();
    expect(metadataViolation({ [`k${'x'.repeat(39)}`.slice(0, 40)]: 1 })).toBeNull();
    // Counted in characters: an emoji is one.
    expect(metadataViolation({ emoji: '🎉'.repeat(METADATA_STRING_LENGTH_MAX) })).toBeNull();
  });

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['an array', ['a']],
    ['a string', 'model=gpt'],
    ['a number', 5],
    ['an object with another prototype', new Date(0)],
  ])('refuses %s as metadataObject', (_, value) => {
    expect(metadataViolation(value)).toEqual({ rule: 'metadataObject', field: 'metadata', message: 'metadata must be an object of strings, numbers and booleans' });
  });

  it('refuses more than the most keys as metadataKeysMax', () => {
    const tooMany = Object.fromEntries(Array.from({ length: METADATA_KEYS_MAX + 1 }, (_, index) => [`k${index}`, index]));
    expect(metadataViolation(tooMany)).toEqual({ rule: 'metadataKeysMax', field: 'metadata', message: `metadata must have at most ${METADATA_KEYS_MAX} keys` });
  });

  it.each(['', '1st', '_private', '__proto__', 'has space', 'ünicode', 'semi;colon', 'k'.repeat(41)])('refuses the key %j as metadataKey', (key) => {
    expect(ruleOf({ [key]: 1 })).toBe('metadataKey');
  });

  it('names the refused key in its message, cut one character past the longest allowed', () => {
    const key = `k${'x'.repeat(60)}`;
    expect(metadataViolation({ [key]: 1 })).toEqual({
      rule: 'metadataKey',
      field: 'metadata',
      message: `metadata keys must be 1 to ${METADATA_KEY_LENGTH_MAX} characters: a letter, then letters, digits, _ . : or - ("${key.slice(0, 41)}" is not)`,
    });
  });

  it.each([
    ['a nested object', { deep: { a: 1 } }],
    ['an array', [1, 2]],
    ['null', null],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
  ])('refuses %s as a value (metadataValueType), naming the key', (_, value) => {
    expect(metadataViolation({ model: 'ok', bad: value })).toEqual({
      rule: 'metadataValueType',
      field: 'metadata.bad',
      message: 'metadata.bad must be a string, a finite number or a boolean (no objects, arrays or null)',
    });
  });

  it('refuses a string one character too long as metadataValueLength', () => {
    expect(metadataViolation({ prompt: 'x'.repeat(METADATA_STRING_LENGTH_MAX + 1) })).toEqual({
      rule: 'metadataValueLength',
      field: 'metadata.prompt',
      message: `metadata.prompt must be at most ${METADATA_STRING_LENGTH_MAX} characters`,
    });
  });

  it.each([
    ['NUL', 'a\u0000b'],
    ['a lone high surrogate', 'a\uD800'],
    ['a lone low surrogate', '\uDC00b'],
  ])('refuses %s in a string as metadataValueText', (_, text) => {
    expect(metadataViolation({ text })).toEqual({ rule: 'metadataValueText', field: 'metadata.text', message: 'metadata.text must not contain NUL or unpaired surrogate characters' });
  });

  it('compares entries, not key order', () => {
    expect(sameMetadata({ a: 1, b: 'x' }, { b: 'x', a: 1 })).toBe(true);
    expect(sameMetadata(undefined, null)).toBe(true);
    expect(sameMetadata({ a: 1 }, { a: '1' })).toBe(false);
    expect(sameMetadata({ a: 1 }, { a: 1, b: 2 })).toBe(false);
    expect(sameMetadata({ a: 1 }, undefined)).toBe(false);
  });
});
