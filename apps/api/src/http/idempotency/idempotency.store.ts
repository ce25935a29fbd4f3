import type { Pool } from 'pg';

export type StoredResponse = { readonly status: number; readonly contentType: string; readonly body: string };

export type Claim =
  | { readonly kind: 'claimed'; readonly firstClaimedAt: Date }
  | { readonly kind: 'completed'; readonly requestHash: string; readonly response: StoredResponse }
  | { readonly kind: 'in_progress'; readonly requestHash: string };

export type IdempotencyStoreOptions = {
  /** How long a key and its response are kept (at least 24 hours). */
  readonly ttlHours: number;
  /** After this, an unfinished first request is presumed dead and its key may be taken over. */
  readonly lockSeconds: number;
};

type KeyRow = { request_hash: string; state: 'in_progress' | 'completed'; response_status: number | null; response_content_type: string | null; response_body: string | null };

/** The `idempotency_keys` table: one row per (scope, key), claimed by the first request, then its response. */
export class IdempotencyStore {
  constructor(
    private readonly pool: Pool,
    private readonly options: IdempotencyStoreOptions,
  ) {}

  /**
   * Claims the key for this request, or reports who has it. An expired row, or one whose request
   * died while holding it or was released (same request, lease lapsed), is taken over. A takeover
   * keeps `created_at`, the first claim of the key: no attempt of the request can be older.
   */
  async claim(scope: string, key: string, requestHash: string): Promise<Claim> {
    const claimed = await this.pool.query<{ created_at: Date }>(
      `INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until, expires_at)
       VALUES ($1, $2, $3, 'in_progress', now() + make_interval(secs => $4), now() + make_interval(hours => $5))
       ON CONFLICT (scope, key) DO UPDATE SET
         request_hash = excluded.request_hash, state = 'in_progress', response_status = NULL, response_content_type = NULL, response_body = NULL,
         created_at = CASE WHEN idempotency_keys.expires_at < now() THEN now() ELSE idempotency_keys.created_at END,
         locked_until = excluded.locked_until, expires_at = excluded.expires_at
       WHERE idempotency_keys.expires_at < now()
          OR (idempotency_keys.state = 'in_progress' AND idempotency_keys.locked_until < now() AND idempotency_keys.request_hash = excluded.request_hash)
       RETURNING created_at`,
      [scope, key, requestHash, this.options.lockSeconds, this.options.ttlHours],
    );
    const row = claimed.rows[0];
    if (row !== undefined) return { kind: 'claimed', firstClaimedAt: row.created_at };
    const found = await this.find(scope, key);
    // Deleted between the two statements (purged): try once more.
    return found ?? this.claim(scope, key, requestHash);
  }

  async find(scope: string, key: string): Promise<Claim | undefined> {
    const result = await this.pool.query<KeyRow>(
      'SELECT request_hash, state, response_status, response_content_type, response_body FROM idempotency_keys WHERE scope = $1 AND key = $2',
      [scope, key],
    );
    const row = result.rows[0];
    if (row === undefined) return undefined;
    if (row.state === 'in_progress' || row.response_status === null) return { kind: 'in_progress', requestHash: row.request_hash };
    return {
      kind: 'completed',
      requestHash: row.request_hash,
      response: { status: row.response_status, contentType: row.response_content_type ?? 'application/json; charset=utf-8', body: row.response_body ?? '' },
    };
  }

  async complete(scope: string, key: string, response: StoredResponse): Promise<void> {
    await this.pool.query(
      `UPDATE idempotency_keys SET state = 'completed', response_status = $3, response_content_type = $4, response_body = $5 WHERE scope = $1 AND key = $2`,
      [scope, key, response.status, response.contentType, response.body],
    );
  }

  /**
   * Frees a key whose request failed in a way worth retrying (5xx, a concurrency conflict), so the
   * retry does the work: its lease ends now. The row stays, with its first claim time, because the
   * failed attempt may have appended its events before failing and the retry must find them.
   */
  async release(scope: string, key: string): Promise<void> {
    await this.pool.query(`UPDATE idempotency_keys SET locked_until = '-infinity' WHERE scope = $1 AND key = $2 AND state = 'in_progress'`, [scope, key]);
  }

  /** Drops a key this request holds: its request was refused before doing any work. */
  async forget(scope: string, key: string): Promise<void> {
    await this.pool.query(`DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'in_progress'`, [scope, key]);
  }

  /** Deletes expired keys; returns how many. */
  async purge(): Promise<number> {
    const result = await this.pool.query('DELETE FROM idempotency_keys WHERE expires_at < now()');
    return result.rowCount ?? 0;
  }
}
