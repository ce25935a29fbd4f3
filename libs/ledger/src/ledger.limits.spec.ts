import { textLength } from './ledger.limits.js';

describe('textLength', () => {
  it.each([
    ['', 0],
    ['abc', 3],
    ['é', 1],
    ['e\u0301', 2],
    ['\u{1F389}', 1],
    ['a\u{1F389}b\u{1D11E}', 4],
    ['\u2764\uFE0F', 2],
    ['\uD83D', 1],
    ['\uDE00\uD83D', 2],
  ])('counts %j as %i characters (code points)', (text, expected) => {
    expect(textLength(text)).toBe(expected);
    // The same count PostgreSQL's char_length and the string iterator give for well-formed text.
    expect(textLength(text)).toBe([...text].length);
  });
});
