import { randomUUID } from 'node:crypto';
import { DatabaseUnavailableError } from '@app/database';
import type { Pool } from 'pg';
import { StatementBatches } from './statement-batches.js';

/** A response as replayed: its status, body and the headers that carry meaning (`location`: where a 202's work is read). */
export type StoredResponse = { readonly status: number; readonly contentType: string; readonly body: string; readonly location?: string };

/**
 * What a key row records of its first request (docs/adr/0008, addendum): `legacyHash`, the
 * fingerprint every version computes (stored as `request_hash`, so an older instance still matches a
 * byte-identical retry); `fingerprint`, the one that reads a retry as the API reads it; `requestId`,
 * from which the ids of the events of the request derive, as every version derives it.
 */
export type RequestIdentity = { readonly legacyHash: string; readonly fingerprint: string; readonly requestId: string };

/**
 * Who has the key: this request (`claimed`, with the request id of the key's first request, which a
 * retry must reuse to find the events an earlier attempt appended; `firstClaim` when no earlier
 * attempt of it can exist, a new key or an expired one of another request), or the first request,
 * still running or completed; `sameRequest` says whether that is this request or another.
 */
export type Claim =
  /**
   * `owner`: the lease owner recorded on the key by this claim (its process); `claimId`: this claim's
   * own id, recorded with it: the request frees or completes the key only while its claim is the one
   * recorded (a retry that took the key over, even in the same process, has another).
   */
  | { readonly kind: 'claimed'; readonly firstClaimedAt: Date; readonly requestId: string; readonly firstClaim: boolean; readonly owner: string; readonly claimId: string }
  | { readonly kind: 'completed'; readonly sameRequest: boolean; readonly response: StoredResponse }
  | { readonly kind: 'in_progress'; readonly sameRequest: boolean };

export type IdempotencyStoreOptions = {
  /** How long a key and its response are kept (at least 24 hours). */
  readonly ttlHours: number;
  /**
   * After this, an unfinished first request is presumed lost (a live process that hangs) and its key
   * may be taken over; a key whose process died is taken over at once (`lease`).
   */
  readonly lockSeconds: number;
  /**
   * The advisory lock this process holds while it lives; recorded on every key it claims. `held`:
   * whether its session holds it now (not while a lost session is being replaced).
   */
  readonly lease: { readonly namespace: string; readonly owner: string; readonly held: boolean };
};

/** How long a claim waits for a lost lease session's replacement to hold its lock, and how often it looks. */
const LEASE_WAIT_MS_MAX = 5_000;
const LEASE_POLL_MS = 50;

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

/**
 * The stored row (`idempotency_keys`) is of the claiming request, whose identity is
 * `excluded.request_identity` (see `isSameRequest`, which says the same of a row read back). COALESCE: a row without an identity
 * (an older version's) is not the same by fingerprint, rather than unknown, which `NOT` and `CASE`
 * would read as neither.
 */
const SAME_BY_FINGERPRINT = `COALESCE(idempotency_keys.request_identity->>'legacyHash' = idempotency_keys.request_hash AND idempotency_keys.request_identity->>'fingerprint' = excluded.request_identity->>'fingerprint', false)`;
const SAME_REQUEST = `(idempotency_keys.request_hash = excluded.request_hash OR ${SAME_BY_FINGERPRINT})`;

/**
 * Whether a key row is of the request with `identity`: the same legacy fingerprint, or a valid
 * identity (written with the row's `request_hash`) with the same fingerprint.
 */
function isSameRequest(row: Pick<KeyRow, 'request_hash' | 'request_identity'>, identity: RequestIdentity): boolean {
  if (row.request_hash === identity.legacyHash) return true;
  return row.request_identity !== null && row.request_identity.legacyHash === row.request_hash && row.request_identity.fingerprint === identity.fingerprint;
}

const PURGE_CHUNK = 1_000;

/** Claims, and completions, in flight at once, each batch of at most 64 keys. */
const STATEMENT_BATCHES = { maxInFlight: 2, maxItems: 64, keyOf: (item: { readonly scope: string; readonly key: string }) => keyOf(item) };

type ClaimedRow = { readonly created_at: Date; readonly request_identity: RequestIdentity; readonly first_claim: boolean };
type PendingClaim = { readonly scope: string; readonly key: string; readonly identity: RequestIdentity; readonly owner: string; readonly claimId: string };
/** Whose claim a key is ended by: the claim's id and its process's lease owner (both fence it: see migration 137). */
export type ClaimHolder = { readonly claimId: string; readonly owner: string };
type PendingCompletion = { readonly scope: string; readonly key: string; readonly response: StoredResponse; readonly holder: ClaimHolder };

/** Where a key row is, as one string (a batch holds each at most once). */
function keyOf({ scope, key }: { readonly scope: string; readonly key: string }): string {
  return JSON.stringify([scope, key]);
}

function compareKeys(a: { readonly scope: string; readonly key: string }, b: { readonly scope: string; readonly key: string }): number {
  return a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

type KeyRow = {
  request_hash: string;
  request_identity: RequestIdentity | null;
  state: 'in_progress' | 'completed';
  response_status: number | null;
  response_content_type: string | null;
  response_body: string | null;
  response_location: string | null;
};

/** The `idempotency_keys` table: one row per (scope, key), claimed by the first request, then its response. */
export class IdempotencyStore {
  private readonly claims: StatementBatches<PendingClaim, ClaimedRow | undefined>;
  private readonly completions: StatementBatches<PendingCompletion, void>;

  constructor(
    private readonly pool: Pool,
    private readonly options: IdempotencyStoreOptions,
  ) {
    this.claims = new StatementBatches<PendingClaim, ClaimedRow | undefined>(STATEMENT_BATCHES, (claims) => this.claimAll(claims));
    this.completions = new StatementBatches<PendingCompletion, void>(STATEMENT_BATCHES, (completions) => this.completeAll(completions));
  }

  /**
   * Claims the key for this request, or reports who has it. An expired row, or one of the same
   * request whose process died (its lease lock is free), whose lease lapsed or which was released,
   * is taken over. A takeover keeps `created_at`, the first claim of the key: no attempt of the
   * request can be older; a claim that sets it now is the key's first (`firstClaim`). A claim run
   * again after its batch failed (StatementBatches) takes back a row its first run committed before
   * the answer was lost: the row already carries its claim id.
   *
   * A row is of this request when its `request_hash` is this request's legacy fingerprint, or its
   * identity (still valid: written with that `request_hash`) has this request's fingerprint. A row of
   * this request keeps its identity, and so its request id, even when it expired; a row matched by its
   * `request_hash` alone (an older version's) takes this request's identity, whose request id is the
   * same (it derives from the same legacy fingerprint and path). Any other row this claim may take
   * (expired) takes this request's hash and identity.
   */
  async claim(scope: string, key: string, identity: RequestIdentity): Promise<Claim> {
    // A claim recorded under an owner no session holds would read as its process's death to any
    // other claim of the key, which would take it over while this request runs. After a lost lease
    // session its replacement takes the lock within a second or two of the database's return: the
    // claim waits for it that long, then is refused as the database being away.
    await this.untilLeaseHeld();
    // Read once: the lease's owner changes when its session is lost and taken again.
    const owner = this.options.lease.owner;
    const claimId = randomUUID();
    let row: ClaimedRow | undefined;
    try {
      row = await this.claims.submit({ scope, key, identity, owner, claimId });
    } catch (error) {
      // The claim may have committed before its answer was lost (a connection cut): then the key
      // would stay held by this claim, which no request runs, until its lock lapses, and every retry
      // would wait on it and get 409 IN_PROGRESS meanwhile. Freed now, if the database answers.
      await this.release(scope, key, { claimId, owner }).catch(() => undefined);
      throw error;
    }
    if (row !== undefined) return { kind: 'claimed', firstClaimedAt: row.created_at, requestId: row.request_identity.requestId, firstClaim: row.first_claim, owner, claimId };
    const found = await this.find(scope, key, identity);
    // Deleted between the two statements (purged): try once more.
    return found ?? this.claim(scope, key, identity);
  }

  private async untilLeaseHeld(): Promise<void> {
    const deadline = Date.now() + LEASE_WAIT_MS_MAX;
    while (!this.options.lease.held) {
      if (Date.now() >= deadline) throw new DatabaseUnavailableError({ cause: new Error(`the idempotency lease session was not held again within ${LEASE_WAIT_MS_MAX} ms`) });
      await new Promise((resolve) => setTimeout(resolve, LEASE_POLL_MS));
    }
  }

  /**
   * The claims of a batch, in one statement: each row is taken as `claim` says, or left (undefined)
   * to be read by `find`. Sorted by key, so that batches running alongside (in this process or
   * another) lock the rows they share in the same order and cannot deadlock.
   */
  private async claimAll(claims: readonly PendingClaim[]): Promise<readonly (ClaimedRow | undefined)[]> {
    const sorted = [...claims].sort((a, b) => compareKeys(a, b));
    const claimed = await this.pool.query<ClaimedRow & { scope: string; key: string }>({
      // Stryker disable next-line StringLiteral: equivalent in behaviour; emptied, pg sends the statement unnamed and it is parsed and planned on every call (a cost, not a result).
      name: 'idempotency_claim_all',
      text: `INSERT INTO idempotency_keys (scope, key, request_hash, request_identity, state, locked_until, expires_at, lease_owner, claim_id)
       SELECT claim.scope, claim.key, claim.request_hash, claim.request_identity, 'in_progress', now() + make_interval(secs => $4), now() + make_interval(hours => $5), claim.owner, claim.claim_id
         FROM unnest($1::text[], $2::text[], $3::text[], $7::jsonb[], $8::text[], $9::uuid[]) WITH ORDINALITY AS claim(scope, key, request_hash, request_identity, owner, claim_id, position)
        ORDER BY claim.position
       ON CONFLICT (scope, key) DO UPDATE SET
         request_hash = CASE WHEN ${SAME_BY_FINGERPRINT} THEN idempotency_keys.request_hash ELSE excluded.request_hash END,
         request_identity = CASE WHEN ${SAME_BY_FINGERPRINT} THEN idempotency_keys.request_identity ELSE excluded.request_identity END,
         state = 'in_progress', response_status = NULL, response_content_type = NULL, response_body = NULL, response_location = NULL,
         created_at = CASE WHEN idempotency_keys.expires_at < now() AND NOT (${SAME_REQUEST}) THEN now() ELSE idempotency_keys.created_at END,
         locked_until = excluded.locked_until, expires_at = excluded.expires_at, lease_owner = excluded.lease_owner, claim_id = excluded.claim_id
       WHERE idempotency_keys.expires_at < now()
          OR idempotency_keys.claim_id = excluded.claim_id
          OR (idempotency_keys.state = 'in_progress' AND ${SAME_REQUEST}
              AND (idempotency_keys.locked_until < now() OR NOT ${OWNER_ALIVE}))
       RETURNING scope, key, created_at, request_identity, created_at = now() AS first_claim`,
      values: [
        sorted.map((claim) => claim.scope),
        sorted.map((claim) => claim.key),
        sorted.map((claim) => claim.identity.legacyHash),
        this.options.lockSeconds,
        this.options.ttlHours,
        this.options.lease.namespace,
        sorted.map((claim) => JSON.stringify(claim.identity)),
        sorted.map((claim) => claim.owner),
        sorted.map((claim) => claim.claimId),
      ],
    });
    const byKey = new Map(claimed.rows.map((row) => [keyOf(row), row]));
    return claims.map((claim) => byKey.get(keyOf(claim)));
  }

  /** Who has the key, and whether it is the request of `identity`; undefined when nobody does. */
  async find(scope: string, key: string, identity: RequestIdentity): Promise<Claim | undefined> {
    const result = await this.pool.query<KeyRow>({
      // Stryker disable next-line StringLiteral: equivalent in behaviour, as above.
      name: 'idempotency_find',
      text: 'SELECT request_hash, request_identity, state, response_status, response_content_type, response_body, response_location FROM idempotency_keys WHERE scope = $1 AND key = $2',
      values: [scope, key],
    });
    const row = result.rows[0];
    if (row === undefined) return undefined;
    const sameRequest = isSameRequest(row, identity);
    if (row.state === 'in_progress' || row.response_status === null) return { kind: 'in_progress', sameRequest };
    return {
      kind: 'completed',
      sameRequest,
      response: {
        status: row.response_status,
        contentType: row.response_content_type ?? 'application/json; charset=utf-8',
        body: row.response_body ?? '',
        ...(row.response_location === null ? {} : { location: row.response_location }),
      },
    };
  }

  /**
   * Stores the final response of the request whose claim is `holder`'s. Not once another attempt took
   * the key over (its process seemed gone, or its lock lapsed): that attempt's answer is the one kept.
   */
  async complete(scope: string, key: string, response: StoredResponse, holder: ClaimHolder): Promise<void> {
    await this.completions.submit({ scope, key, response, holder });
  }

  /** The completions of a batch, in one statement; sorted by key, as `claimAll` is. */
  private async completeAll(completions: readonly PendingCompletion[]): Promise<readonly void[]> {
    const sorted = [...completions].sort((a, b) => compareKeys(a, b));
    await this.pool.query({
      // Stryker disable next-line StringLiteral: equivalent in behaviour, as above.
      name: 'idempotency_complete_claims',
      text: 'SELECT idempotency_complete_claims($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::text[])',
      values: [
        sorted.map((completion) => completion.scope),
        sorted.map((completion) => completion.key),
        sorted.map((completion) => completion.response.status),
        sorted.map((completion) => completion.response.contentType),
        sorted.map((completion) => completion.response.body),
        sorted.map((completion) => completion.response.location ?? null),
        sorted.map((completion) => completion.holder.claimId),
        sorted.map((completion) => completion.holder.owner),
      ],
    });
    return completions.map(() => undefined);
  }

  /**
   * Frees a key whose request failed in a way worth retrying (5xx, a concurrency conflict), so the
   * retry does the work: its lease ends now. The row stays, with its first claim time, because the
   * failed attempt may have appended its events before failing and the retry must find them. Only
   * while the request's claim (`holder`) still holds it.
   */
  async release(scope: string, key: string, holder: ClaimHolder): Promise<void> {
    await this.pool.query(`UPDATE idempotency_keys SET locked_until = '-infinity' WHERE scope = $1 AND key = $2 AND state = 'in_progress' AND claim_id = $3 AND lease_owner = $4`, [
      scope,
      key,
      holder.claimId,
      holder.owner,
    ]);
  }

  /**
   * Drops a key this request holds: its request was refused before doing any work, and it made the
   * key's first claim (a takeover must `release` instead: an earlier attempt may have done the work).
   * Only while its claim (`holder`) still holds it: a retry that took the key over (this process's
   * session was lost meanwhile, or the lock lapsed) may have done the work, and its row stays.
   */
  async forget(scope: string, key: string, holder: ClaimHolder): Promise<void> {
    await this.pool.query(`DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'in_progress' AND claim_id = $3 AND lease_owner = $4`, [scope, key, holder.claimId, holder.owner]);
  }

  /**
   * Deletes expired keys, a thousand at a time; returns how many. Each chunk locks its rows in key
   * order and skips those a claim holds (which may be taking the key over), so it never waits for a
   * claim batch, which locks its keys in the same order, and cannot deadlock with one.
   */
  async purge(): Promise<number> {
    let purged = 0;
    for (;;) {
      const result = await this.pool.query({
        text: `DELETE FROM idempotency_keys WHERE (scope, key) IN (
                 SELECT scope, key FROM idempotency_keys WHERE expires_at < now() ORDER BY scope, key LIMIT $1 FOR UPDATE SKIP LOCKED)`,
        values: [PURGE_CHUNK],
      });
      purged += result.rowCount ?? 0;
      if ((result.rowCount ?? 0) < PURGE_CHUNK) return purged;
    }
  }
}
