import { createHash } from 'node:crypto';
import { CodedError } from '@app/ledger';

/**
 * Cursor paging of the read models' lists (ADR 0026). A list is ordered by a keyset: columns that
 * together are unique per row. A page is the rows after the last one shown, found by a comparison of
 * that keyset which an index serves, so rows written meanwhile neither repeat a row nor make one be
 * skipped (an offset counts rows, and a row inserted before it shifts every later page by one).
 *
 * The cursor is opaque to the caller: base64url of `{"v":1,"l":<list>,"s":<scope>,"k":[<key>]}`.
 * It is not signed: any well-formed key is a position the caller could reach by paging, and the
 * query still filters by the user in the path. What is refused (400 INVALID_CURSOR, naming `cursor`)
 * is what is not such a position: text that is not the encoding, another list's cursor, a cursor
 * made for another user or filter (`s`, a digest of them), or a key of the wrong kinds.
 */

export const PAGING_ERROR_CODES = ['INVALID_CURSOR'] as const;
export type PagingErrorCode = (typeof PAGING_ERROR_CODES)[number];

/** Which rule a refused cursor broke: its encoding, the list or filter it belongs to, or its key. */
export type CursorRule = 'encoding' | 'list' | 'key';

export class InvalidCursorError extends CodedError<PagingErrorCode, { readonly field: 'cursor'; readonly rule: CursorRule }> {
  override readonly name = 'InvalidCursorError';

  constructor(rule: CursorRule, message: string) {
    super('INVALID_CURSOR', `cursor ${message}; pass the nextCursor of the previous page unchanged`, { field: 'cursor', rule });
  }
}

/** The longest cursor accepted; every cursor this service makes is far shorter. */
export const CURSOR_LENGTH_MAX = 512;

/**
 * The kinds a key part can be. Timestamps travel as text with microseconds (PostgreSQL's precision),
 * so a page boundary between two rows a millisecond apart is exact; revisions as decimal text (bigint).
 */
export type KeyPartKind = 'revision' | 'integer' | 'timestamp' | 'timestampOrNull' | 'uuid' | 'text';
export type KeyPart = string | number | null;

/** A list's keyset: its name (a cursor of one list is refused by another) and the kinds of its parts, in order. */
export type CursorShape = { readonly list: string; readonly parts: readonly KeyPartKind[] };

/** Where a page starts: after an offset (classic paging, unstable under inserts) or after a cursor's row. */
export type PagePosition = { readonly offset: number } | { readonly cursor: string };

/** A page as every list answers it: the rows, and whether more follow and the cursor to ask for them. */
export type Page<View> = {
  readonly data: readonly View[];
  readonly limit: number;
  /** The offset the page was asked at; null for a page asked by cursor. */
  readonly offset: number | null;
  readonly hasMore: boolean;
  /** The cursor of the next page: after the last row shown; null when no row follows. */
  readonly nextCursor: string | null;
};

/** A timestamp as the lists' SQL writes a key part: UTC, microseconds (`to_char(... 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`). */
export const KEY_TIMESTAMP_FORMAT = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const REVISION = /^(0|[1-9][0-9]{0,18})$/;
const REVISION_MAX = 2n ** 63n - 1n;
const TIMESTAMP = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const INT4_MIN = -(2 ** 31);
const INT4_MAX = 2 ** 31 - 1;
const TEXT_LENGTH_MAX = 100;
const CURSOR_VERSION = 1;

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * A time PostgreSQL's timestamptz takes: a real calendar date and time of day in years 1 to 9999.
 * `Date.parse` alone rolls February 30 over into March and takes year 0, which PostgreSQL refuses.
 */
function isCalendarTime(text: string): boolean {
  const [year, month, day, hours, minutes, seconds] = [text.slice(0, 4), text.slice(5, 7), text.slice(8, 10), text.slice(11, 13), text.slice(14, 16), text.slice(17, 19)].map(Number) as [number, number, number, number, number, number];
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hours, minutes, seconds, 0);
  return (
    year >= 1 &&
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    date.getUTCHours() === hours &&
    date.getUTCMinutes() === minutes &&
    date.getUTCSeconds() === seconds
  );
}

/** A short digest of the list and what the page is filtered by (the user, a status): a cursor serves only the query it came from. */
function scopeDigest(list: string, scope: string): string {
  return createHash('sha256').update(`${list}\n${scope}`).digest('base64url').slice(0, 16);
}

export function isKeyPart(kind: KeyPartKind, part: unknown): part is KeyPart {
  switch (kind) {
    case 'revision':
      return typeof part === 'string' && REVISION.test(part) && BigInt(part) <= REVISION_MAX;
    case 'integer':
      return typeof part === 'number' && Number.isInteger(part) && part >= INT4_MIN && part <= INT4_MAX;
    case 'timestamp':
      return typeof part === 'string' && TIMESTAMP.test(part) && isCalendarTime(part);
    case 'timestampOrNull':
      return part === null || isKeyPart('timestamp', part);
    case 'uuid':
      return typeof part === 'string' && UUID.test(part);
    case 'text':
      // As PostgreSQL's jsonb can hold it: no NUL, no lone surrogate (either would be a 500 there, not a 400 here).
      return typeof part === 'string' && part.length >= 1 && part.length <= TEXT_LENGTH_MAX && !part.includes('\u0000') && !LONE_SURROGATE.test(part);
    default: {
      const unknown: never = kind;
      throw new Error(`unknown key part kind ${String(unknown)}`);
    }
  }
}

export function encodeCursor(shape: CursorShape, scope: string, key: readonly KeyPart[]): string {
  if (key.length !== shape.parts.length || !shape.parts.every((kind, index) => isKeyPart(kind, key[index]))) {
    // The key comes from our own rows: a part of the wrong kind is a bug in the list's query.
    throw new Error(`a ${shape.list} key ${JSON.stringify(key)} does not have the parts ${shape.parts.join(', ')}`);
  }
  return Buffer.from(JSON.stringify({ v: CURSOR_VERSION, l: shape.list, s: scopeDigest(shape.list, scope), k: key }), 'utf8').toString('base64url');
}

/** The key a cursor carries, checked against the list's shape and scope; anything else is InvalidCursorError. */
export function decodeCursor(shape: CursorShape, scope: string, cursor: string): readonly KeyPart[] {
  if (cursor.length > CURSOR_LENGTH_MAX || !BASE64URL.test(cursor)) throw new InvalidCursorError('encoding', `must be base64url of at most ${CURSOR_LENGTH_MAX} characters`);
  const bytes = Buffer.from(cursor, 'base64url');
  // Node's decoder skips what it cannot read; only the canonical encoding of the bytes is a cursor.
  if (bytes.toString('base64url') !== cursor) throw new InvalidCursorError('encoding', 'is not a cursor of this service');
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new InvalidCursorError('encoding', 'is not a cursor of this service');
  }
  if (!isCursorBody(parsed)) throw new InvalidCursorError('encoding', 'is not a cursor of this service');
  if (parsed.l !== shape.list || parsed.s !== scopeDigest(shape.list, scope)) {
    throw new InvalidCursorError('list', `belongs to another list, user or filter than this ${shape.list} query`);
  }
  const key = parsed.k;
  if (key.length !== shape.parts.length || !shape.parts.every((kind, index) => isKeyPart(kind, key[index]))) {
    throw new InvalidCursorError('key', `does not hold a position in ${shape.list}`);
  }
  return key as readonly KeyPart[];
}

type CursorBody = { v: number; l: string; s: string; k: unknown[] };

function isCursorBody(value: unknown): value is CursorBody {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value).sort();
  if (keys.join(',') !== 'k,l,s,v') return false;
  const body = value as Record<string, unknown>;
  return body.v === CURSOR_VERSION && typeof body.l === 'string' && typeof body.s === 'string' && Array.isArray(body.k);
}

/** The key a page starts after (null: from the first row), and the rows it skips first (0 for a cursor). */
export function startOf(shape: CursorShape, scope: string, position: PagePosition): { readonly after: readonly KeyPart[] | null; readonly offset: number } {
  if ('cursor' in position) return { after: decodeCursor(shape, scope, position.cursor), offset: 0 };
  return { after: null, offset: position.offset };
}

/**
 * The page of `rows`, fetched with LIMIT `limit + 1` from the position: the first `limit` of them,
 * whether one more exists, and the cursor after the last one shown.
 */
export function pageOf<Row, View>(
  rows: readonly Row[],
  request: { readonly shape: CursorShape; readonly scope: string; readonly limit: number; readonly position: PagePosition },
  keyOf: (row: Row) => readonly KeyPart[],
  toView: (row: Row) => View,
): Page<View> {
  const { shape, scope, limit, position } = request;
  const shown = rows.slice(0, limit);
  const hasMore = rows.length > limit;
  const last = shown[shown.length - 1];
  return {
    data: shown.map(toView),
    limit,
    offset: 'offset' in position ? position.offset : null,
    hasMore,
    nextCursor: hasMore && last !== undefined ? encodeCursor(shape, scope, keyOf(last)) : null,
  };
}
