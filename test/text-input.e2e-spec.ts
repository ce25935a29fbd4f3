import { randomUUID } from 'node:crypto';
import { startTestApp, type TestApp } from './support/test-app.js';

/**
 * Text the database or the hash chain cannot hold, and times without a zone: refused with a 400
 * naming the field and the rule, and nothing written (they used to reach the append and fail there).
 */
let testApp: TestApp;

beforeAll(async () => {
  testApp = await startTestApp();
});

afterAll(async () => {
  await testApp.close();
});

async function eventCount(userId: string): Promise<number> {
  const result = await testApp.database.pool.query<{ n: string }>('SELECT count(*) AS n FROM events WHERE stream_id = $1', [`token-account-${userId}`]);
  return Number(result.rows[0]?.n);
}

describe('text the ledger cannot store', () => {
  it.each([
    ['a NUL character', 'before\u0000after'],
    ['an unpaired high surrogate', 'broken \uD83D text'],
    ['an unpaired low surrogate', '\uDE00 alone'],
  ])('is refused in a description and in an adjustment reason: %s', async (_name, text) => {
    const userId = randomUUID();
    const purchase = await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 5, description: text }).expect(400);
    expect(purchase.body.errors).toEqual([expect.objectContaining({ field: 'description', rule: 'matches' })]);
    const adjustment = await testApp.http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: 5, reason: text }).expect(400);
    expect(adjustment.body.errors).toEqual([expect.objectContaining({ field: 'reason', rule: 'matches' })]);
    expect(await eventCount(userId)).toBe(0);
  });

  it('accepts characters outside the basic plane written as a proper surrogate pair', async () => {
    const userId = randomUUID();
    const response = await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 5, description: 'tokens 🎉' }).expect(201);
    expect(response.body.transaction.description).toBe('tokens 🎉');
  });
});

describe('text length', () => {
  // One rule for validation and the ledger: characters are code points, so 500 emoji (1,000 UTF-16
  // units) is the longest description; validation used to accept it and the ledger to refuse it.
  const limit = '\u{1F389}'.repeat(500);

  it('accepts a description and a reason of 500 astral characters', async () => {
    const userId = randomUUID();
    const purchase = await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 5, description: limit }).expect(201);
    expect(purchase.body.transaction.description).toBe(limit);
    const adjustment = await testApp.http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: 5, reason: limit }).expect(201);
    expect(adjustment.body.transaction.description).toBe(limit);
  });

  it('refuses 501 characters at validation, whatever mix of planes, and writes nothing', async () => {
    const userId = randomUUID();
    for (const text of [`${limit}x`, `${limit}\u{1F389}`, `${'e\u0301'.repeat(250)}x`]) {
      const purchase = await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 5, description: text }).expect(400);
      expect(purchase.body.errors).toEqual([expect.objectContaining({ field: 'description', rule: 'maxLength', message: 'description must be at most 500 characters' })]);
      const adjustment = await testApp.http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: 5, reason: text }).expect(400);
      expect(adjustment.body.errors).toEqual([expect.objectContaining({ field: 'reason', rule: 'maxLength' })]);
    }
    expect(await eventCount(userId)).toBe(0);
  });

  // class-validator's MaxLength counts a variation selector as nothing: 251 hearts with their
  // selector (502 code points) passed it and reached the ledger, which refused them with another answer.
  const overLimit = [`${limit}x`, '\u2764\uFE0F'.repeat(251)];

  it('is the same rule for a hold, a settle, a grant and a void: 500 astral characters pass, 501 are refused at validation', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 50 }).expect(201);
    const hold = await testApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 5, description: limit }).expect(201);
    const lot = await testApp.http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 5, reason: limit }).expect(201);
    const written = await eventCount(userId);
    for (const text of overLimit) {
      const refusals = [
        await testApp.http().post(`/v1/accounts/${userId}/holds`).send({ amount: 5, description: text }).expect(400),
        await testApp.http().post(`/v1/accounts/${userId}/holds/${hold.body.holdId as string}/settle`).send({ amount: 1, description: text }).expect(400),
        await testApp.http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 5, reason: text }).expect(400),
        await testApp.http().post(`/v1/admin/accounts/${userId}/grants/${lot.body.lotId as string}/void`).send({ reason: text }).expect(400),
      ];
      expect(refusals.map((refusal) => refusal.body.errors)).toEqual([
        [expect.objectContaining({ field: 'description', rule: 'maxLength', message: 'description must be at most 500 characters' })],
        [expect.objectContaining({ field: 'description', rule: 'maxLength', message: 'description must be at most 500 characters' })],
        [expect.objectContaining({ field: 'reason', rule: 'maxLength', message: 'reason must be at most 500 characters' })],
        [expect.objectContaining({ field: 'reason', rule: 'maxLength', message: 'reason must be at most 500 characters' })],
      ]);
      const usage = await testApp.http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1, description: text }).expect(400);
      expect(usage.body.errors).toEqual([expect.objectContaining({ field: 'description', rule: 'maxLength' })]);
    }
    expect(await eventCount(userId)).toBe(written);
    const settled = await testApp.http().post(`/v1/accounts/${userId}/holds/${hold.body.holdId as string}/settle`).send({ amount: 1, description: limit }).expect(200);
    expect(settled.body.transaction.description).toBe(limit);
    await testApp.http().post(`/v1/admin/accounts/${userId}/grants/${lot.body.lotId as string}/void`).send({ reason: limit }).expect(200);
  });
});

describe('an as-of time', () => {
  it('must carry a time zone', async () => {
    const userId = randomUUID();
    await testApp.http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 5 }).expect(201);
    const local = await testApp.http().get(`/v1/audit/accounts/${userId}/balance?at=2026-01-01T00:00:00`).expect(400);
    expect(local.body.errors).toEqual([expect.objectContaining({ field: 'at', rule: 'isDateTime' })]);
    await testApp.http().get(`/v1/audit/accounts/${userId}/balance?at=2026-01-01T00:00:00Z`).expect(200);
    await testApp.http().get(`/v1/audit/accounts/${userId}/balance?at=2026-01-01T00:00:00%2B02:00`).expect(200);
  });
});
