import { comparePositions, formatPosition, READ_COUNT_MAX, type EventStore, type Position, type RecordedEvent } from '@app/event-store';
import type { Pool, PoolClient } from 'pg';
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
export async function rebuildAccount(store: EventStore, pool: Pool, projections: readonly Projection[], userId: string): Promise<AccountRebuildResult> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const results: AccountRecomputation[] = [];
    for (const projection of accountProjections(projections)) results.push(await recomputeAccount(client, store, projection, userId));
    await client.query('COMMIT');
    return { userId, projections: results };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** Inside the caller's transaction: lock the projection's checkpoint, clear the account's rows, apply its events up to the checkpoint. */
export async function recomputeAccount(client: PoolClient, store: EventStore, projection: Projection, userId: string): Promise<AccountRecomputation> {
  const rows = projection.accountRows?.(userId);
  if (rows === undefined) throw new Error(`${projection.name} has no per-account rows`);
  const checkpoint = await lockCheckpoint(client, projection.name);
  for (const change of rows.clear) await client.query(change.text, [...change.values]);
  const events = checkpoint === undefined ? [] : (await readWholeStream(store, rows.streamId)).filter((event) => comparePositions(event.position, checkpoint) <= 0);
  events.sort((a, b) => comparePositions(a.position, b.position));
  for (const event of events) {
    for (const change of projection.project(event)) await client.query(change.text, [...change.values]);
  }
  return { name: projection.name, eventsApplied: events.length, checkpoint: checkpoint === undefined ? null : formatPosition(checkpoint) };
}

export async function lockCheckpoint(client: PoolClient, name: string): Promise<Position | undefined> {
  const locked = await client.query<{ commit_position: string; prepare_position: string }>(
    'SELECT commit_position::text, prepare_position::text FROM projection_checkpoints WHERE name = $1 FOR UPDATE',
    [name],
  );
  const row = locked.rows[0];
  return row === undefined ? undefined : { commit: BigInt(row.commit_position), prepare: BigInt(row.prepare_position) };
}

export async function readWholeStream(store: EventStore, streamId: string): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for (;;) {
    const page = await store.readStream(streamId, { fromRevision: BigInt(events.length), maxCount: READ_COUNT_MAX });
    events.push(...page);
    if (page.length < READ_COUNT_MAX) return events;
  }
}
