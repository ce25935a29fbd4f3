import { randomUUID } from 'node:crypto';
import { startTestApp, type TestApp } from './support/test-app.js';

let testApp: TestApp;

beforeAll(async () => {
  testApp = await startTestApp({ CREDIT_EXPIRY_JOB_ENABLED: 'false' });
});

afterAll(async () => {
  await testApp.close();
});

const http = () => testApp.http();

async function fundedUser(amount: number): Promise<string> {
  const userId = randomUUID();
  await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount }).expect(201);
  return userId;
}

type AuditEvent = { type: string; data: Record<string, unknown>; metadata: Record<string, unknown> };
const auditEvents = async (userId: string) => ((await http().get(`/v1/audit/accounts/${userId}/events`).expect(200)).body as { data: AuditEvent[] }).data;
const history = async (userId: string) => ((await http().get(`/v1/accounts/${userId}/transactions?limit=100`).expect(200)).body as { data: Record<string, unknown>[] }).data;
// Each part named, so a failure shows which one refused the account (a run of 6 December 2026 saw `ok: false` with no difference, once).
const verified = async (userId: string) =>
  expect((await http().get(`/v1/audit/accounts/${userId}/verify`).expect(200)).body).toMatchObject({ chain: { ok: true }, readModels: { differences: [], replayError: null }, ok: true });

describe('metadata round trip', () => {
  it('usage: stored in the event, answered, shown in history and in the audit API', async () => {
    const userId = await fundedUser(100);
    const metadata = { model: 'gpt-4o', requestId: 'req_8f2c', promptTokens: 812, cached: false, ratio: 0.25 };
    const used = await http().post(`/v1/accounts/${userId}/usage`).send({ amount: 30, metadata }).expect(201);
    expect(used.body.transaction).toMatchObject({ amount: -30, transactionType: 'usage', metadata });
    const rows = await history(userId);
    expect(rows.map((row) => row.metadata)).toEqual([metadata, null]);
    const usedEvent = (await auditEvents(userId)).find((event) => event.type === 'TokensUsed');
    expect(usedEvent?.data.metadata).toEqual(metadata);
    // The caller's metadata is the event's data; the envelope's metadata stays the service's own (actor, ids, hash).
    expect(usedEvent?.metadata).toMatchObject({ actor: expect.any(Object) });
    await verified(userId);
  });

  it("hold and settle: the hold keeps its metadata, a settle without its own puts the hold's on the usage row, one with its own puts that", async () => {
    const userId = await fundedUser(100);
    const holdMetadata = { model: 'claude', requestId: 'req-hold' };
    const first = await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 40, metadata: holdMetadata }).expect(201);
    expect(first.body.metadata).toEqual(holdMetadata);
    const second = await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 20 }).expect(201);
    expect(second.body.metadata).toBeNull();
    const holds = ((await http().get(`/v1/accounts/${userId}/holds`).expect(200)).body as { data: Record<string, unknown>[] }).data;
    expect(holds.map((hold) => [hold.holdId, hold.metadata])).toEqual([
      [second.body.holdId, null],
      [first.body.holdId, holdMetadata],
    ]);

    const inherited = await http().post(`/v1/accounts/${userId}/holds/${first.body.holdId as string}/settle`).send({ amount: 25 }).expect(200);
    expect(inherited.body.transaction.metadata).toEqual(holdMetadata);
    const settleMetadata = { model: 'claude', completionTokens: 7 };
    const own = await http().post(`/v1/accounts/${userId}/holds/${second.body.holdId as string}/settle`).send({ amount: 5, metadata: settleMetadata }).expect(200);
    expect(own.body.transaction.metadata).toEqual(settleMetadata);

    expect((await history(userId)).map((row) => [row.transactionType, row.metadata])).toEqual([
      ['usage', settleMetadata],
      ['usage', holdMetadata],
      ['purchase', null],
    ]);
    const events = await auditEvents(userId);
    expect(events.filter((event) => event.type === 'TokensHeld').map((event) => event.data.metadata)).toEqual([holdMetadata, undefined]);
    await verified(userId);
  });

  it('an Idempotency-Key replayed with other metadata is a different request (422 IDEMPOTENCY_KEY_REUSED), with the same it answers the first result', async () => {
    const userId = await fundedUser(100);
    const key = randomUUID();
    const first = await http().post(`/v1/accounts/${userId}/usage`).set('Idempotency-Key', key).send({ amount: 5, metadata: { requestId: 'a' } }).expect(201);
    const again = await http().post(`/v1/accounts/${userId}/usage`).set('Idempotency-Key', key).send({ amount: 5, metadata: { requestId: 'a' } }).expect(201);
    expect(again.body.transaction).toEqual(first.body.transaction);
    const other = await http().post(`/v1/accounts/${userId}/usage`).set('Idempotency-Key', key).send({ amount: 5, metadata: { requestId: 'b' } }).expect(422);
    expect(other.body.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect((await history(userId)).filter((row) => row.transactionType === 'usage')).toHaveLength(1);
  });

  it('lets exactly 20 of 50 racing 1-token usages with metadata through a balance of 20, each row with its own metadata', async () => {
    const userId = await fundedUser(20);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, index) => http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1, metadata: { requestId: `race-${index}`, index } })),
    );
    const accepted = results.filter((response) => response.status === 201);
    expect(accepted).toHaveLength(20);
    expect(results.filter((response) => response.status !== 201).every((response) => response.status === 409)).toBe(true);
    const rows = (await history(userId)).filter((row) => row.transactionType === 'usage');
    expect(rows).toHaveLength(20);
    const expected = accepted.map((response) => [response.body.transaction.id, response.body.transaction.metadata]);
    expect(rows.map((row) => [row.id, row.metadata])).toEqual(expect.arrayContaining(expected));
    expect(new Set(rows.map((row) => (row.metadata as { requestId: string }).requestId)).size).toBe(20);
    expect((await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body.balance).toBe(0);
    await verified(userId);
  });
});

describe('bad metadata: 400 naming the field and the rule, nothing written', () => {
  const tooMany = Object.fromEntries(Array.from({ length: 21 }, (_, index) => [`k${index}`, index]));
  it.each([
    ['an array', ['a'], 'metadataObject'],
    ['a string', 'model', 'metadataObject'],
    ['21 keys', tooMany, 'metadataKeysMax'],
    ['a bad key', { 'has space': 1 }, 'metadataKey'],
    ['a key of 41 characters', { ['k'.repeat(41)]: 1 }, 'metadataKey'],
    ['a nested object', { deep: { a: 1 } }, 'metadataValueType'],
    ['a null value', { a: null }, 'metadataValueType'],
    ['a string of 501 characters', { prompt: 'x'.repeat(501) }, 'metadataValueLength'],
    ['NUL in a value', { text: 'a\u0000b' }, 'metadataValueText'],
  ])('%s', async (_, metadata, rule) => {
    const userId = await fundedUser(100);
    const hold = (await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 10 }).expect(201)).body.holdId as string;
    const requests = [
      http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1, metadata }),
      http().post(`/v1/accounts/${userId}/holds`).send({ amount: 1, metadata }),
      http().post(`/v1/accounts/${userId}/holds/${hold}/settle`).send({ amount: 1, metadata }),
    ];
    for (const response of await Promise.all(requests)) {
      expect(response.status).toBe(400);
      expect(response.body.code).toBe('VALIDATION_FAILED');
      expect(response.body.errors).toEqual([expect.objectContaining({ field: 'metadata', rule })]);
    }
    const events = await auditEvents(userId);
    expect(events.map((event) => event.type)).toEqual(['TokensPurchased', 'TokensHeld']);
  });
});
