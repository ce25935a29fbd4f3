import { CURSOR_LENGTH_MAX, decodeCursor, encodeCursor, InvalidCursorError, pageOf, startOf, type CursorShape } from './keyset-cursor.js';

const LOTS: CursorShape = { list: 'lots', parts: ['integer', 'timestampOrNull', 'timestamp', 'text'] };
const HISTORY: CursorShape = { list: 'transactions', parts: ['revision'] };
const KEY = [10, null, '2026-12-02T02:16:24.123456Z', 'opening'] as const;

function refusal(run: () => unknown): { code: string; details: unknown } {
  try {
    run();
  } catch (error) {
    if (error instanceof InvalidCursorError) return { code: error.code, details: error.details };
    throw error;
  }
  throw new Error('the cursor was accepted');
}

/** A cursor body encoded as the service encodes it, with parts a client may have changed. */
const forged = (body: unknown) => Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');

describe('keyset cursors', () => {
  it('round-trips a key through an opaque base64url cursor', () => {
    const cursor = encodeCursor(LOTS, 'user/active', KEY);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(LOTS, 'user/active', cursor)).toEqual(KEY);
  });

  it.each([
    ['not base64url', 'abc+/=='],
    ['garbled bytes', 'AAAA'],
    ['a non-canonical encoding', `${encodeCursor(HISTORY, 'u', ['5'])}A`],
    ['JSON of another shape', forged({ l: 'transactions', k: ['5'] })],
    ['an extra member', forged({ v: 1, l: 'transactions', s: 'x', k: ['5'], admin: true })],
    ['another version', forged({ v: 2, l: 'transactions', s: 'x', k: ['5'] })],
    ['too long', 'A'.repeat(CURSOR_LENGTH_MAX + 4)],
  ])('refuses %s as INVALID_CURSOR (encoding) naming cursor', (_, cursor) => {
    expect(refusal(() => decodeCursor(HISTORY, 'u', cursor))).toEqual({ code: 'INVALID_CURSOR', details: { field: 'cursor', rule: 'encoding' } });
  });

  it('refuses a cursor of another list, user or filter (rule list)', () => {
    const history = encodeCursor(HISTORY, 'user-a', ['5']);
    expect(refusal(() => decodeCursor(HISTORY, 'user-b', history)).details).toEqual({ field: 'cursor', rule: 'list' });
    expect(refusal(() => decodeCursor({ list: 'holds', parts: ['revision'] }, 'user-a', history)).details).toEqual({ field: 'cursor', rule: 'list' });
    const active = encodeCursor(LOTS, 'user-a/active', KEY);
    expect(refusal(() => decodeCursor(LOTS, 'user-a/spent', active)).details).toEqual({ field: 'cursor', rule: 'list' });
  });

  it.each([
    ['a negative revision', ['-1']],
    ['a revision past bigint', ['9223372036854775808']],
    ['a revision as a number', [5]],
    ['a missing part', []],
    ['an extra part', ['5', '6']],
    ['SQL in a part', ["5'; DROP TABLE events; --"]],
  ])('refuses a key with %s (rule key)', (_, key) => {
    const body = JSON.parse(Buffer.from(encodeCursor(HISTORY, 'u', ['5']), 'base64url').toString('utf8')) as Record<string, unknown>;
    expect(refusal(() => decodeCursor(HISTORY, 'u', forged({ ...body, k: key }))).details).toEqual({ field: 'cursor', rule: 'key' });
  });

  it('checks timestamps to the microsecond and integers to int4', () => {
    const body = JSON.parse(Buffer.from(encodeCursor(LOTS, 'u', KEY), 'base64url').toString('utf8')) as Record<string, unknown>;
    const withKey = (key: unknown[]) => forged({ ...body, k: key });
    expect(decodeCursor(LOTS, 'u', withKey([0, '2026-01-01T00:00:00.000001Z', '2026-01-01T00:00:00.000000Z', 'x']))).toEqual([0, '2026-01-01T00:00:00.000001Z', '2026-01-01T00:00:00.000000Z', 'x']);
    expect(refusal(() => decodeCursor(LOTS, 'u', withKey([0, null, '2026-01-01T00:00:00.000Z', 'x']))).details).toMatchObject({ rule: 'key' });
    expect(refusal(() => decodeCursor(LOTS, 'u', withKey([0, null, '2026-13-45T00:00:00.000000Z', 'x']))).details).toMatchObject({ rule: 'key' });
    expect(refusal(() => decodeCursor(LOTS, 'u', withKey([2 ** 31, null, '2026-01-01T00:00:00.000000Z', 'x']))).details).toMatchObject({ rule: 'key' });
    expect(refusal(() => decodeCursor(LOTS, 'u', withKey([1.5, null, '2026-01-01T00:00:00.000000Z', 'x']))).details).toMatchObject({ rule: 'key' });
    expect(refusal(() => decodeCursor(LOTS, 'u', withKey([1, null, '2026-01-01T00:00:00.000000Z', '']))).details).toMatchObject({ rule: 'key' });
  });

  it.each([
    ['February 30th, which Date.parse rolls over into March', [0, null, '2026-02-30T00:00:00.000000Z', 'x']],
    ['year 0, which PostgreSQL has not', [0, null, '0000-01-01T00:00:00.000000Z', 'x']],
    ['hour 24', [0, '2026-01-01T24:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 'x']],
    ['second 60', [0, null, '2026-01-01T00:00:60.000000Z', 'x']],
    ['a NUL in a text part, which jsonb cannot hold', [0, null, '2026-01-01T00:00:00.000000Z', 'x\u0000']],
    ['a lone surrogate in a text part', [0, null, '2026-01-01T00:00:00.000000Z', '\ud800']],
  ])('refuses a key PostgreSQL could not read back, %s (rule key, never a 500 from the query)', (_, key) => {
    const body = JSON.parse(Buffer.from(encodeCursor(LOTS, 'u', KEY), 'base64url').toString('utf8')) as Record<string, unknown>;
    expect(refusal(() => decodeCursor(LOTS, 'u', forged({ ...body, k: key }))).details).toEqual({ field: 'cursor', rule: 'key' });
  });

  it('takes every real time from year 1 to 9999, leap days too, and text with a pair of surrogates', () => {
    const body = JSON.parse(Buffer.from(encodeCursor(LOTS, 'u', KEY), 'base64url').toString('utf8')) as Record<string, unknown>;
    for (const key of [
      [0, '0001-01-01T00:00:00.000000Z', '9999-12-31T23:59:59.999999Z', '\u{1F389}'],
      [0, null, '2024-02-29T12:00:00.000000Z', 'opening'],
    ]) {
      expect(decodeCursor(LOTS, 'u', forged({ ...body, k: key }))).toEqual(key);
    }
  });

  it('refuses to encode a key its own query got wrong: that is a bug, not a caller error', () => {
    expect(() => encodeCursor(HISTORY, 'u', [5])).toThrow(/does not have the parts revision/);
  });

  it('starts an offset page at its offset and a cursor page after its key', () => {
    expect(startOf(HISTORY, 'u', { offset: 20 })).toEqual({ after: null, offset: 20 });
    expect(startOf(HISTORY, 'u', { cursor: encodeCursor(HISTORY, 'u', ['7']) })).toEqual({ after: ['7'], offset: 0 });
  });

  it('shows limit rows of limit + 1 fetched, with hasMore and the cursor after the last shown', () => {
    const rows = [{ revision: '9' }, { revision: '8' }, { revision: '7' }];
    const request = { shape: HISTORY, scope: 'u', limit: 2, position: { offset: 0 } };
    const page = pageOf(rows, request, (row) => [row.revision], (row) => Number(row.revision));
    expect(page).toEqual({ data: [9, 8], limit: 2, offset: 0, hasMore: true, nextCursor: encodeCursor(HISTORY, 'u', ['8']) });
    const last = pageOf(rows.slice(2), { ...request, position: { cursor: page.nextCursor ?? '' } }, (row) => [row.revision], (row) => Number(row.revision));
    expect(last).toEqual({ data: [7], limit: 2, offset: null, hasMore: false, nextCursor: null });
    expect(pageOf([], request, (row: { revision: string }) => [row.revision], (row) => row)).toEqual({ data: [], limit: 2, offset: 0, hasMore: false, nextCursor: null });
  });
});
