import type { Pool } from 'pg';
import { positionValues, type Position } from '../position.js';
import type { EventAddress, GlobalPositionChunk, GlobalPositionSpan, PositionRange, PostgresCapabilities } from './postgres-capabilities.js';

// Only transactions older than every transaction still running are visible to $all readers: a
// sequence value taken earlier but committed later would otherwise be skipped for good.
export const VISIBLE = 'transaction_id < pg_snapshot_xmin(pg_current_snapshot())';

// The events of a range: after $1/$2 (exclusive), up to $3/$4 (inclusive).
const IN_RANGE = '(transaction_id, global_position) > ($1::text::xid8, $2::bigint) AND (transaction_id, global_position) <= ($3::text::xid8, $4::bigint)';

export type EventTableReads = Omit<PostgresCapabilities, 'holdStream' | 'readStreamFromSnapshot' | 'readEvent'>;

function rangeValues(range: PositionRange): string[] {
  return [...positionValues(range.after), ...positionValues(range.upTo)];
}

/** `LIKE` matches the prefix literally: its own wildcards and the escape character are escaped. */
function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (character) => `\\${character}`)}%`;
}

/** The plain reads of the event tables that other libs need (counts, spans, stream revisions): see PostgresCapabilities. */
export function eventTableReads(pool: Pool): EventTableReads {
  const count = async (text: string, values: readonly unknown[]): Promise<number> => {
    const result = await pool.query<{ count: string }>(text, [...values]);
    return Number(result.rows[0]?.count ?? 0);
  };
  return {
    countEventsAfter: (after) => count(`SELECT count(*)::text AS count FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint) AND ${VISIBLE}`, positionValues(after)),
    countEventsBetween: (range) => count(`SELECT count(*)::text AS count FROM events WHERE ${IN_RANGE}`, rangeValues(range)),
    countEventsInChunk: (upTo: Position, chunk: GlobalPositionChunk) =>
      count(`SELECT count(*)::text AS count FROM events WHERE global_position BETWEEN $3::bigint AND $4::bigint AND (transaction_id, global_position) <= ($1::text::xid8, $2::bigint)`, [
        ...positionValues(upTo),
        chunk.first.toString(),
        chunk.last.toString(),
      ]),
    globalPositionSpan: async (upTo): Promise<GlobalPositionSpan | undefined> => {
      const result = await pool.query<{ first: string | null; last: string | null; total: string }>(
        `SELECT min(global_position)::text AS first, max(global_position)::text AS last, count(*)::text AS total FROM events
          WHERE (transaction_id, global_position) <= ($1::text::xid8, $2::bigint)`,
        positionValues(upTo),
      );
      const row = result.rows[0];
      if (row === undefined || row.first === null || row.last === null) return undefined;
      return { first: BigInt(row.first), last: BigInt(row.last), count: Number(row.total) };
    },
    positionAfterEvents: async (range, events) => {
      const result = await pool.query<{ commit: string; prepare: string }>(
        `SELECT transaction_id::text AS commit, global_position::text AS prepare FROM events WHERE ${IN_RANGE}
          ORDER BY transaction_id, global_position OFFSET $5 LIMIT 1`,
        [...rangeValues(range), events - 1],
      );
      const row = result.rows[0];
      return row === undefined ? range.upTo : { commit: BigInt(row.commit), prepare: BigInt(row.prepare) };
    },
    eventsOfOtherTypes: async (range, types): Promise<readonly EventAddress[]> => {
      const result = await pool.query<{ stream_id: string; stream_revision: string }>(
        `SELECT DISTINCT ON (event_type) stream_id, stream_revision::text FROM events WHERE event_type <> ALL($5::text[]) AND ${IN_RANGE}`,
        [...rangeValues(range), types],
      );
      return result.rows.map((row) => ({ streamId: row.stream_id, revision: BigInt(row.stream_revision) }));
    },
    recordedStreamRevision: async (streamId) => {
      const result = await pool.query<{ revision: string }>('SELECT revision::text FROM event_streams WHERE stream_id = $1', [streamId]);
      const row = result.rows[0];
      return row === undefined ? undefined : BigInt(row.revision);
    },
    streamIdsStartingWith: async (prefix) => {
      const result = await pool.query<{ stream_id: string }>('SELECT stream_id FROM event_streams WHERE stream_id LIKE $1 ORDER BY stream_id', [likePrefix(prefix)]);
      return result.rows.map((row) => row.stream_id);
    },
  };
}
