import { isLotPriority, isTokenAmount, LOT_PRIORITY_MAX, LOT_PRIORITY_MIN, textLength, TOKEN_AMOUNT_MAX } from './ledger.limits.js';

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
    // The ends of both surrogate ranges, and a surrogate next to what cannot pair with it.
    ['\uD800\uDC00', 1],
    ['\uDBFF\uDFFF', 1],
    ['a\uDC00', 2],
    ['\uDC00\uDC00', 2],
    ['\uD83Da', 2],
    ['\uD83D\uE000', 2],
  ])('counts %j as %i characters (code points)', (text, expected) => {
    expect(textLength(text)).toBe(expected);
    // The same count PostgreSQL's char_length and the string iterator give for well-formed text.
    expect(textLength(text)).toBe([...text].length);
  });
});

describe('amount and priority ranges', () => {
  it('takes a token amount from 1 to the largest safe integer, whole', () => {
    expect([1, TOKEN_AMOUNT_MAX].map(isTokenAmount)).toEqual([true, true]);
    expect([0, -1, 1.5, TOKEN_AMOUNT_MAX + 1, Number.NaN].map(isTokenAmount)).toEqual([false, false, false, false, false]);
  });

  it('takes a lot priority from its minimum to its maximum, both included, whole', () => {
    expect([LOT_PRIORITY_MIN, LOT_PRIORITY_MAX].map(isLotPriority)).toEqual([true, true]);
    expect([LOT_PRIORITY_MIN - 1, LOT_PRIORITY_MAX + 1, 0.5].map(isLotPriority)).toEqual([false, false, false]);
  });
});
