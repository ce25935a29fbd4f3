import type { Position } from '@app/event-store';
import type { Pool, PoolClient } from 'pg';

type CheckpointRow = { commit_position: string; prepare_position: string };

export async function readCheckpoint(db: Pool | PoolClient, name: string): Promise<Position | undefined> {
  const result = await db.query<CheckpointRow>('SELECT commit_position::text, prepare_position::text FROM projection_checkpoints WHERE name = $1', [name]);
  const row = result.rows[0];
  return row === undefined ? undefined : { commit: BigInt(row.commit_position), prepare: BigInt(row.prepare_position) };
}

