import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../../../../../test/support/test-database.js';
import { IdempotencyLease } from './idempotency-lease.js';
import { IdempotencyStore } from './idempotency.store.js';

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

describe('IdempotencyStore leases', () => {
  it('keeps a key for its request while the process that claimed it lives, though the request runs long', async () => {
    const first = await processOf();
    const second = await processOf();
    const key = randomUUID();
    expect((await first.store.claim(SCOPE, key, HASH)).kind).toBe('claimed');
    for (let attempt = 0; attempt < 3; attempt += 1) {
      expect(await second.store.claim(SCOPE, key, HASH)).toEqual({ kind: 'in_progress', requestHash: HASH });
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  });

  it('lets a retry take a key over at once when the process that claimed it is gone, keeping the first claim time', async () => {
    const first = await processOf();
    const second = await processOf();
    const key = randomUUID();
    const claimed = await first.store.claim(SCOPE, key, HASH);
    if (claimed.kind !== 'claimed') throw new Error('not claimed');
    expect((await second.store.claim(SCOPE, key, HASH)).kind).toBe('in_progress');

    // The process dies: its session ends and PostgreSQL frees the lease lock (SIGKILL does the same).
    await first.lease.beforeApplicationShutdown();
    const startedAt = Date.now();
    const taken = await second.store.claim(SCOPE, key, HASH);
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    expect(taken).toEqual({ kind: 'claimed', firstClaimedAt: claimed.firstClaimedAt, requestHash: HASH });
    const row = await database.pool.query<{ lease_owner: string }>('SELECT lease_owner FROM idempotency_keys WHERE key = $1', [key]);
    expect(row.rows[0]?.lease_owner).toBe(second.lease.owner);
  });

  it('never hands a dead process key to another request (a different body)', async () => {
    const first = await processOf();
    const second = await processOf();
    const key = randomUUID();
    await first.store.claim(SCOPE, key, HASH);
    await first.lease.beforeApplicationShutdown();
    expect(await second.store.claim(SCOPE, key, 'b'.repeat(64))).toEqual({ kind: 'in_progress', requestHash: HASH });
  });

  it('falls back on the lease time for a key claimed without an owner (an older version)', async () => {
    const current = await processOf(60);
    const key = randomUUID();
    await database.pool.query(
      `INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until, expires_at) VALUES ($1, $2, $3, 'in_progress', now() + interval '1 second', now() + interval '1 day')`,
      [SCOPE, key, HASH],
    );
    expect((await current.store.claim(SCOPE, key, HASH)).kind).toBe('in_progress');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await current.store.claim(SCOPE, key, HASH)).kind).toBe('claimed');
  });

  it('takes a fresh owner when its lease session is lost, so the keys claimed before are free at once', async () => {
    const first = await processOf();
    const second = await processOf();
    const key = randomUUID();
    await first.store.claim(SCOPE, key, HASH);
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
    expect((await second.store.claim(SCOPE, key, HASH)).kind).toBe('claimed');
    // Keys claimed on the new session are held as before.
    const later = randomUUID();
    await first.store.claim(SCOPE, later, HASH);
    expect((await second.store.claim(SCOPE, later, HASH)).kind).toBe('in_progress');
  });
});

/** A row as a version before the `v2` fingerprint left it: its own fingerprint of the request, claimed by a process now gone. */
async function claimedByAnOlderVersion(key: string, expiresIn: string): Promise<void> {
  await database.pool.query(
    `INSERT INTO idempotency_keys (scope, key, request_hash, state, locked_until, expires_at, created_at, lease_owner)
     VALUES ($1, $2, $3, 'in_progress', now() - interval '1 second', now() + $4::interval, now() - interval '1 hour', $5)`,
    [SCOPE, key, LEGACY_HASH, expiresIn, `idempotency-lease ${randomUUID()}`],
  );
}

const CURRENT_HASH = `v2:${'c'.repeat(64)}`;
const LEGACY_HASH = 'd'.repeat(64);

async function storedHashOf(key: string): Promise<string | undefined> {
  const row = await database.pool.query<{ request_hash: string }>('SELECT request_hash FROM idempotency_keys WHERE key = $1', [key]);
  return row.rows[0]?.request_hash;
}

describe('IdempotencyStore with two fingerprints of one request', () => {
  it('takes over a key claimed under the earlier fingerprint and keeps that fingerprint, which the request id derives from', async () => {
    const { store } = await processOf();
    const key = randomUUID();
    await claimedByAnOlderVersion(key, '1 day');
    const taken = await store.claim(SCOPE, key, CURRENT_HASH, LEGACY_HASH);
    expect(taken).toEqual({ kind: 'claimed', firstClaimedAt: expect.any(Date), requestHash: LEGACY_HASH });
    expect(await storedHashOf(key)).toBe(LEGACY_HASH);
    // Held again (by a live process now): a repeat under either fingerprint waits for it.
    expect(await store.claim(SCOPE, key, CURRENT_HASH, LEGACY_HASH)).toEqual({ kind: 'in_progress', requestHash: LEGACY_HASH });
  });

  it('stores the current fingerprint when it claims an expired key afresh, whatever the row held', async () => {
    const { store } = await processOf();
    const key = randomUUID();
    await claimedByAnOlderVersion(key, '-1 second');
    const claimed = await store.claim(SCOPE, key, CURRENT_HASH, LEGACY_HASH);
    expect(claimed).toEqual({ kind: 'claimed', firstClaimedAt: expect.any(Date), requestHash: CURRENT_HASH });
    expect(await storedHashOf(key)).toBe(CURRENT_HASH);
  });

  it('keeps its own fingerprint when the same request takes over a key it claimed under the current one', async () => {
    const first = await processOf();
    const second = await processOf();
    const key = randomUUID();
    expect(await first.store.claim(SCOPE, key, CURRENT_HASH, LEGACY_HASH)).toMatchObject({ kind: 'claimed', requestHash: CURRENT_HASH });
    await first.lease.beforeApplicationShutdown();
    // The retry's raw url and body differ (another spelling), so does its legacy fingerprint: the current one matches.
    expect(await second.store.claim(SCOPE, key, CURRENT_HASH, 'e'.repeat(64))).toMatchObject({ kind: 'claimed', requestHash: CURRENT_HASH });
    expect(await storedHashOf(key)).toBe(CURRENT_HASH);
  });

  it('answers a completed key claimed under the earlier fingerprint with its response and that fingerprint', async () => {
    const { store } = await processOf();
    const key = randomUUID();
    await claimedByAnOlderVersion(key, '1 day');
    await store.complete(SCOPE, key, { status: 201, contentType: 'application/json; charset=utf-8', body: '{"ok":true}' });
    expect(await store.claim(SCOPE, key, CURRENT_HASH, LEGACY_HASH)).toEqual({
      kind: 'completed',
      requestHash: LEGACY_HASH,
      response: { status: 201, contentType: 'application/json; charset=utf-8', body: '{"ok":true}' },
    });
  });

  it('never takes over a key whose row holds neither fingerprint', async () => {
    const { store } = await processOf();
    const key = randomUUID();
    await claimedByAnOlderVersion(key, '1 day');
    expect(await store.claim(SCOPE, key, CURRENT_HASH, 'f'.repeat(64))).toEqual({ kind: 'in_progress', requestHash: LEGACY_HASH });
    expect(await storedHashOf(key)).toBe(LEGACY_HASH);
  });
});
