import { inexactNumberIn, nestsDeeperThan, notAnObject, propertyNamesIn, propertyNamesInText, whereJsonBreaks } from './request-body.js';

function nested(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

describe('nestsDeeperThan', () => {
  it('allows nesting up to the limit and refuses one level more', () => {
    expect(nestsDeeperThan(Buffer.from(nested(32)), 32)).toBe(false);
    expect(nestsDeeperThan(Buffer.from(nested(33)), 32)).toBe(true);
    expect(nestsDeeperThan(Buffer.from(`{"a":${'{"b":'.repeat(32)}1${'}'.repeat(32)}}`), 32)).toBe(true);
  });

  it('counts objects and arrays alike, and siblings do not add up', () => {
    expect(nestsDeeperThan(Buffer.from('{"a":[{"b":[1]}]}'), 4)).toBe(false);
    expect(nestsDeeperThan(Buffer.from('{"a":[{"b":[1]}]}'), 3)).toBe(true);
    expect(nestsDeeperThan(Buffer.from('[[1],[2],[3],[4]]'), 2)).toBe(false);
  });

  it('ignores brackets inside strings, including after escaped quotes and backslashes', () => {
    expect(nestsDeeperThan(Buffer.from(JSON.stringify({ text: '[[[[[[{{{{' })), 1)).toBe(false);
    expect(nestsDeeperThan(Buffer.from(JSON.stringify({ text: 'say \\"[[[[" and \\\\' })), 1)).toBe(false);
    expect(nestsDeeperThan(Buffer.from(JSON.stringify({ text: '\\', more: ['['] })), 2)).toBe(false);
  });

  it('judges 100,000 levels without recursion', () => {
    expect(nestsDeeperThan(Buffer.from(nested(100_000)), 32)).toBe(true);
  });
});

describe('notAnObject', () => {
  it('takes any object, with or without properties', () => {
    expect(notAnObject({})).toBeUndefined();
    expect(notAnObject({ amount: 1 })).toBeUndefined();
  });

  it('refuses every other JSON value, naming the body, the rule and what it is', () => {
    const refusals = [null, [], [{ amount: 1 }], 1, 'x', true].map((value) => notAnObject(value)?.violations);
    expect(refusals.map((violations) => violations?.map(({ message }) => message))).toEqual([
      ['body must be a JSON object, not null'],
      ['body must be a JSON object, not an array'],
      ['body must be a JSON object, not an array'],
      ['body must be a JSON object, not a number'],
      ['body must be a JSON object, not a string'],
      ['body must be a JSON object, not a boolean'],
    ]);
    expect(notAnObject(null)).toMatchObject({ code: 'VALIDATION_FAILED', details: { errors: [{ field: 'body', rule: 'isObject' }] } });
  });
});

describe('property names in the text and in the parsed value', () => {
  it.each([
    ['{}', 0],
    ['{"a":1}', 1],
    ['{"a" :\n 1, "b":{"c":[{"d":"x"}]}}', 4],
    ['{"a":"b:c","d":"\\"e\\":1"}', 2],
    ['[{"a":1},{"a":2}]', 2],
    ['"a":', 1],
  ])('counts %s as %i in the text', (text, names) => {
    expect(propertyNamesInText(Buffer.from(text))).toBe(names);
  });

  it('counts a name given twice once in the parsed value, so the two differ', () => {
    const text = '{"amount":1,"metadata":{"a":"1","a":"2"}}';
    expect(propertyNamesInText(Buffer.from(text))).toBe(4);
    expect(propertyNamesIn(JSON.parse(text))).toBe(3);
    expect(propertyNamesIn([{ a: { b: 1 } }, 2, null])).toBe(2);
  });
});

describe('whereJsonBreaks', () => {
  it.each([
    ['a raw line feed in a string, at the character', '{"description":"a\nb","amount":2}', 'body is not valid JSON at line 1, column 18: a control character in a string (escape it)'],
    ['a raw tab in a string, at the character', '{"description":"ab\tc"}', 'body is not valid JSON at line 1, column 19: a control character in a string (escape it)'],
    ['a string that is really not closed', '{"description":"abc', 'body is not valid JSON at line 1, column 16: a string that is not closed'],
    ['an escaped quote before the control character', '{"d":"a\\"\u0001"}', 'body is not valid JSON at line 1, column 10: a control character in a string (escape it)'],
    ['lines ended by CR alone', '{\r  "amount": 7,\r  oops\r}', 'body is not valid JSON at line 3, column 3: an unexpected character'],
    ['lines ended by CRLF', '{\r\n  "amount": 7,\r\n  oops\r\n}', 'body is not valid JSON at line 3, column 3: an unexpected character'],
  ])('points at %s', (_, text, message) => {
    expect(whereJsonBreaks(text)).toBe(message);
  });
});

describe('inexactNumberIn: numbers the parser would change without a word', () => {
  const found = (text: string) => inexactNumberIn(Buffer.from(text, 'utf8'))?.literal;

  it.each([
    ['an integer past 2^53 - 1', '{"metadata":{"ref":9007199254740993}}', '9007199254740993'],
    ['a negative one', '{"amount":-9007199254740993}', '-9007199254740993'],
    ['a fraction that reads as 1', '{"amount":0.99999999999999999}', '0.99999999999999999'],
    ['a fraction that reads as a million', '{"amount":1000000.00000000001}', '1000000.00000000001'],
    ['an exponent no double is exactly', '{"amount":1.2345678901234567891e20}', '1.2345678901234567891e20'],
    ['a fraction with an exponent that reads as an integer', '{"amount":1.00000000000000001e2}', '1.00000000000000001e2'],
  ])('finds %s', (_, text, literal) => {
    expect(found(text)).toBe(literal);
  });

  it.each([
    ['integers a double is exactly, past 2^53 too (the range rules judge them)', '{"amount":1,"n":-42,"z":0,"m":9007199254740991,"p":9007199254740992,"e":1e21}'],
    ['integers written with a point or an exponent', '{"a":1.0,"b":1e3,"c":2.50e1,"d":-0.0}'],
    ['zero with an exponent of any size (the range rules judge it)', '{"a":0e401,"b":-0.000e999,"c":0e-999,"d":0.0e400}'],
    ['fractions that read as fractions (the rules judge them)', '{"a":1.5,"b":0.1,"c":-2.75e-3}'],
    ['digits inside strings', '{"a":"0.99999999999999999","b":"9007199254740993"}'],
    ['escaped quotes inside strings', '{"a":"x\\"9007199254740993\\"y"}'],
  ])('leaves %s', (_, text) => {
    expect(found(text)).toBeUndefined();
  });
});
