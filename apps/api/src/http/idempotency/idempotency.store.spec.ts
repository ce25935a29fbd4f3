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
    expect(taken).toEqual({ kind: 'claimed', firstClaimedAt: claimed.firstClaimedAt });
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
