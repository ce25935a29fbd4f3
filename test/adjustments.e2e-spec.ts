import { randomUUID } from 'node:crypto';
import { ProjectionsAdmin } from '@app/operations';
import { startTestApp, type TestApp } from './support/test-app.js';

let testApp: TestApp;

beforeAll(async () => {
  testApp = await startTestApp();
});

afterAll(async () => {
  await testApp.close();
});

const http = () => testApp.http();

function adjust(userId: string, body: Record<string, unknown>, idempotencyKey?: string) {
  const request = http().post(`/v1/admin/accounts/${userId}/adjustments`);
  return (idempotencyKey === undefined ? request : request.set('Idempotency-Key', idempotencyKey)).send(body);
}

function use(userId: string, amount: number) {
  return http().post(`/v1/accounts/${userId}/usage`).send({ amount });
}

async function fundedUser(amount: number): Promise<string> {
  const userId = randomUUID();
  await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount, description: 'Funding' }).expect(201);
  return userId;
}

async function events(userId: string): Promise<{ type: string; data: Record<string, unknown>; metadata: Record<string, unknown> }[]> {
  const result = await testApp.database.pool.query<{ type: string; data: Record<string, unknown>; metadata: Record<string, unknown> }>(
    'SELECT event_type AS type, data, metadata FROM events WHERE stream_id = $1 ORDER BY stream_revision',
    [`token-account-${userId}`],
  );
  return result.rows;
}

/** The user's token_transactions rows, oldest first, as the projection wrote them. */
async function rows(userId: string): Promise<{ type: string; amount: number; description: string | null; balanceAfter: number }[]> {
  const result = await testApp.database.pool.query<{ type: string; amount: string; description: string | null; balance_after: string }>(
    'SELECT transaction_type AS type, amount::text, description, balance_after::text FROM token_transactions WHERE user_id = $1 ORDER BY stream_revision',
    [userId],
  );
  return result.rows.map((row) => ({ type: row.type, amount: Number(row.amount), description: row.description, balanceAfter: Number(row.balance_after) }));
}

describe('admin adjustments', () => {
  it('debits with a reason: 201 with the adjustment transaction and balance, and the next reads show it', async () => {
    const userId = await fundedUser(100);
    const response = await adjust(userId, { amount: -40, reason: 'Chargeback on order 1042' }).expect(201);
    expect(response.body).toMatchObject({
      userId,
      balance: 60,
      readModelUpToDate: true,
      transaction: { userId, amount: -40, transactionType: 'adjustment', description: 'Chargeback on order 1042', paymentId: null, balanceAfter: 60 },
    });
    expect(response.body.position).toMatch(/^\d+\/\d+$/);
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 60, held: 0, available: 60, nextExpiry: null });
    const history = await http().get(`/v1/accounts/${userId}/transactions`).expect(200);
    expect(history.body.data[0]).toEqual(response.body.transaction);
    const [, adjusted] = await events(userId);
    expect(adjusted).toMatchObject({
      type: 'TokensAdjusted',
      data: { userId, transactionId: response.body.transaction.id, amount: -40, reason: 'Chargeback on order 1042', balanceAfter: 60 },
      metadata: { schemaVersion: 1, requestId: expect.any(String) as unknown },
    });
  });

  it('credits with a positive adjustment, also a user never seen, and trims the reason', async () => {
    const userId = randomUUID();
    const response = await adjust(userId, { amount: 25, reason: '  Goodwill credit  ' }).expect(201);
    expect(response.body).toMatchObject({ balance: 25, transaction: { amount: 25, transactionType: 'adjustment', description: 'Goodwill credit', balanceAfter: 25 } });
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 25, held: 0, available: 25, nextExpiry: null });
  });

  it('may take the balance to exactly zero', async () => {
    const userId = await fundedUser(30);
    await adjust(userId, { amount: -30, reason: 'Account closed' }).expect(201);
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 0, held: 0, available: 0, nextExpiry: null });
  });

  it('refuses a debit below zero with 409 ADJUSTMENT_EXCEEDS_BALANCE and writes nothing', async () => {
    const userId = await fundedUser(10);
    const response = await adjust(userId, { amount: -11, reason: 'Too much' }).expect(409);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ type: 'urn:token-ledger:problem:adjustment-exceeds-balance', status: 409, code: 'ADJUSTMENT_EXCEEDS_BALANCE', balance: 10, requested: -11 });
    expect((await events(userId)).map((event) => event.type)).toEqual(['TokensPurchased']);
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 10, held: 0, available: 10, nextExpiry: null });
    const stranger = randomUUID();
    await adjust(stranger, { amount: -1, reason: 'Nothing to take' }).expect(409);
    expect(await events(stranger)).toEqual([]);
  });

  it('refuses a credit past the largest safe balance with 422 BALANCE_OUT_OF_RANGE', async () => {
    const userId = randomUUID();
    await adjust(userId, { amount: Number.MAX_SAFE_INTEGER, reason: 'Largest' }).expect(201);
    const response = await adjust(userId, { amount: 1, reason: 'One more' }).expect(422);
    expect(response.body).toMatchObject({ code: 'BALANCE_OUT_OF_RANGE', balance: Number.MAX_SAFE_INTEGER, requested: 1 });
    expect(await events(userId)).toHaveLength(1);
  });

  it('shows adjustments among purchases and usage in the history, newest first, each with its balance_after', async () => {
    const userId = await fundedUser(50);
    await adjust(userId, { amount: -20, reason: 'Duplicate credit' }).expect(201);
    await use(userId, 5).expect(201);
    await adjust(userId, { amount: 75, reason: 'Goodwill' }).expect(201);
    expect(await rows(userId)).toEqual([
      { type: 'purchase', amount: 50, description: 'Funding', balanceAfter: 50 },
      { type: 'adjustment', amount: -20, description: 'Duplicate credit', balanceAfter: 30 },
      { type: 'usage', amount: -5, description: null, balanceAfter: 25 },
      { type: 'adjustment', amount: 75, description: 'Goodwill', balanceAfter: 100 },
    ]);
    const history = await http().get(`/v1/accounts/${userId}/transactions`).expect(200);
    expect(history.body.total).toBe(4);
    expect(history.body.data.map((row: { transactionType: string; amount: number; balanceAfter: number }) => [row.transactionType, row.amount, row.balanceAfter])).toEqual([
      ['adjustment', 75, 100],
      ['usage', -5, 25],
      ['adjustment', -20, 30],
      ['purchase', 50, 50],
    ]);
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 100, held: 0, available: 100, nextExpiry: null });
  });

  it('replays the first response for a retry with the same Idempotency-Key and adjusts once', async () => {
    const userId = await fundedUser(100);
    const key = randomUUID();
    const first = await adjust(userId, { amount: -30, reason: 'Chargeback' }, key).expect(201);
    const again = await adjust(userId, { amount: -30, reason: 'Chargeback' }, key).expect(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual(first.body);
    await adjust(userId, { amount: -31, reason: 'Chargeback' }, key).expect(422);
    const recorded = await events(userId);
    expect(recorded.map((event) => event.type)).toEqual(['TokensPurchased', 'TokensAdjusted']);
    expect(recorded[1]?.metadata).toMatchObject({ idempotencyKey: key });
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 70, held: 0, available: 70, nextExpiry: null });
  });

  it('lets exactly 10 of 30 racing 10-token debits (adjustments and usage mixed) through a balance of 100', async () => {
    const userId = await fundedUser(100);
    const responses = await Promise.all(
      Array.from({ length: 30 }, (_, index) => (index % 2 === 0 ? adjust(userId, { amount: -10, reason: `Correction ${index}` }) : use(userId, 10))),
    );
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(10);
    expect(statuses.filter((status) => status === 409)).toHaveLength(20);
    for (const [index, response] of responses.entries()) {
      if (response.status === 409) expect(response.body.code).toBe(index % 2 === 0 ? 'ADJUSTMENT_EXCEEDS_BALANCE' : 'INSUFFICIENT_BALANCE');
    }
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 0, held: 0, available: 0, nextExpiry: null });
    const debits = (await rows(userId)).slice(1);
    expect(debits).toHaveLength(10);
    expect(debits.map((row) => [row.amount, row.balanceAfter])).toEqual(Array.from({ length: 10 }, (_, index) => [-10, 90 - index * 10]));
    const adjusted = responses.filter((response, index) => index % 2 === 0 && response.status === 201).length;
    expect(debits.filter((row) => row.type === 'adjustment')).toHaveLength(adjusted);
    expect(await events(userId)).toHaveLength(11);
  });

  it('replays, verifies and recomputes an account with adjustments to the rows the live projection wrote', async () => {
    const userId = await fundedUser(40);
    await adjust(userId, { amount: -15, reason: 'Chargeback' }).expect(201);
    await use(userId, 25).expect(201);
    await adjust(userId, { amount: 8, reason: 'Goodwill' }).expect(201);
    const admin = testApp.app.get(ProjectionsAdmin);
    const replay = await admin.replayAccount(userId);
    expect(replay.refusal).toBeNull();
    expect(replay.lines.map((line) => [line.type, line.amount, line.balance, line.description])).toEqual([
      ['TokensPurchased', 40, 40, 'Funding'],
      ['TokensAdjusted', -15, 25, 'Chargeback'],
      ['TokensUsed', -25, 0, null],
      ['TokensAdjusted', 8, 8, 'Goodwill'],
    ]);
    expect(await admin.verifyAccount(userId)).toEqual([]);
    const snapshot = async () =>
      (await testApp.database.pool.query('SELECT t::text AS row FROM token_transactions t WHERE user_id = $1 UNION ALL SELECT u::text FROM user_tokens u WHERE user_id = $1 ORDER BY 1', [userId])).rows;
    const live = await snapshot();
    expect(live).toHaveLength(5);
    await http().post(`/v1/admin/accounts/${userId}/rebuild`).expect(200);
    expect(await snapshot()).toEqual(live);
    // A wrong adjustment row is found by verification and repaired by the per-account rebuild.
    await testApp.database.pool.query("UPDATE token_transactions SET amount = 9, balance_after = 9 WHERE user_id = $1 AND transaction_type = 'adjustment' AND amount = 8", [userId]);
    expect((await admin.verifyAccount(userId)).map((difference) => difference.kind).sort()).toEqual(['missing', 'unexpected']);
    await http().post(`/v1/admin/accounts/${userId}/rebuild`).expect(200);
    expect(await snapshot()).toEqual(live);
  });
});

describe('admin adjustments: bad input gets 400 naming the field and rule, and writes nothing', () => {
  const cases: ReadonlyArray<[string, Record<string, unknown>, string, string]> = [
    ['no reason', { amount: 5 }, 'reason', 'isDefined'],
    ['an empty reason', { amount: 5, reason: '' }, 'reason', 'isNotEmpty'],
    ['a blank reason', { amount: 5, reason: ' \t\n ' }, 'reason', 'isNotEmpty'],
    ['a reason that is not text', { amount: 5, reason: 42 }, 'reason', 'isString'],
    ['an over-long reason', { amount: 5, reason: 'r'.repeat(501) }, 'reason', 'maxLength'],
    ['amount 0', { amount: 0, reason: 'Zero' }, 'amount', 'notEquals'],
    ['a fractional amount', { amount: -1.5, reason: 'Half' }, 'amount', 'isInt'],
    ['an amount as text', { amount: '-5', reason: 'Text' }, 'amount', 'isInt'],
    ['no amount', { reason: 'Nothing' }, 'amount', 'isDefined'],
    ['an unsafe positive amount', { amount: Number.MAX_SAFE_INTEGER + 1, reason: 'Unsafe' }, 'amount', 'max'],
    ['an unsafe negative amount', { amount: -(2 ** 53), reason: 'Unsafe' }, 'amount', 'min'],
    ['an unknown field', { amount: 5, reason: 'Extra', description: 'x' }, 'description', 'whitelistValidation'],
  ];

  it.each(cases)('%s', async (_name, body, field, rule) => {
    const userId = await fundedUser(50);
    const response = await adjust(userId, body).expect(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(response.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field, rule })]));
    expect(await events(userId)).toHaveLength(1);
  });

  it('a non-UUID user id', async () => {
    const response = await adjust('not-a-user', { amount: 5, reason: 'Who' }).expect(400);
    expect(response.body.errors).toEqual([expect.objectContaining({ field: 'userId', rule: 'isUuid' })]);
  });
});

describe('admin adjustments: OpenAPI', () => {
  it('the OpenAPI document describes the route, both fields required, and the Idempotency-Key header', async () => {
    const response = await http().get('/docs-json').expect(200);
    const route = response.body.paths['/v1/admin/accounts/{userId}/adjustments'].post;
    expect(Object.keys(route.responses).sort()).toEqual(['201', '400', '401', '403', '409', '413', '415', '422', '429', '500', '503']);
    const codesOf = (status: string) => route.responses[status].content['application/problem+json'].schema.allOf[1].properties.code.enum;
    expect(codesOf('409')).toEqual(expect.arrayContaining(['ADJUSTMENT_EXCEEDS_BALANCE', 'INSUFFICIENT_AVAILABLE_BALANCE', 'CONCURRENCY_CONFLICT', 'IDEMPOTENCY_KEY_IN_PROGRESS']));
    expect(codesOf('422')).toEqual(['BALANCE_OUT_OF_RANGE', 'IDEMPOTENCY_KEY_REUSED']);
    expect(route.parameters.map((parameter: { name: string }) => parameter.name)).toEqual(expect.arrayContaining(['userId', 'Idempotency-Key']));
    const schema = response.body.components.schemas.AdjustmentRequest;
    expect(schema.required.sort()).toEqual(['amount', 'reason']);
    expect(schema.properties.amount).toMatchObject({ type: 'integer', minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER });
    expect(schema.properties.reason).toMatchObject({ minLength: 1, maxLength: 500 });
  });
});
