import type { RecordedEvent } from '@app/event-store';
import type { PoolClient } from 'pg';
import { prepareValue } from 'pg/lib/utils.js';
import type { Projection } from './projection.js';

/**
 * The row changes `project` makes of each event, in order: how the runner applies a batch the
 * set-based delta does not (every batch, with EventStoreDB), an account's recomputation where its
 * set-based statements do not apply, and what `verify` checks against. They are sent many to a round
 * trip, where one statement a round trip left PostgreSQL waiting on the client (`verify` replayed
 * about 1,400 events/s). Each distinct statement
 * is `PREPARE`d once per call and run by `EXECUTE` with its values as literals: the same parameter
 * types as a parameterised query (inferred at `PREPARE`) and the same text for each value (pg's own
 * `prepareValue`), so the rows are those the statements give one at a time. A statement that fails
 * fails its round trip and the caller's transaction, with PostgreSQL's error, naming no event (the
 * runner applies such a batch again one statement at a time to find it). The prepared statements are deallocated by the last round trip; after a failure they stay
 * with the session, under names no later call uses, so callers discard the connection then.
 */
export async function applyEventByEvent(client: PoolClient, projection: Projection, events: readonly RecordedEvent[]): Promise<void> {
  const call = (preparedCalls += 1);
  const names = new Map<string, string>();
  let pending: string[] = [];
  let pendingLength = 0;
  const send = async () => {
    if (pending.length > 0) await client.query(pending.join(';\n'));
    [pending, pendingLength] = [[], 0];
  };
  const add = async (statement: string) => {
    pending.push(statement);
    pendingLength += statement.length;
    if (pending.length >= ROUND_TRIP_STATEMENTS_MAX || pendingLength >= ROUND_TRIP_TEXT_MAX) await send();
  };
  for (const event of events) {
    for (const change of projection.project(event)) {
      let name = names.get(change.text);
      if (name === undefined) {
        // PREPARE takes one statement; a second one in the text would run there and then, once.
        if (/;\s*\S/.test(change.text)) throw new Error(`applyEventByEvent runs one statement per change, not: ${change.text}`);
        name = `event_by_event_${call}_${names.size}`;
        names.set(change.text, name);
        // Alone: PostgreSQL keeps the whole text a PREPARE came in and copies it at every EXECUTE.
        await client.query(`PREPARE ${name} AS ${change.text}`);
      }
      await add(change.values.length === 0 ? `EXECUTE ${name}` : `EXECUTE ${name}(${change.values.map((value) => sqlLiteral(client, value)).join(', ')})`);
    }
  }
  for (const name of names.values()) await add(`DEALLOCATE ${name}`);
  await send();
}

/** Statements, and characters of them, sent in one round trip at most by `applyEventByEvent`. */
const ROUND_TRIP_STATEMENTS_MAX = 1_000;
const ROUND_TRIP_TEXT_MAX = 1 << 20;

/** Calls of `applyEventByEvent` in this process, naming each call's prepared statements apart. */
let preparedCalls = 0;

/**
 * A statement's value as the SQL literal of the text pg would send for it as a parameter. A value pg
 * sends in binary (a Buffer or typed array) is refused: as text it would be the same only for bytea.
 */
function sqlLiteral(client: PoolClient, value: unknown): string {
  const text = prepareValue(value);
  if (text === null) return 'NULL';
  if (typeof text !== 'string') throw new Error('applyEventByEvent sends values as text, not a binary value');
  return client.escapeLiteral(text);
}
