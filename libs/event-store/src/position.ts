/**
 * A place in `$all`. Opaque to callers, but totally ordered: PostgreSQL uses (transaction id, global
 * position), EventStoreDB (commit, prepare). Both parts are unsigned 64-bit integers.
 */
export type Position = { readonly commit: bigint; readonly prepare: bigint };

export const START: Position = { commit: 0n, prepare: 0n };

export function comparePositions(a: Position, b: Position): -1 | 0 | 1 {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  if (a.prepare !== b.prepare) return a.prepare < b.prepare ? -1 : 1;
  return 0;
}

/** The two parts as decimal text: the parameters `($1::text::xid8, $2::bigint)` of SQL on the PostgreSQL store's `events` take. */
export function positionValues(position: Position): [string, string] {
  return [position.commit.toString(), position.prepare.toString()];
}

export function formatPosition(position: Position): string {
  return `${position.commit}/${position.prepare}`;
}

const POSITION_PATTERN = /^(\d{1,20})\/(\d{1,20})$/;
const UINT64_MAX = 2n ** 64n - 1n;

/** Parses `formatPosition` output; returns undefined for anything else. */
export function parsePosition(text: string): Position | undefined {
  const match = POSITION_PATTERN.exec(text);
  if (match === null) return undefined;
  const commit = BigInt(match[1] ?? '');
  const prepare = BigInt(match[2] ?? '');
  if (commit > UINT64_MAX || prepare > UINT64_MAX) return undefined;
  return { commit, prepare };
}
