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
 * (and anything else that moves it) waits. Undefined, and nothing locked, when it has no row yet.
 */
export async function lockCheckpoint(client: ClientBase, name: string): Promise<Position | undefined> {
  const result = await client.query<CheckpointRow>(`SELECT ${COLUMNS} FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, [name]);
  return positionOf(result.rows[0]);
}

/** Inside the caller's transaction: the checkpoint locked as `lockCheckpoint` does, its row created at the start of `$all` first if missing. */
export async function claimCheckpoint(client: ClientBase, name: string): Promise<Position> {
  await client.query('INSERT INTO projection_checkpoints (name, commit_position, prepare_position) VALUES ($1, 0, 0) ON CONFLICT (name) DO NOTHING', [name]);
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
