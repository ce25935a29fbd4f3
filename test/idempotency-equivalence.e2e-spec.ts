import { createHash, randomUUID } from 'node:crypto';
import type { Response } from 'supertest';
import { idempotentEventId, idempotentRequestId } from '@app/event-sourcing';
import { IdempotencyStore } from '../apps/api/src/http/idempotency/idempotency.store.js';
import { startTestApp, type TestApp } from './support/test-app.js';

let testApp: TestApp;

beforeAll(async () => {
  testApp = await startTestApp({ PAYMENT_JOBS_ENABLED: 'false' });
});

afterAll(async () => {
  await testApp.close();
});

const http = () => testApp.http();

async function funded(amount: number): Promise<string> {
  const userId = randomUUID();
  await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount }).expect(201);
  return userId;
}

const useWithKey = (path: string, key: string, body: object) => http().post(path).set('Idempotency-Key', key).send(body);
const balanceOf = async (userId: string) => (await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body.balance as number;

async function usageCount(userId: string): Promise<number> {
  const result = await testApp.database.pool.query<{ count: string }>(`SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'TokensUsed'`, [`token-account-${userId}`]);
  return Number(result.rows[0]?.count);
}

function expectReplayOf(retry: Response, first: Response): void {
  expect(retry.headers['idempotent-replayed']).toBe('true');
  expect(retry.status).toBe(first.status);
  expect(retry.body).toEqual(first.body);
}

describe('Idempotency-Key: a retry the API reads as the same request is replayed', () => {
  it('replays a usage first sent without description when the retry sends "description": null, and the other way round', async () => {
    const userId = await funded(100);
    const path = `/v1/accounts/${userId}/usage`;
    const omitted = randomUUID();
    const first = await useWithKey(path, omitted, { amount: 30 }).expect(201);
    expectReplayOf(await useWithKey(path, omitted, { amount: 30, description: null }), first);

    const sentNull = randomUUID();
    const second = await useWithKey(path, sentNull, { amount: 5, description: null, metadata: null }).expect(201);
    expectReplayOf(await useWithKey(path, sentNull, { amount: 5 }), second);

    expect(await balanceOf(userId)).toBe(65);
    expect(await usageCount(userId)).toBe(2);
  });

  it('replays a retry that spells the path UUIDs in upper case', async () => {
    const userId = await funded(100);
    const key = randomUUID();
    const first = await useWithKey(`/v1/accounts/${userId}/usage`, key, { amount: 30 }).expect(201);
    expectReplayOf(await useWithKey(`/v1/accounts/${userId.toUpperCase()}/usage`, key, { amount: 30 }), first);
    // The router decodes a percent-escaped character of the path: the same account, so the same request.
    expectReplayOf(await useWithKey(`/v1/accounts/${userId.replace('-', '%2D')}/usage?`, key, { amount: 30 }), first);
    expect(await balanceOf(userId)).toBe(70);
    expect(await usageCount(userId)).toBe(1);
  });

  it('replays a settle retried with both path UUIDs in another case and a null description', async () => {
    const userId = await funded(100);
    const hold = await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 40 }).expect(201);
    const holdId = hold.body.holdId as string;
    const key = randomUUID();
    const first = await useWithKey(`/v1/accounts/${userId.toUpperCase()}/holds/${holdId}/settle`, key, { amount: 25 }).expect(200);
    const retry = await useWithKey(`/v1/accounts/${userId}/holds/${holdId.toUpperCase()}/settle`, key, { amount: 25, description: null });
    expectReplayOf(retry, first);
    expect(await balanceOf(userId)).toBe(75);
  });
});

describe('Idempotency-Key: a route that takes no body', () => {
  it('replays a release first sent without a body when the retry sends {}, and releases once', async () => {
    const userId = await funded(100);
    const hold = await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 40 }).expect(201);
    const path = `/v1/accounts/${userId}/holds/${hold.body.holdId as string}/release`;
    const key = randomUUID();
    const first = await http().post(path).set('Idempotency-Key', key).expect(200);
    expectReplayOf(await useWithKey(path, key, {}), first);
    const released = await testApp.database.pool.query<{ count: string }>(`SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'HoldReleased'`, [`token-account-${userId}`]);
    expect(Number(released.rows[0]?.count)).toBe(1);
  });
});

describe('Idempotency-Key: a retry that is another request is still 422 IDEMPOTENCY_KEY_REUSED', () => {
  it.each([
    ['another amount', { amount: 30 }, { amount: 31 }],
    ['a description where there was none', { amount: 30 }, { amount: 30, description: 'Chat' }],
    ['an empty description where there was none', { amount: 30 }, { amount: 30, description: '' }],
    ['empty metadata where there was none', { amount: 30 }, { amount: 30, metadata: {} }],
    // Metadata may not hold null (400 metadataValueType), and only top-level nulls are dropped: this retry is another, invalid, request.
    ['a null metadata value where the key was missing', { amount: 30, metadata: { requestId: 'a' } }, { amount: 30, metadata: { requestId: 'a', model: null } }],
  ])('%s', async (_, firstBody, retryBody) => {
    const userId = await funded(100);
    const key = randomUUID();
    const path = `/v1/accounts/${userId}/usage`;
    await useWithKey(path, key, firstBody).expect(201);
    const retry = await useWithKey(path, key, retryBody).expect(422);
    expect(retry.body).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(await usageCount(userId)).toBe(1);
  });

  it('another account (a different UUID, not another spelling of it)', async () => {
    const userId = await funded(100);
    const other = await funded(100);
    const key = randomUUID();
    await useWithKey(`/v1/accounts/${userId}/usage`, key, { amount: 30 }).expect(201);
    expect((await useWithKey(`/v1/accounts/${other}/usage`, key, { amount: 30 }).expect(422)).body).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(await balanceOf(other)).toBe(100);
  });
});

/**
 * The next keyed request claims its key as a version before request identities did: the row holds
 * only `request_hash`, the legacy fingerprint, from which that version derived the request id, hence
 * its events' ids. The tests check those ids against the old formula computed here, not by the code
 * under test.
 */
function claimNextAsOlderVersion(): void {
  const store = testApp.app.get(IdempotencyStore);
  const claim = store.claim.bind(store);
  store.claim = async (scope, key, identity) => {
    store.claim = claim;
    const claimed = await claim(scope, key, identity);
    await testApp.database.pool.query('UPDATE idempotency_keys SET request_identity = NULL WHERE scope = $1 AND key = $2', [scope, key]);
    return claimed;
  };
}

/** The next keyed request does its work and answers, but its response is never stored and its lease lapses (its process hung, then went on). */
function leaseLapsesBeforeStoringNextResponse(): void {
  const store = testApp.app.get(IdempotencyStore);
  const complete = store.complete.bind(store);
  store.complete = async (scope, key) => {
    store.complete = complete;
    await testApp.database.pool.query(`UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE scope = $1 AND key = $2`, [scope, key]);
  };
}

/** What every version stores as request_hash and derives request ids from: SHA-256 of "METHOD url\ncanonical body", the url as sent. */
const legacyHashOf = (url: string, canonicalBody: string) => createHash('sha256').update(`POST ${url}\n${canonicalBody}`).digest('hex');

async function keyRow(key: string) {
  const result = await testApp.database.pool.query<{ scope: string; request_hash: string; state: string }>('SELECT scope, request_hash, state FROM idempotency_keys WHERE key = $1', [key]);
  const row = result.rows[0];
  if (row === undefined) throw new Error(`no row for key ${key}`);
  return row;
}

async function usageEventIds(userId: string): Promise<string[]> {
  const result = await testApp.database.pool.query<{ event_id: string }>(`SELECT event_id FROM events WHERE stream_id = $1 AND event_type = 'TokensUsed' ORDER BY stream_revision`, [`token-account-${userId}`]);
  return result.rows.map((row) => row.event_id);
}

describe('Idempotency-Key: a retry after a crash, in another spelling', () => {
  it('takes over an attempt whose lease lapsed after it spent, finds its events by the first request id, and spends once', async () => {
    const userId = await funded(100);
    const key = randomUUID();
    const url = `/v1/accounts/${userId.toUpperCase()}/usage`;
    leaseLapsesBeforeStoringNextResponse();
    const original = await useWithKey(url, key, { amount: 30 }).expect(201);

    // The row keeps the fingerprint every version computes, so an older instance would replay a byte-identical retry too.
    const row = await keyRow(key);
    const legacyHash = legacyHashOf(url, '{"amount":30}');
    expect(row).toEqual({ scope: row.scope, request_hash: legacyHash, state: 'in_progress' });
    const firstRequestId = idempotentRequestId({ scope: row.scope, key, method: 'POST', route: url, requestHash: legacyHash });
    expect(await usageEventIds(userId)).toEqual([idempotentEventId(firstRequestId, 0)]);

    const retry = await useWithKey(`/v1/accounts/${userId}/usage`, key, { amount: 30, description: null }).expect(201);
    expect(retry.body.transaction).toEqual(original.body.transaction);
    expect(await balanceOf(userId)).toBe(70);
    expect(await usageEventIds(userId)).toEqual([idempotentEventId(firstRequestId, 0)]);
    expect(await keyRow(key)).toEqual({ scope: row.scope, request_hash: legacyHash, state: 'completed' });
  });
});

describe('Idempotency-Key: a retry refused 400 after an earlier attempt did the work', () => {
  it('keeps the key (it only ends the lease), so the next retry finds the earlier attempt and spends nothing more', async () => {
    const userId = await funded(100);
    const key = randomUUID();
    leaseLapsesBeforeStoringNextResponse();
    const original = await useWithKey(`/v1/accounts/${userId}/usage`, key, { amount: 30 }).expect(201);
    // The same request by its fingerprint (a top-level null is dropped), so it takes the key over; then the body check refuses the unknown field.
    const refused = await useWithKey(`/v1/accounts/${userId}/usage`, key, { amount: 30, foo: null }).expect(400);
    expect(refused.body).toMatchObject({ code: 'VALIDATION_FAILED', errors: [expect.objectContaining({ field: 'foo' })] });
    expect((await keyRow(key)).state).toBe('in_progress');
    const retry = await useWithKey(`/v1/accounts/${userId.toUpperCase()}/usage`, key, { amount: 30 }).expect(201);
    expect(retry.body.transaction).toEqual(original.body.transaction);
    expect(await balanceOf(userId)).toBe(70);
    expect(await usageCount(userId)).toBe(1);
  });

  it('forgets a key its own first claim holds, so a corrected request may use it', async () => {
    const userId = await funded(100);
    const key = randomUUID();
    await useWithKey(`/v1/accounts/${userId}/usage`, key, { amount: 0 }).expect(400);
    await useWithKey(`/v1/accounts/${userId}/usage`, key, { amount: 31 }).expect(201);
    expect(await balanceOf(userId)).toBe(69);
  });
});

describe('Idempotency-Key: a key claimed by a version before request identities, retried after the deploy', () => {
  it('takes over an attempt whose lease lapsed after it spent, finds its events by the ids that version derived, and spends once', async () => {
    const userId = await funded(100);
    const key = randomUUID();
    // The raw url spells the UUID in upper case: that version derived from it, not from the normalized one.
    const url = `/v1/accounts/${userId.toUpperCase()}/usage`;
    claimNextAsOlderVersion();
    leaseLapsesBeforeStoringNextResponse();
    const original = await useWithKey(url, key, { amount: 30, description: 'Chat' }).expect(201);

    const row = await keyRow(key);
    const legacyHash = legacyHashOf(url, '{"amount":30,"description":"Chat"}');
    expect(row).toEqual({ scope: row.scope, request_hash: legacyHash, state: 'in_progress' });
    const legacyRequestId = idempotentRequestId({ scope: row.scope, key, method: 'POST', route: url, requestHash: legacyHash });
    expect(await usageEventIds(userId)).toEqual([idempotentEventId(legacyRequestId, 0)]);

    // That version's row records no fingerprint: only a byte-identical retry (key order aside) is its request.
    expect((await useWithKey(url, key, { amount: 30, description: 'Chat', metadata: null }).expect(422)).body).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });

    const retry = await useWithKey(url, key, { description: 'Chat', amount: 30 }).expect(201);
    expect(retry.body.transaction).toEqual(original.body.transaction);
    expect(retry.body.balance).toBe(70);
    expect(await balanceOf(userId)).toBe(70);
    expect(await usageEventIds(userId)).toEqual([idempotentEventId(legacyRequestId, 0)]);
    expect(await keyRow(key)).toEqual({ scope: row.scope, request_hash: legacyHash, state: 'completed' });
    expectReplayOf(await useWithKey(url, key, { amount: 30, description: 'Chat' }), retry);
  });

  it('replays a completed key to a byte-identical retry', async () => {
    const userId = await funded(100);
    const key = randomUUID();
    const url = `/v1/accounts/${userId}/usage`;
    claimNextAsOlderVersion();
    const original = await useWithKey(url, key, { amount: 12 }).expect(201);
    expect(await keyRow(key)).toMatchObject({ request_hash: legacyHashOf(url, '{"amount":12}'), state: 'completed' });
    expectReplayOf(await useWithKey(url, key, { amount: 12 }), original);
    expect(await balanceOf(userId)).toBe(88);
    expect(await usageCount(userId)).toBe(1);
  });
});
