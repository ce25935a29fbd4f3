import type { Pool } from 'pg';

/** A response as replayed: its status, body and the headers that carry meaning (`location`: where a 202's work is read). */
export type StoredResponse = { readonly status: number; readonly contentType: string; readonly body: string; readonly location?: string };

/**
 * Who has the key. `requestHash` is the fingerprint the row holds: a takeover keeps the one stored,
 * which may be another fingerprint of the same request (an older version's), and the request id is
 * derived from it.
 */
export type Claim =
  | { readonly kind: 'claimed'; readonly firstClaimedAt: Date; readonly requestHash: string }
  | { readonly kind: 'completed'; readonly requestHash: string; readonly response: StoredResponse }
  | { readonly kind: 'in_progress'; readonly requestHash: string };

export type IdempotencyStoreOptions = {
  /** How long a key and its response are kept (at least 24 hours). */
  readonly ttlHours: number;
  /**
   * After this, an unfinished first request is presumed lost (a live process that hangs) and its key
   * may be taken over; a key whose process died is taken over at once (`lease`).
   */
  readonly lockSeconds: number;
  /** The advisory lock this process holds while it lives; recorded on every key it claims. */
  readonly lease: { readonly namespace: string; readonly owner: string };
};

/**
 * Whether the process that claimed the key still lives: some session holds its lease lock
 * (IdempotencyLease). `$6` is the lock's first key. pg_locks is read only for a key in progress with
 * the same request, the rare case of a retry. A row without an owner (claimed by an older version)
 * counts as alive: its `locked_until` alone decides.
 */
const OWNER_ALIVE = `(idempotency_keys.lease_owner IS NULL OR EXISTS (
  SELECT 1 FROM pg_locks AS held
   WHERE held.locktype = 'advisory' AND held.granted AND held.objsubid = 2
     AND held.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND held.classid = hashtext($6)::oid AND held.objid = hashtext(idempotency_keys.lease_owner)::oid))`;

type KeyRow = {
  request_hash: string;
  state: 'in_progress' | 'completed';
  response_status: number | null;
  response_content_type: string | null;
  response_body: string | null;
  response_location: string | null;
};

/** The `idempotency_keys` table: one row per (scope, key), claimed by the first request, then its response. */
export class IdempotencyStore {
  constructor(
    private readonly pool: Pool,
    private readonly options: IdempotencyStoreOptions,
  ) {}

  /**
   * Claims the key for this request, or reports who has it. An expired row, or one of the same
   * request whose process died (its lease lock is free), whose lease lapsed or which was released,
   * is taken over. A takeover keeps `created_at`, the first claim of the key: no attempt of the
   * request can be older.
   *
   * A row is of the same request when it holds `requestHash` or `earlierHash`, the fingerprint an
   * older version computed for it. A takeover keeps the row's hash, because the ids of the events its
   * first attempt may have appended derive from it; only a fresh claim (a new or expired row) stores
   * `requestHash`.
   */
  async claim(scope: string, key: string, requestHash: string, earlierHash: string = requestHash): Promise<Claim> {
    const claimed = await this.pool.query<{ created_at: Date; request_hash: string }>(
      `INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until, expires_at, lease_owner)
       VALUES ($1, $2, $3, 'in_progress', now() + make_interval(secs => $4), now() + make_interval(hours => $5), $7)
       ON CONFLICT (scope, key) DO UPDATE SET
         request_hash = CASE WHEN idempotency_keys.expires_at < now() THEN excluded.request_hash ELSE idempotency_keys.request_hash END,
         state = 'in_progress', response_status = NULL, response_content_type = NULL, response_body = NULL, response_location = NULL,
         created_at = CASE WHEN idempotency_keys.expires_at < now() THEN now() ELSE idempotency_keys.created_at END,
         locked_until = excluded.locked_until, expires_at = excluded.expires_at, lease_owner = excluded.lease_owner
       WHERE idempotency_keys.expires_at < now()
          OR (idempotency_keys.state = 'in_progress' AND idempotency_keys.request_hash IN (excluded.request_hash, $8)
              AND (idempotency_keys.locked_until < now() OR NOT ${OWNER_ALIVE}))
       RETURNING created_at, request_hash`,
      [scope, key, requestHash, this.options.lockSeconds, this.options.ttlHours, this.options.lease.namespace, this.options.lease.owner, earlierHash],
    );
    const row = claimed.rows[0];
    if (row !== undefined) return { kind: 'claimed', firstClaimedAt: row.created_at, requestHash: row.request_hash };
    const found = await this.find(scope, key);
    // Deleted between the two statements (purged): try once more.
    return found ?? this.claim(scope, key, requestHash, earlierHash);
  }

  async find(scope: string, key: string): Promise<Claim | undefined> {
    const result = await this.pool.query<KeyRow>(
      'SELECT request_hash, state, response_status, response_content_type, response_body, response_location FROM idempotency_keys WHERE scope = $1 AND key = $2',
      [scope, key],
    );
    const row = result.rows[0];
    if (row === undefined) return undefined;
    if (row.state === 'in_progress' || row.response_status === null) return { kind: 'in_progress', requestHash: row.request_hash };
    return {
      kind: 'completed',
      requestHash: row.request_hash,
      response: {
        status: row.response_status,
        contentType: row.response_content_type ?? 'application/json; charset=utf-8',
        body: row.response_body ?? '',
        ...(row.response_location === null ? {} : { location: row.response_location }),
      },
    };
  }

  async complete(scope: string, key: string, response: StoredResponse): Promise<void> {
    await this.pool.query(
      `UPDATE idempotency_keys SET state = 'completed', response_status = $3, response_content_type = $4, response_body = $5, response_location = $6 WHERE scope = $1 AND key = $2`,
      [scope, key, response.status, response.contentType, response.body, response.location ?? null],
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
