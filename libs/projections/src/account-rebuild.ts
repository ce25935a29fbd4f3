import { comparePositions, formatPosition, positionValues, readWholeStream, START, type EventStore, type Position, type RecordedEvent } from '@app/event-store';
import { withConnectionPair, type TurnWait } from '@app/database';
import type { Pool, PoolClient } from 'pg';
import { lockCheckpoint } from './checkpoints.js';
import { applyEventByEvent } from './event-by-event.js';
import { KEYED_PLANS } from './inline-projections.js';
import type { Projection } from './projection.js';

export type AccountRecomputation = { readonly name: string; readonly eventsApplied: number; readonly checkpoint: string | null };

export type AccountRebuildResult = {
  readonly userId: string;
  readonly projections: readonly AccountRecomputation[];
};

/** The projections that declare per-account rows, in a fixed order (their checkpoints are locked in it). */
export function accountProjections(projections: readonly Projection[]): readonly Projection[] {
  return projections.filter((projection) => projection.accountRows !== undefined).sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Recomputes one account's rows in every projection that declares them, in one transaction: each
 * projection's checkpoint row is locked (its runner waits), the account's rows are deleted and its
 * stream's events up to that checkpoint are applied again. Events after the checkpoint are the
 * runner's, as always, so the rows end exactly as an incremental build leaves them.
 */
export async function rebuildAccount(store: EventStore, pool: Pool, projections: readonly Projection[], userId: string, turnWait?: TurnWait): Promise<AccountRebuildResult> {
  // It holds a connection and reads the stream through the store with a second: it takes its turn with the other such work on the pool.
  return withConnectionPair(pool, () => rebuildAccountHoldingAConnection(store, pool, projections, userId), turnWait);
}

async function rebuildAccountHoldingAConnection(store: EventStore, pool: Pool, projections: readonly Projection[], userId: string): Promise<AccountRebuildResult> {
  const client = await pool.connect();
  let failed = false;
  try {
    await client.query('BEGIN');
    const results: AccountRecomputation[] = [];
    for (const projection of accountProjections(projections)) results.push(await recomputeAccount(client, store, projection, userId));
    await client.query('COMMIT');
    return { userId, projections: results };
  } catch (error) {
    failed = true;
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    // Not back to the pool after a failure: an event-by-event recomputation leaves its statements prepared.
    client.release(failed);
  }
}

/** Inside the caller's transaction: lock the projection's checkpoint, clear the account's rows, apply the events they hold. */
export async function recomputeAccount(client: PoolClient, store: EventStore, projection: Projection, userId: string): Promise<AccountRecomputation> {
  return (await recomputeAccountEvents(client, store, projection, userId)).recomputation;
}

/**
 * `recomputeAccount`, also returning the events the recomputed rows hold. The stream is held against
 * appends meanwhile (when the events share the database): an inline append commits its events and
 * rows together, and one landing between the reads would look like a difference.
 *
 * The rows are built set-based inside PostgreSQL (the projection's `ofEvents`) when the events are
 * in its `events` table and of types those statements handle: one statement per table, where
 * applying the events one by one updated the account's balance and lot rows once per event, each
 * update in the same transaction walking past every earlier version of the row (a 10,000-event
 * account took 31 s in `npm run bench:rebuild`, with its writes held all along). A store without
 * that table, or an event type they do not handle, takes `applyEventByEvent`.
 */
export async function recomputeAccountEvents(
  client: PoolClient,
  store: EventStore,
  projection: Projection,
  userId: string,
): Promise<{ readonly recomputation: AccountRecomputation; readonly events: readonly RecordedEvent[] }> {
  const rows = projection.accountRows?.(userId);
  if (rows === undefined) throw new Error(`${projection.name} has no per-account rows`);
  const checkpoint = await lockCheckpoint(client, projection.name);
  await store.postgres?.holdStream(client, rows.streamId);
  for (const change of rows.clear) await client.query(change.text, [...change.values]);
  const events = await eventsInReadModel(client, projection, await readWholeStream(store, rows.streamId), checkpoint);
  const setBased = store.postgres === undefined ? undefined : setBasedStatements(projection, events);
  if (setBased !== undefined) {
    const values = [rows.streamId, ...positionValues(checkpoint ?? START)];
    await client.query(KEYED_PLANS);
    for (const statement of setBased) await client.query(statement, values);
  } else {
    await applyEventByEvent(client, projection, events);
  }
  const recomputation = { name: projection.name, eventsApplied: events.length, checkpoint: checkpoint === undefined ? null : formatPosition(checkpoint) };
  return { recomputation, events };
}

/**
 * The projection's set-based statements for `events` (those of one stream that its tables hold),
 * with the condition that selects the same events in SQL: `$1` the stream, at or before the
 * checkpoint `$2`/`$3`, or applied inline by their transaction. Undefined when the projection has
 * none, or when an event it projects is of a type they do not handle.
 */
function setBasedStatements(projection: Projection, events: readonly RecordedEvent[]): readonly string[] | undefined {
  const bulk = projection.bulkLoad;
  if (bulk?.ofEvents === undefined) return undefined;
  const covered = new Set(bulk.eventTypes);
  if (events.some((event) => !covered.has(event.type) && projection.project(event).length > 0)) return undefined;
  const checkpointed = '(events.transaction_id, events.global_position) <= ($2::text::xid8, $3::bigint)';
  const table = bulk.inline?.appliedTransactions;
  const inline = table === undefined ? '' : ` OR EXISTS (SELECT 1 FROM ${table} applied WHERE applied.transaction_id = events.transaction_id)`;
  return bulk.ofEvents(`events.stream_id = $1 AND (${checkpointed}${inline})`);
}


/**
 * Of `events`, those the projection's tables hold, in `$all` order: every event at or before the
 * checkpoint, and every later one its transaction applied inline. The rest are the runner's to apply.
 */
export async function eventsInReadModel(
  client: PoolClient,
  projection: Projection,
  events: readonly RecordedEvent[],
  checkpoint: Position | undefined,
): Promise<readonly RecordedEvent[]> {
  const passed = (event: RecordedEvent) => checkpoint !== undefined && comparePositions(event.position, checkpoint) <= 0;
  const table = projection.bulkLoad?.inline?.appliedTransactions;
  const later = [...new Set(events.filter((event) => !passed(event)).map((event) => event.position.commit.toString()))];
  let inline = new Set<string>();
  if (table !== undefined && later.length > 0) {
    const result = await client.query<{ transaction_id: string }>(`SELECT transaction_id::text FROM ${table} WHERE transaction_id = ANY($1::xid8[])`, [later]);
    inline = new Set(result.rows.map((row) => row.transaction_id));
  }
  return events.filter((event) => passed(event) || inline.has(event.position.commit.toString())).sort((a, b) => comparePositions(a.position, b.position));
}
