import { START, type Position } from '@app/event-store';
import type { ClientBase, Pool } from 'pg';

// Every statement on `projection_checkpoints` is here: the runner, the rebuild's swap, the per-account
// rebuild and verification, and read-your-writes all read, lock and move a checkpoint the same way.

type CheckpointRow = { commit_position: string; prepare_position: string };

const COLUMNS = 'commit_position::text, prepare_position::text';

function positionOf(row: CheckpointRow | undefined): Position | undefined {
  return row === undefined ? undefined : { commit: BigInt(row.commit_position), prepare: BigInt(row.prepare_position) };
}

/** The projection's checkpoint; undefined before its first batch. */
export async function readCheckpoint(db: Pool | ClientBase, name: string): Promise<Position | undefined> {
  const result = await db.query<CheckpointRow>(`SELECT ${COLUMNS} FROM projection_checkpoints WHERE name = $1`, [name]);
  return positionOf(result.rows[0]);
}

/**
 * Inside the caller's transaction: the checkpoint, locked until the transaction ends, so the runner
 * (and anything else that moves it) waits. Undefined before the projection's first batch: its row is
 * then created at the start of `$all` and locked all the same. Before 6 December 2026 nothing was
 * locked then, and a runner starting meanwhile could create the row, move it past the account's
 * events and forget their inline records while a verification or a per-account rebuild read them:
 * those events were left out of its replay (a healthy account reported broken, once, in CI).
 */
export async function lockCheckpoint(client: ClientBase, name: string): Promise<Position | undefined> {
  const created = await client.query('INSERT INTO projection_checkpoints (name, commit_position, prepare_position) VALUES ($1, 0, 0) ON CONFLICT (name) DO NOTHING', [name]);
  const result = await client.query<CheckpointRow>(`SELECT ${COLUMNS} FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, [name]);
  return created.rowCount === 1 ? undefined : positionOf(result.rows[0]);
}

/** Inside the caller's transaction: the checkpoint locked as `lockCheckpoint` does; the start of `$all` before the first batch. */
export async function claimCheckpoint(client: ClientBase, name: string): Promise<Position> {
  return (await lockCheckpoint(client, name)) ?? START;
}

/** Inside the caller's transaction, which holds the checkpoint (`claimCheckpoint`): moves it to `position`. */
export async function writeCheckpoint(client: ClientBase, name: string, position: Position): Promise<void> {
  await client.query('UPDATE projection_checkpoints SET commit_position = $2, prepare_position = $3, updated_at = now() WHERE name = $1', [
    name,
    position.commit.toString(),
    position.prepare.toString(),
  ]);
}
