import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { createTestDatabase, type TestDatabase } from '../../../../../test/support/test-database.js';
import { IdempotencyLease } from './idempotency-lease.js';
import { IdempotencyStore, type RequestIdentity } from './idempotency.store.js';

let database: TestDatabase;
const leases: IdempotencyLease[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await Promise.all(leases.map((lease) => lease.beforeApplicationShutdown()));
  await database.drop();
});

/** One process's view of the key table: its own lease session, its own store. */
async function processOf(lockSeconds = 60): Promise<{ lease: IdempotencyLease; store: IdempotencyStore }> {
  const lease = new IdempotencyLease(database.url);
  leases.push(lease);
  await lease.onApplicationBootstrap();
  expect(lease.held).toBe(true);
  return { lease, store: new IdempotencyStore(database.pool, { ttlHours: 24, lockSeconds, lease }) };
}

const SCOPE = 'service:spec';
const HASH = 'a'.repeat(64);

/** A request's identity as the hook computes it; only equality matters to the store. */
function identityOf(legacyHash: string, fingerprint = `v2:${legacyHash}`, requestId: string = randomUUID()): RequestIdentity {
  return { legacyHash, fingerprint, requestId };
}

const REQUEST = identityOf(HASH);

/**
 * A store whose claim statements commit but whose answer is lost, as when the connection is cut just
 * after the commit: for the first `lost` claim batches of at least `minClaims` keys.
 */
function claimsAnsweredLost(lease: IdempotencyLease, minClaims: number, lost = 1): IdempotencyStore {
  let remaining = lost;
  const pool = {
    query: async (config: { name?: string; values?: unknown[][] }, values?: unknown[]) => {
      const result: unknown = await database.pool.query(config as never, values as never);
      if (config.name === 'idempotency_claim_all' && remaining > 0 && (config.values?.[0]?.length ?? 0) >= minClaims) {
        remaining -= 1;
        throw new Error('Connection terminated unexpectedly');
      }
      return result;
    },
  } as unknown as Pool;
  return new IdempotencyStore(pool, { ttlHours: 24, lockSeconds: 60, lease });
}

describe('IdempotencyStore while its lease session is lost', () => {
  it('waits for the lease lock to be held again, then claims under the new owner', async () => {
    const { lease } = await processOf();
    const replacing = { namespace: lease.namespace, owner: lease.owner, held: false };
    const store = new IdempotencyStore(database.pool, { ttlHours: 24, lockSeconds: 60, lease: replacing });
    setTimeout(() => (replacing.held = true), 200);
    const startedAt = Date.now();
    expect(await store.claim(SCOPE, randomUUID(), REQUEST)).toMatchObject({ kind: 'claimed', owner: lease.owner });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(150);
  });

  it('refuses a claim as the database away (503), writing nothing, when the lease lock is not held within 5 s: its owner would read as dead to every other claim of the key', async () => {
    const { lease, store } = await processOf();
    const key = randomUUID();
    const unheld = new IdempotencyStore(database.pool, { ttlHours: 24, lockSeconds: 60, lease: { namespace: lease.namespace, owner: `idempotency-lease ${randomUUID()}`, held: false } });
    await expect(unheld.claim(SCOPE, key, REQUEST)).rejects.toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
    expect((await database.pool.query('SELECT 1 FROM idempotency_keys WHERE key = $1', [key])).rowCount).toBe(0);
    expect((await store.claim(SCOPE, key, REQUEST)).kind).toBe('claimed');
  });
});

describe('IdempotencyStore claims whose answer was lost', () => {
  it('takes back, when a failed batch is run again claim by claim, the rows its first run committed', async () => {
    const { lease } = await processOf();
    const store = claimsAnsweredLost(lease, 2);
    const keys = Array.from({ length: 8 }, () => randomUUID());
    // The first ones go alone (two batches may run at once); those that arrive while they run go as a
    // batch, which commits and loses its answer.
    const claims = await Promise.all(keys.map((key) => store.claim(SCOPE, key, identityOf(HASH))));
    expect(claims.map((claim) => claim.kind)).toEqual(keys.map(() => 'claimed'));
  });

  it('frees a lone claim whose answer was lost, so that the retry takes the key at once rather than wait for its lock', async () => {
    const { lease, store } = await processOf();
    const key = randomUUID();
    await expect(claimsAnsweredLost(lease, 1).claim(SCOPE, key, REQUEST)).rejects.toThrow('Connection terminated unexpectedly');
    expect((await store.claim(SCOPE, key, REQUEST)).kind).toBe('claimed');
  });
});

describe('IdempotencyStore leases', () => {
  it('keeps a key for its request while the process that claimed it lives, though the request runs long', async () => {
    const first = await processOf();
    const second = await processOf();
    const key = randomUUID();
    expect((await first.store.claim(SCOPE, key, REQUEST)).kind).toBe('claimed');
    for (let attempt = 0; attempt < 3; attempt += 1) {
      expect(await second.store.claim(SCOPE, key, REQUEST)).toEqual({ kind: 'in_progress', sameRequest: true });
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  });

  it('lets a retry take a key over at once when the process that claimed it is gone, keeping the first claim time', async () => {
    const first = await processOf();
    const second = await processOf();
    const key = randomUUID();
    const claimed = await first.store.claim(SCOPE, key, REQUEST);
    if (claimed.kind !== 'claimed') throw new Error('not claimed');
    expect((await second.store.claim(SCOPE, key, REQUEST)).kind).toBe('in_progress');

    // The process dies: its session ends and PostgreSQL frees the lease lock (SIGKILL does the same).
    await first.lease.beforeApplicationShutdown();
    const startedAt = Date.now();
    const taken = await second.store.claim(SCOPE, key, REQUEST);
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    expect(taken).toEqual({ kind: 'claimed', firstClaimedAt: claimed.firstClaimedAt, requestId: REQUEST.requestId, firstClaim: false, owner: second.lease.owner, claimId: expect.any(String) as string });
    const row = await database.pool.query<{ lease_owner: string }>('SELECT lease_owner FROM idempotency_keys WHERE key = $1', [key]);
    expect(row.rows[0]?.lease_owner).toBe(second.lease.owner);
  });

  it('does not forget a key another process took over: its retry may have done the work', async () => {
    const first = await processOf();
    const second = await processOf();
    const key = randomUUID();
    const claimed = await first.store.claim(SCOPE, key, REQUEST);
    if (claimed.kind !== 'claimed' || !claimed.firstClaim) throw new Error('not the first claim');
    expect(claimed.owner).toBe(first.lease.owner);
    // The first process's session is lost (its lease lock freed) while its request still runs; a retry takes the key over.
    await first.lease.beforeApplicationShutdown();
    const takenOver = await second.store.claim(SCOPE, key, REQUEST);
    if (takenOver.kind !== 'claimed' || takenOver.firstClaim) throw new Error('not taken over');
    // The first request is refused 400 and, as the key's first claim, forgets it: the takeover's row stays.
    await first.store.forget(SCOPE, key, claimed);
    expect((await database.pool.query('SELECT 1 FROM idempotency_keys WHERE key = $1', [key])).rowCount).toBe(1);
    await second.store.forget(SCOPE, key, takenOver);
    expect((await database.pool.query('SELECT 1 FROM idempotency_keys WHERE key = $1', [key])).rowCount).toBe(0);
  });

  it('keeps the answer of the attempt that took a key over, not the late answer of the one it took it from', async () => {
    const first = await processOf();
    const second = await processOf();
    const key = randomUUID();
    const claimed = await first.store.claim(SCOPE, key, REQUEST);
    if (claimed.kind !== 'claimed') throw new Error('not claimed');
    await first.lease.beforeApplicationShutdown();
    const takenOver = await second.store.claim(SCOPE, key, REQUEST);
    if (takenOver.kind !== 'claimed') throw new Error('not taken over');
    const json = 'application/json; charset=utf-8';
    await second.store.complete(SCOPE, key, { status: 201, contentType: json, body: '{"spent":true}' }, takenOver);
    // The first attempt answers late (it found the balance spent by the takeover): its answer is not kept.
    await first.store.complete(SCOPE, key, { status: 409, contentType: json, body: '{"code":"INSUFFICIENT_BALANCE"}' }, claimed);
    await first.store.release(SCOPE, key, claimed);
    expect(await second.store.claim(SCOPE, key, REQUEST)).toEqual({ kind: 'completed', sameRequest: true, response: { status: 201, contentType: json, body: '{"spent":true}' } });
  });

  it("keeps the claim of a retry that took the key over in the same process after the first attempt's lock lapsed: the first neither frees it nor answers over it", async () => {
    const { store } = await processOf();
    const key = randomUUID();
    const slow = await store.claim(SCOPE, key, REQUEST);
    if (slow.kind !== 'claimed') throw new Error('not claimed');
    // The first attempt outlives its lock (queued behind a slow provider call); its retry lands on the same process.
    await database.pool.query("UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE scope = $1 AND key = $2", [SCOPE, key]);
    const retry = await store.claim(SCOPE, key, REQUEST);
    if (retry.kind !== 'claimed') throw new Error('not taken over');
    expect(retry.owner).toBe(slow.owner);
    expect(retry.claimId).not.toBe(slow.claimId);
    // The slow attempt fails (a 5xx) and frees what it no longer holds: nothing; a third attempt waits for the retry.
    await store.release(SCOPE, key, slow);
    await store.forget(SCOPE, key, slow);
    expect(await store.claim(SCOPE, key, REQUEST)).toEqual({ kind: 'in_progress', sameRequest: true });
    // Or it answers late: the retry's answer is the one kept.
    const json = 'application/json; charset=utf-8';
    await store.complete(SCOPE, key, { status: 202, contentType: json, body: '{"slow":true}' }, slow);
    expect(await store.find(SCOPE, key, REQUEST)).toEqual({ kind: 'in_progress', sameRequest: true });
    await store.complete(SCOPE, key, { status: 201, contentType: json, body: '{"retry":true}' }, retry);
    await store.complete(SCOPE, key, { status: 202, contentType: json, body: '{"slow":true}' }, slow);
    expect(await store.find(SCOPE, key, REQUEST)).toEqual({ kind: 'completed', sameRequest: true, response: { status: 201, contentType: json, body: '{"retry":true}' } });
  });

  it('never hands a dead process key to another request (a different body)', async () => {
    const first = await processOf();
    const second = await processOf();
    const key = randomUUID();
    await first.store.claim(SCOPE, key, REQUEST);
    await first.lease.beforeApplicationShutdown();
    expect(await second.store.claim(SCOPE, key, identityOf('b'.repeat(64)))).toEqual({ kind: 'in_progress', sameRequest: false });
  });

  it('falls back on the lease time for a key claimed without an owner (an older version)', async () => {
    const current = await processOf(60);
    const key = randomUUID();
    await database.pool.query(
      `INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until, expires_at) VALUES ($1, $2, $3, 'in_progress', now() + interval '1 minute', now() + interval '1 day')`,
      [SCOPE, key, HASH],
    );
    expect((await current.store.claim(SCOPE, key, REQUEST)).kind).toBe('in_progress');
    // The lease time passes (set back, not waited for: a claim on a loaded machine may take a while).
    await database.pool.query("UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE scope = $1 AND key = $2", [SCOPE, key]);
    expect((await current.store.claim(SCOPE, key, REQUEST)).kind).toBe('claimed');
  });

  it('takes a fresh owner when its lease session is lost, so the keys claimed before are free at once', async () => {
    const first = await processOf();
    const second = await processOf();
    const key = randomUUID();
    await first.store.claim(SCOPE, key, REQUEST);
    const lostOwner = first.lease.owner;
    // The session ends under the process (a database restart does the same), whose requests may have failed meanwhile without releasing their keys.
    await database.pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = hashtext($1)::oid AND objid = hashtext($2)::oid`,
      [first.lease.namespace, lostOwner],
    );
    const deadline = Date.now() + 5_000;
    while (!(first.lease.held && first.lease.owner !== lostOwner)) {
      if (Date.now() > deadline) throw new Error('no new lease session');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect((await second.store.claim(SCOPE, key, REQUEST)).kind).toBe('claimed');
    // Keys claimed on the new session are held as before.
    const later = randomUUID();
    await first.store.claim(SCOPE, later, REQUEST);
    expect((await second.store.claim(SCOPE, later, REQUEST)).kind).toBe('in_progress');
  });
});

/** A key row as a version before request identities left it: its request's legacy fingerprint only, in progress, its process gone. */
async function claimedByAnOlderVersion(key: string, legacyHash: string, expiresIn = '1 day'): Promise<void> {
  await database.pool.query(
    `INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until, expires_at, created_at, lease_owner)
     VALUES ($1, $2, $3, 'in_progress', now() - interval '1 second', now() + $4::interval, now() - interval '1 hour', $5)`,
    [SCOPE, key, legacyHash, expiresIn, `idempotency-lease ${randomUUID()}`],
  );
}

type KeyRowRead = { request_hash: string; request_identity: RequestIdentity | null; created_at: Date; state: string; lease_owner: string | null; claim_id: string | null };

async function rowOf(key: string): Promise<KeyRowRead> {
  const row = await database.pool.query<KeyRowRead>(
    'SELECT request_hash, request_identity, created_at, state, lease_owner, claim_id FROM idempotency_keys WHERE scope = $1 AND key = $2',
    [SCOPE, key],
  );
  const found = row.rows[0];
  if (found === undefined) throw new Error(`no key ${key}`);
  return found;
}

/** Ends the process that claimed the key (its lease session), leaving the key to be taken over. */
async function claimedByAProcessThatDies(key: string, identity: RequestIdentity): Promise<Date> {
  const first = await processOf();
  const claimed = await first.store.claim(SCOPE, key, identity);
  if (claimed.kind !== 'claimed') throw new Error('not claimed');
  await first.lease.beforeApplicationShutdown();
  return claimed.firstClaimedAt;
}

/** The same request spelled another way: another legacy fingerprint (path as sent), the same fingerprint, its own would-be request id. */
const respelled = (identity: RequestIdentity): RequestIdentity => identityOf('e'.repeat(64), identity.fingerprint);

describe('IdempotencyStore: one request, two fingerprints', () => {
  it('stores the legacy fingerprint as request_hash, so an older version still matches a byte-identical retry, and the identity beside it', async () => {
    const { store } = await processOf();
    const key = randomUUID();
    const identity = identityOf('1'.repeat(64));
    expect(await store.claim(SCOPE, key, identity)).toMatchObject({ kind: 'claimed', requestId: identity.requestId, firstClaim: true });
    expect(await rowOf(key)).toMatchObject({ request_hash: identity.legacyHash, request_identity: identity });
  });

  it("takes over an older version's key of the same request (legacy fingerprint) with the request id the older version derived", async () => {
    const { store } = await processOf();
    const key = randomUUID();
    await claimedByAnOlderVersion(key, '2'.repeat(64));
    // The hook derives the request id from the legacy fingerprint and the path as sent, as older versions do.
    const identity = identityOf('2'.repeat(64));
    expect(await store.claim(SCOPE, key, identity)).toMatchObject({ kind: 'claimed', requestId: identity.requestId, firstClaim: false });
    expect(await rowOf(key)).toMatchObject({ request_hash: identity.legacyHash, request_identity: identity });
    // Held again (by a live process now): a repeat waits for it.
    expect(await store.claim(SCOPE, key, identity)).toEqual({ kind: 'in_progress', sameRequest: true });
  });

  it("answers an older version's key to a retry spelled another way as another request: its row has no fingerprint to match", async () => {
    const { store } = await processOf();
    const key = randomUUID();
    await claimedByAnOlderVersion(key, '3'.repeat(64));
    expect(await store.claim(SCOPE, key, respelled(identityOf('3'.repeat(64))))).toEqual({ kind: 'in_progress', sameRequest: false });
  });

  it('takes over a key for a retry spelled another way with the first request id, keeping the row as the first request wrote it', async () => {
    const { store, lease } = await processOf();
    const key = randomUUID();
    const first = identityOf('4'.repeat(64));
    const firstClaimedAt = await claimedByAProcessThatDies(key, first);
    expect(await store.claim(SCOPE, key, respelled(first))).toEqual({ kind: 'claimed', firstClaimedAt, requestId: first.requestId, firstClaim: false, owner: lease.owner, claimId: expect.any(String) as string });
    expect(await rowOf(key)).toMatchObject({ request_hash: first.legacyHash, request_identity: first });
  });

  it('keeps the first request id and claim time when the same request claims its expired key again, so a retry a day later still finds its events', async () => {
    const first = await processOf();
    const key = randomUUID();
    const identity = identityOf('5'.repeat(64));
    const claimed = await first.store.claim(SCOPE, key, identity);
    if (claimed.kind !== 'claimed') throw new Error('not claimed');
    await database.pool.query(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE scope = $1 AND key = $2`, [SCOPE, key]);
    expect(await first.store.claim(SCOPE, key, respelled(identity))).toEqual({ kind: 'claimed', firstClaimedAt: claimed.firstClaimedAt, requestId: identity.requestId, firstClaim: false, owner: first.lease.owner, claimId: expect.any(String) as string });
    expect(await rowOf(key)).toMatchObject({ request_hash: identity.legacyHash, request_identity: identity });
  });

  it('gives an expired key to another request with its own hash, identity and claim time', async () => {
    const first = await processOf();
    const key = randomUUID();
    const identity = identityOf('6'.repeat(64));
    await first.store.claim(SCOPE, key, identity);
    await database.pool.query(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE scope = $1 AND key = $2`, [SCOPE, key]);
    const other = identityOf('7'.repeat(64));
    const claimed = await first.store.claim(SCOPE, key, other);
    expect(claimed).toMatchObject({ kind: 'claimed', requestId: other.requestId, firstClaim: true });
    const row = await rowOf(key);
    expect(row).toMatchObject({ request_hash: other.legacyHash, request_identity: other });
    expect(Date.now() - row.created_at.getTime()).toBeLessThan(60_000);
  });

  it("gives an older version's expired key (no identity) to another request with its own claim time", async () => {
    const { store } = await processOf();
    const key = randomUUID();
    await claimedByAnOlderVersion(key, 'c3'.repeat(32), '-1 second');
    const other = identityOf('d4'.repeat(32));
    expect(await store.claim(SCOPE, key, other)).toMatchObject({ kind: 'claimed', requestId: other.requestId, firstClaim: true });
    const row = await rowOf(key);
    expect(row).toMatchObject({ request_hash: other.legacyHash, request_identity: other });
    // That version's row was claimed an hour ago: a claim time kept from it would widen the search for this request's earlier attempts.
    expect(Date.now() - row.created_at.getTime()).toBeLessThan(60_000);
  });

  it('replays a completed key to a retry spelled another way', async () => {
    const { store } = await processOf();
    const key = randomUUID();
    const identity = identityOf('a1'.repeat(32));
    const claimed = await store.claim(SCOPE, key, identity);
    if (claimed.kind !== 'claimed') throw new Error('not claimed');
    await store.complete(SCOPE, key, { status: 201, contentType: 'application/json; charset=utf-8', body: '{"ok":true}' }, claimed);
    expect(await store.claim(SCOPE, key, respelled(identity))).toEqual({
      kind: 'completed',
      sameRequest: true,
      response: { status: 201, contentType: 'application/json; charset=utf-8', body: '{"ok":true}' },
    });
  });

  it('lets exactly one of two retries racing for a dead process key claim it, both spellings deriving the first request id', async () => {
    const key = randomUUID();
    const first = identityOf('b2'.repeat(32));
    await claimedByAProcessThatDies(key, first);
    const [one, two] = await Promise.all([processOf(), processOf()]);
    const claims = await Promise.all([one.store.claim(SCOPE, key, first), two.store.claim(SCOPE, key, respelled(first))]);
    expect(claims.map((claim) => claim.kind).sort()).toEqual(['claimed', 'in_progress']);
    for (const claim of claims) {
      if (claim.kind === 'claimed') expect(claim.requestId).toBe(first.requestId);
      else expect(claim).toEqual({ kind: 'in_progress', sameRequest: true });
    }
  });
});

/**
 * The claim of the version before request identities (commit 6a5a77a), frozen here as it ran: a
 * rolling deploy or a rollback runs it beside the current one, against the same rows.
 */
const OLDER_VERSION_CLAIM = `INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until, expires_at, lease_owner)
   VALUES ($1, $2, $3, 'in_progress', now() + make_interval(secs => $4), now() + make_interval(hours => $5), $7)
   ON CONFLICT (scope, key) DO UPDATE SET
     request_hash = excluded.request_hash, state = 'in_progress', response_status = NULL, response_content_type = NULL, response_body = NULL, response_location = NULL,
     created_at = CASE WHEN idempotency_keys.expires_at < now() THEN now() ELSE idempotency_keys.created_at END,
     locked_until = excluded.locked_until, expires_at = excluded.expires_at, lease_owner = excluded.lease_owner
   WHERE idempotency_keys.expires_at < now()
      OR (idempotency_keys.state = 'in_progress' AND idempotency_keys.request_hash = excluded.request_hash
          AND (idempotency_keys.locked_until < now() OR NOT (idempotency_keys.lease_owner IS NULL OR EXISTS (
            SELECT 1 FROM pg_locks AS held
             WHERE held.locktype = 'advisory' AND held.granted AND held.objsubid = 2
               AND held.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND held.classid = hashtext($6)::oid AND held.objid = hashtext(idempotency_keys.lease_owner)::oid))))
   RETURNING created_at`;

/** Whether the older version claimed the key for the request whose fingerprint is `requestHash` (from it, it derived the request id). */
async function olderVersionClaims(lease: IdempotencyLease, key: string, requestHash: string): Promise<boolean> {
  const claimed = await database.pool.query(OLDER_VERSION_CLAIM, [SCOPE, key, requestHash, 60, 24, lease.namespace, lease.owner]);
  return claimed.rowCount === 1;
}

const expire = (key: string) => database.pool.query(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE scope = $1 AND key = $2`, [SCOPE, key]);

describe('IdempotencyStore beside the version before request identities (its claim, frozen)', () => {
  it("does not end a key the older version took over after the current claim's lock lapsed (the takeover keeps the claim id, not the lease owner)", async () => {
    const current = await processOf();
    const older = await processOf();
    const key = randomUUID();
    const slow = await current.store.claim(SCOPE, key, REQUEST);
    if (slow.kind !== 'claimed') throw new Error('not claimed');
    await database.pool.query("UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE scope = $1 AND key = $2", [SCOPE, key]);
    expect(await olderVersionClaims(older.lease, key, REQUEST.legacyHash)).toBe(true);
    expect(await rowOf(key)).toMatchObject({ claim_id: slow.claimId, lease_owner: older.lease.owner });
    await current.store.release(SCOPE, key, slow);
    await current.store.forget(SCOPE, key, slow);
    await current.store.complete(SCOPE, key, { status: 201, contentType: 'application/json; charset=utf-8', body: '{"slow":true}' }, slow);
    expect(await rowOf(key)).toMatchObject({ state: 'in_progress', lease_owner: older.lease.owner });
    expect(await current.store.claim(SCOPE, key, REQUEST)).toEqual({ kind: 'in_progress', sameRequest: true });
  });

  it('lets the older version take over a key of the same request byte for byte, and the current one then still derives the first request id', async () => {
    const key = randomUUID();
    const identity = identityOf('e5'.repeat(32));
    await claimedByAProcessThatDies(key, identity);
    const older = await processOf();
    expect(await olderVersionClaims(older.lease, key, identity.legacyHash)).toBe(true);
    // It derives the request id from the same legacy fingerprint and path: the first request id.
    expect(await rowOf(key)).toMatchObject({ request_hash: identity.legacyHash, request_identity: identity });
    await older.lease.beforeApplicationShutdown();
    const { store } = await processOf();
    expect(await store.claim(SCOPE, key, respelled(identity))).toMatchObject({ kind: 'claimed', requestId: identity.requestId, firstClaim: false });
  });

  it('refuses the older version a retry spelled another way, as it always did', async () => {
    const key = randomUUID();
    const identity = identityOf('f6'.repeat(32));
    await claimedByAProcessThatDies(key, identity);
    const older = await processOf();
    expect(await olderVersionClaims(older.lease, key, respelled(identity).legacyHash)).toBe(false);
    expect(await rowOf(key)).toMatchObject({ request_hash: identity.legacyHash, request_identity: identity });
  });

  it('ignores the identity left behind when the older version gives an expired key to another request', async () => {
    const key = randomUUID();
    const identity = identityOf('a7'.repeat(32));
    await claimedByAProcessThatDies(key, identity);
    await expire(key);
    const older = await processOf();
    expect(await olderVersionClaims(older.lease, key, '9'.repeat(64))).toBe(true);
    await older.lease.beforeApplicationShutdown();
    const { store } = await processOf();
    // The row is the other request's now; its stale identity matches nothing, even with its lease gone.
    expect(await store.claim(SCOPE, key, respelled(identity))).toEqual({ kind: 'in_progress', sameRequest: false });
    expect(await store.claim(SCOPE, key, identity)).toEqual({ kind: 'in_progress', sameRequest: false });
    expect(await store.claim(SCOPE, key, identityOf('9'.repeat(64)))).toMatchObject({ kind: 'claimed', firstClaim: false });
  });

  it('keeps the first request id when the older version claims an expired key of the same request again', async () => {
    const key = randomUUID();
    const identity = identityOf('b8'.repeat(32));
    await claimedByAProcessThatDies(key, identity);
    await expire(key);
    const older = await processOf();
    expect(await olderVersionClaims(older.lease, key, identity.legacyHash)).toBe(true);
    await older.lease.beforeApplicationShutdown();
    const { store } = await processOf();
    expect(await store.claim(SCOPE, key, respelled(identity))).toMatchObject({ kind: 'claimed', requestId: identity.requestId, firstClaim: false });
  });
});

/** A store on the spec's database whose statements are counted: how many the pool was sent. */
function countingStore(lease: IdempotencyLease): { store: IdempotencyStore; statements: () => number; named: (name: string) => number } {
  let statements = 0;
  const names: string[] = [];
  const pool = new Proxy(database.pool, {
    get(target, property, receiver) {
      if (property !== 'query') return Reflect.get(target, property, receiver) as unknown;
      return (...args: Parameters<typeof target.query>) => {
        statements += 1;
        const config = args[0] as { name?: string } | string;
        if (typeof config !== 'string' && config.name !== undefined) names.push(config.name);
        return (target.query as (...given: unknown[]) => unknown)(...args);
      };
    },
  });
  return { store: new IdempotencyStore(pool, { ttlHours: 24, lockSeconds: 60, lease }), statements: () => statements, named: (name) => names.filter((each) => each === name).length };
}

const JSON_TYPE = 'application/json; charset=utf-8';

describe('IdempotencyStore: claims and completions of many requests at once', () => {
  it('claims 64 new keys arriving together, each as its first claim, in a few statements rather than 64', async () => {
    const { lease } = await processOf();
    const { store, statements } = countingStore(lease);
    const keys = Array.from({ length: 64 }, () => randomUUID());
    const identities = keys.map(() => identityOf(HASH));
    const claims = await Promise.all(keys.map((key, index) => store.claim(SCOPE, key, identities[index] as RequestIdentity)));
    claims.forEach((claim, index) => expect(claim).toMatchObject({ kind: 'claimed', firstClaim: true, requestId: identities[index]?.requestId, owner: lease.owner }));
    expect(statements()).toBeLessThanOrEqual(4);
    const rows = await database.pool.query<{ key: string; request_identity: RequestIdentity }>('SELECT key, request_identity FROM idempotency_keys WHERE key = ANY($1)', [keys]);
    expect(new Map(rows.rows.map((row) => [row.key, row.request_identity.requestId]))).toEqual(new Map(keys.map((key, index) => [key, identities[index]?.requestId])));
  });

  it('lets one of many repeats of a key arriving together claim it; the others find it in progress for the same request', async () => {
    const { store } = await processOf();
    const key = randomUUID();
    const claims = await Promise.all(Array.from({ length: 10 }, () => store.claim(SCOPE, key, REQUEST)));
    expect(claims.filter((claim) => claim.kind === 'claimed')).toHaveLength(1);
    expect(claims.filter((claim) => claim.kind !== 'claimed')).toEqual(Array.from({ length: 9 }, () => ({ kind: 'in_progress', sameRequest: true })));
  });

  it('claims each key once when two processes claim the same 500 keys in opposite orders at once, without a deadlock', async () => {
    const first = await processOf();
    const second = await processOf();
    const keys = Array.from({ length: 500 }, () => randomUUID());
    const [forward, backward] = await Promise.all([
      Promise.all(keys.map((key) => first.store.claim(SCOPE, key, REQUEST))),
      Promise.all([...keys].reverse().map((key) => second.store.claim(SCOPE, key, REQUEST))),
    ]);
    backward.reverse();
    keys.forEach((_, index) => {
      const kinds = [forward[index]?.kind, backward[index]?.kind].sort();
      expect(kinds).toEqual(['claimed', 'in_progress']);
    });
  });

  it('stores each response of a batch on its own key, and none on a key its request no longer holds', async () => {
    const first = await processOf();
    const second = await processOf();
    const { store, statements } = countingStore(first.lease);
    const keys = Array.from({ length: 20 }, () => randomUUID());
    const claims = await Promise.all(keys.map((key) => store.claim(SCOPE, key, REQUEST)));
    const holders = claims.map((claim) => (claim.kind === 'claimed' ? claim : { claimId: '', owner: '' }));
    // The last key is taken over by another process's retry (as if the first process's session had been lost meanwhile).
    const takenOver = keys[19] as string;
    await database.pool.query('UPDATE idempotency_keys SET lease_owner = $3, claim_id = gen_random_uuid() WHERE scope = $1 AND key = $2', [SCOPE, takenOver, second.lease.owner]);
    const before = statements();
    await Promise.all(keys.map((key, index) => store.complete(SCOPE, key, { status: 201, contentType: JSON_TYPE, body: `{"n":${index}}`, ...(index % 2 === 0 ? { location: `/v1/n/${index}` } : {}) }, holders[index] ?? { claimId: '', owner: '' })));
    expect(statements() - before).toBeLessThanOrEqual(3);
    for (const [index, key] of keys.slice(0, 19).entries()) {
      expect(await store.find(SCOPE, key, REQUEST)).toEqual({ kind: 'completed', sameRequest: true, response: { status: 201, contentType: JSON_TYPE, body: `{"n":${index}}`, ...(index % 2 === 0 ? { location: `/v1/n/${index}` } : {}) } });
    }
    expect(await store.find(SCOPE, takenOver, REQUEST)).toEqual({ kind: 'in_progress', sameRequest: true });
  });

  it('decides each key of one claim statement by its own row: new, expired, taken over, held, completed', async () => {
    const { lease } = await processOf();
    const live = await processOf();
    const { store, named } = countingStore(lease);
    const [fresh, expired, ofDeadProcess, heldByAnother, completed] = Array.from({ length: 5 }, () => randomUUID());
    const expiredOwner = identityOf('e1'.repeat(32));
    await live.store.claim(SCOPE, expired as string, expiredOwner);
    await database.pool.query(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE scope = $1 AND key = $2`, [SCOPE, expired]);
    const firstAttempt = identityOf('d2'.repeat(32));
    const firstClaimedAt = await claimedByAProcessThatDies(ofDeadProcess as string, firstAttempt);
    await live.store.claim(SCOPE, heldByAnother as string, identityOf('f3'.repeat(32)));
    const done = await live.store.claim(SCOPE, completed as string, REQUEST);
    if (done.kind !== 'claimed') throw new Error('not claimed');
    await live.store.complete(SCOPE, completed as string, { status: 201, contentType: JSON_TYPE, body: '{"done":true}' }, done);

    // Two claims take the two batch slots; the five that arrive meanwhile go as one statement.
    const fillers = [store.claim(SCOPE, randomUUID(), REQUEST), store.claim(SCOPE, randomUUID(), REQUEST)];
    const newRequest = identityOf('a4'.repeat(32));
    const anotherRequest = identityOf('b5'.repeat(32));
    const claims = await Promise.all([
      store.claim(SCOPE, fresh as string, newRequest),
      store.claim(SCOPE, expired as string, anotherRequest),
      store.claim(SCOPE, ofDeadProcess as string, respelled(firstAttempt)),
      store.claim(SCOPE, heldByAnother as string, REQUEST),
      store.claim(SCOPE, completed as string, REQUEST),
    ]);
    await Promise.all(fillers);
    expect(named('idempotency_claim_all')).toBe(3);
    expect(claims).toEqual([
      { kind: 'claimed', firstClaimedAt: expect.any(Date) as Date, requestId: newRequest.requestId, firstClaim: true, owner: lease.owner, claimId: expect.any(String) as string },
      { kind: 'claimed', firstClaimedAt: expect.any(Date) as Date, requestId: anotherRequest.requestId, firstClaim: true, owner: lease.owner, claimId: expect.any(String) as string },
      { kind: 'claimed', firstClaimedAt, requestId: firstAttempt.requestId, firstClaim: false, owner: lease.owner, claimId: expect.any(String) as string },
      { kind: 'in_progress', sameRequest: false },
      { kind: 'completed', sameRequest: true, response: { status: 201, contentType: JSON_TYPE, body: '{"done":true}' } },
    ]);
    expect(await rowOf(expired as string)).toMatchObject({ request_hash: anotherRequest.legacyHash, request_identity: anotherRequest });
    expect(await rowOf(ofDeadProcess as string)).toMatchObject({ request_hash: firstAttempt.legacyHash, request_identity: firstAttempt });
  });
});

describe('IdempotencyStore.purge', () => {
  it('deletes every expired key, in chunks, but none a claim is taking over at that moment, and keeps the live ones', async () => {
    const { store } = await processOf();
    const marker = `purge-spec-${randomUUID()}`;
    await database.pool.query(
      `INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until, expires_at)
       SELECT $1, 'k' || n, 'h', 'completed', now(), now() - interval '1 second' FROM generate_series(1, 2500) AS n`,
      [marker],
    );
    await database.pool.query(`INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until, expires_at) VALUES ($1, 'live', 'h', 'completed', now(), now() + interval '1 day')`, [marker]);
    // A claim is taking one expired key over: its row is locked until it commits.
    const claiming = await database.pool.connect();
    try {
      await claiming.query('BEGIN');
      await claiming.query(`UPDATE idempotency_keys SET expires_at = now() + interval '1 day' WHERE scope = $1 AND key = 'k7'`, [marker]);
      const purged = await store.purge();
      expect(purged).toBeGreaterThanOrEqual(2499);
      await claiming.query('COMMIT');
    } finally {
      claiming.release();
    }
    const left = await database.pool.query<{ key: string }>('SELECT key FROM idempotency_keys WHERE scope = $1 ORDER BY key', [marker]);
    expect(left.rows.map((row) => row.key)).toEqual(['k7', 'live']);
  });

  it('keeps the chunks it committed when the process dies during a later one, and the next run deletes exactly the rest', async () => {
    const { lease } = await processOf();
    const marker = `purge-crash-spec-${randomUUID()}`;
    // Only this test's rows are expired: other tests' keys would change the counts.
    await database.pool.query(`DELETE FROM idempotency_keys WHERE expires_at < now()`);
    await database.pool.query(
      `INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until, expires_at)
       SELECT $1, 'k' || lpad(n::text, 4, '0'), 'h', 'completed', now(), now() - interval '1 second' FROM generate_series(1, 2500) AS n`,
      [marker],
    );
    await database.pool.query(`INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until, expires_at) VALUES ($1, 'live', 'h', 'completed', now(), now() + interval '1 day')`, [marker]);
    // The second chunk's DELETE runs, then its session ends before the statement's commit: the process died there.
    let chunks = 0;
    const dying = {
      query: async (config: { text: string; values?: unknown[] }) => {
        chunks += 1;
        if (chunks < 2) return database.pool.query(config);
        const client = await database.pool.connect();
        try {
          await client.query('BEGIN');
          await client.query(config);
          await client.query('SELECT pg_terminate_backend(pg_backend_pid())');
          throw new Error('the session should have ended');
        } finally {
          client.release(true);
        }
      },
    } as unknown as Pool;
    await expect(new IdempotencyStore(dying, { ttlHours: 24, lockSeconds: 60, lease }).purge()).rejects.toThrow(/terminat/i);
    const countLeft = async () => Number((await database.pool.query<{ count: string }>('SELECT count(*) FROM idempotency_keys WHERE scope = $1', [marker])).rows[0]?.count);
    // The first chunk (the lowest 1,000 keys) is gone, the second's deletes were rolled back.
    expect(chunks).toBe(2);
    expect(await countLeft()).toBe(1_501);
    const lowest = await database.pool.query<{ key: string }>('SELECT min(key) AS key FROM idempotency_keys WHERE scope = $1', [marker]);
    expect(lowest.rows[0]?.key).toBe('k1001');

    // The restarted process's run deletes exactly what is left expired, and no live key.
    const { store } = await processOf();
    expect(await store.purge()).toBe(1_500);
    const left = await database.pool.query<{ key: string }>('SELECT key FROM idempotency_keys WHERE scope = $1 ORDER BY key', [marker]);
    expect(left.rows.map((row) => row.key)).toEqual(['live']);
  });
});
