import type { ClientBase, Pool } from 'pg';

// Every statement on `projection_failures` is here: the runner records and clears, the status reads.

/** What a runner knows of a failure when it happens. */
export type ProjectionFailure = {
  /** The failing event's position (formatPosition), or `unknown` when the batch failed before any event (a lost connection). */
  readonly position: string;
  readonly eventType: string;
  readonly error: string;
  readonly failedAt: Date;
  /** Failures in a row at this position. */
  readonly attempts: number;
};

/** A failure as stored: the attempts are counted across processes, from when the projection first stopped at `position`. */
export type StoredProjectionFailure = ProjectionFailure & { readonly firstFailedAt: Date };

/** Longest error message kept: enough for any driver or handler message, bounded whatever is thrown. */
const ERROR_LENGTH_MAX = 2_000;

type FailureRow = { position: string; event_type: string; error: string; attempts: number; first_failed_at: Date; failed_at: Date };

/**
 * Records a failure of the projection, counting it as one more attempt when the projection failed at
 * the same position before (whichever process ran it), as the first one otherwise.
 */
export async function recordProjectionFailure(db: Pool | ClientBase, name: string, failure: ProjectionFailure): Promise<void> {
  await db.query(
    `INSERT INTO projection_failures (name, position, event_type, error, attempts, first_failed_at, failed_at) VALUES ($1, $2, $3, $4, 1, $5, $5)
     ON CONFLICT (name) DO UPDATE SET
       attempts = CASE WHEN projection_failures.position = excluded.position THEN projection_failures.attempts + 1 ELSE 1 END,
       first_failed_at = CASE WHEN projection_failures.position = excluded.position THEN projection_failures.first_failed_at ELSE excluded.first_failed_at END,
       position = excluded.position, event_type = excluded.event_type, error = excluded.error, failed_at = excluded.failed_at`,
    [name, failure.position, failure.eventType, failure.error.slice(0, ERROR_LENGTH_MAX), failure.failedAt],
  );
}

/** Inside the transaction that moves the checkpoint: the projection got past its failure. */
export async function clearProjectionFailure(client: ClientBase, name: string): Promise<void> {
  await client.query('DELETE FROM projection_failures WHERE name = $1', [name]);
}

/** The projection's last failure since its checkpoint last moved; undefined when it has none. */
export async function readProjectionFailure(db: Pool | ClientBase, name: string): Promise<StoredProjectionFailure | undefined> {
  const result = await db.query<FailureRow>('SELECT position, event_type, error, attempts, first_failed_at, failed_at FROM projection_failures WHERE name = $1', [name]);
  const row = result.rows[0];
  if (row === undefined) return undefined;
  return { position: row.position, eventType: row.event_type, error: row.error, attempts: row.attempts, firstFailedAt: row.first_failed_at, failedAt: row.failed_at };
}
