import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { canonicalJson } from './canonical-json.js';

// Examples from RFC 8785 (JSON Canonicalization Scheme).
describe('canonicalJson (RFC 8785)', () => {
  it('serialises the section 3.2.2 sample as the RFC does', () => {
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
    ) as unknown;
    expect(canonicalJson(input)).toBe('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });

  it('sorts members by UTF-16 code units (section 3.2.3)', () => {
    const input = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One', '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
    // Compared as text: Object.keys would list the integer-like key "1" first whatever the order.
    const order = ['Carriage Return', 'One', 'Control', 'Latin Small Letter O With Diaeresis', 'Euro Sign', 'Emoji: Grinning Face', 'Hebrew Letter Dalet With Dagesh'];
    const text = canonicalJson(input);
    expect(order.map((value) => text.indexOf(value))).toEqual(order.map((value) => text.indexOf(value)).sort((left, right) => left - right));
    expect(text.startsWith('{"\\r":"Carriage Return","1":"One"')).toBe(true);
  });

  it('serialises numbers as ECMAScript does (appendix B samples)', () => {
    const samples: [number, string][] = [
      [0, '0'],
      [-0, '0'],
      [5e-324, '5e-324'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
      [9007199254740992, '9007199254740992'],
      [295147905179352830000, '295147905179352830000'],
      [1e21, '1e+21'],
      [0.000001, '0.000001'],
      [1e-7, '1e-7'],
    ];
    for (const [value, text] of samples) expect(canonicalJson(value)).toBe(text);
  });

  it('gives one text for objects that differ only in member order and whitespace', () => {
    expect(canonicalJson(JSON.parse('{ "b": 1, "a": { "d": [1, 2], "c": null } }'))).toBe(canonicalJson({ a: { c: null, d: [1, 2] }, b: 1 }));
  });

  it('refuses values JSON cannot hold', () => {
    expect(() => canonicalJson(Number.NaN)).toThrow();
    expect(() => canonicalJson({ amount: Number.POSITIVE_INFINITY })).toThrow();
    expect(() => canonicalJson('\ud800')).toThrow('Lone surrogate');
    expect(() => canonicalJson(undefined)).toThrow('no JSON form');
    expect(() => canonicalJson({ revision: 1n })).toThrow();
  });

  it('refuses a lone surrogate anywhere: in a nested value, in a key, after an escaped backslash', () => {
    expect(() => canonicalJson({ data: { description: 'ok\udc00' } })).toThrow('Lone surrogate');
    expect(() => canonicalJson({ ['\ud83d']: 1 })).toThrow('Lone surrogate');
    expect(() => canonicalJson(['\\\ud800'])).toThrow('Lone surrogate');
    // A backslash followed by the letters "ud800" is text, and a surrogate pair is well formed.
    expect(canonicalJson('\\ud800')).toBe('"\\\\ud800"');
    expect(canonicalJson('\ud83d\ude00')).toBe('"\ud83d\ude00"');
  });
});

// The hash chains already written were canonicalized by `canonicalize` 4 (ADR 0006): the text of every
// value must stay byte for byte what it gave, or a chain sealed before would no longer verify.
describe('canonicalJson against the canonicalize package it replaced', () => {
  /** `canonicalize`'s text, or 'refused' when it throws (as canonicalJson must then). */
  function reference(value: unknown): string {
    try {
      return canonicalize(value) ?? 'refused';
    } catch {
      return 'refused';
    }
  }
  function ours(value: unknown): string {
    try {
      return canonicalJson(value);
    } catch {
      return 'refused';
    }
  }

  it('gives the same text for any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue({ stringUnit: 'binary', maxDepth: 4 }), (value) => {
        expect(ours(value)).toBe(reference(value));
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses exactly the texts it refused: any UTF-16 code units, lone surrogates and backslashes among them', () => {
    const unit = fc.oneof(fc.constantFrom('\\', 'ud800', 'udc00', 'ud8', '00', '\ud800', '\udbff', '\udc00', '\udfff', '\ud83d\ude00', '"', '\n', 'a'), fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)));
    const text = fc.string({ unit, maxLength: 12 });
    fc.assert(
      fc.property(fc.dictionary(text, fc.oneof(text, fc.array(text, { maxLength: 3 })), { maxKeys: 4 }), (value) => {
        expect(ours(value)).toBe(reference(value));
      }),
      { numRuns: 5000 },
    );
  });
});
