import { randomUUID } from 'node:crypto';
import { startTestApp, type TestApp } from './support/test-app.js';

let testApp: TestApp;

beforeAll(async () => {
  testApp = await startTestApp();
});

afterAll(async () => {
  await testApp.close();
});

const http = () => testApp.http();

function purchase(userId: string, body: Record<string, unknown>) {
  return http().post(`/v1/accounts/${userId}/purchases`).send(body);
}

function use(userId: string, body: Record<string, unknown>) {
  return http().post(`/v1/accounts/${userId}/usage`).send(body);
}

async function eventCount(userId: string): Promise<number> {
  const result = await testApp.database.pool.query<{ count: string }>('SELECT count(*) FROM events WHERE stream_id = $1', [`token-account-${userId}`]);
  return Number(result.rows[0]?.count);
}

async function fundedUser(amount: number): Promise<string> {
  const userId = randomUUID();
  await purchase(userId, { paymentId: randomUUID(), amount, description: 'Funding' }).expect(201);
  return userId;
}

describe('balance', () => {
  it('is 0 for a user never seen', async () => {
    const userId = randomUUID();
    const response = await http().get(`/v1/accounts/${userId}/balance`).expect(200);
    expect(response.body).toEqual({ userId, balance: 0, held: 0, available: 0, nextExpiry: null });
  });
});

describe('purchases', () => {
  it('credits a new user and the next reads show it', async () => {
    const userId = randomUUID();
    const paymentId = randomUUID();
    const response = await purchase(userId, { paymentId, amount: 100, description: 'Starter pack' }).expect(201);
    expect(response.body).toMatchObject({
      userId,
      balance: 100,
      readModelUpToDate: true,
      transaction: { userId, amount: 100, transactionType: 'purchase', description: 'Starter pack', paymentId, balanceAfter: 100 },
    });
    expect(response.body.position).toMatch(/^\d+\/\d+$/);
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 100, held: 0, available: 100, nextExpiry: null });
    const history = await http().get(`/v1/accounts/${userId}/transactions`).expect(200);
    expect(history.body).toEqual({ data: [response.body.transaction], total: 1, limit: 10, offset: 0, hasMore: false, nextCursor: null });
  });

  it('caps one purchase at PURCHASE_TOKENS_MAX (1,000,000 by default): more is 400 naming amount and the cap, and nothing is written', async () => {
    const userId = randomUUID();
    for (const amount of [1_000_001, Number.MAX_SAFE_INTEGER]) {
      const response = await purchase(userId, { paymentId: randomUUID(), amount }).expect(400);
      expect(response.body).toMatchObject({ code: 'AMOUNT_OUT_OF_RANGE', field: 'amount', amount, max: 1_000_000 });
    }
    expect(await eventCount(userId)).toBe(0);
    await purchase(userId, { paymentId: randomUUID(), amount: 1_000_000 }).expect(201);
  });

  it('adds to the balance of an existing user', async () => {
    const userId = await fundedUser(40);
    const response = await purchase(userId, { paymentId: randomUUID(), amount: 60 }).expect(201);
    expect(response.body).toMatchObject({ balance: 100, transaction: { amount: 60, balanceAfter: 100, description: null } });
  });

  it('returns the first result again for a repeated paymentId and credits once', async () => {
    const userId = randomUUID();
    const body = { paymentId: randomUUID(), amount: 25, description: 'Pack' };
    const first = await purchase(userId, body).expect(201);
    const again = await purchase(userId, body).expect(201);
    expect(again.body).toEqual(first.body);
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 25, held: 0, available: 25, nextExpiry: null });
    expect(await eventCount(userId)).toBe(1);
  });

  it('refuses a repeated paymentId with a different amount and credits nothing', async () => {
    const userId = randomUUID();
    const paymentId = randomUUID();
    await purchase(userId, { paymentId, amount: 25 }).expect(201);
    const response = await purchase(userId, { paymentId, amount: 26 }).expect(409);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ status: 409, code: 'PAYMENT_ID_REUSED', creditedAmount: 25, requestedAmount: 26 });
    expect(await eventCount(userId)).toBe(1);
  });

  it('refuses a paymentId credited to another account with 409 PAYMENT_ID_REUSED and credits nothing there', async () => {
    const [first, second] = [randomUUID(), randomUUID()];
    const body = { paymentId: randomUUID(), amount: 9, description: 'Pack' };
    await purchase(first, body).expect(201);
    const response = await purchase(second, body).expect(409);
    expect(response.body).toMatchObject({ status: 409, code: 'PAYMENT_ID_REUSED', paymentId: body.paymentId });
    expect(JSON.stringify(response.body)).not.toContain(first); // the other account is not named
    await http().get(`/v1/accounts/${second}/balance`).expect(200, { userId: second, balance: 0, held: 0, available: 0, nextExpiry: null });
    expect(await eventCount(second)).toBe(0);
    // The first account's retry is still the first answer.
    expect((await purchase(first, body).expect(201)).body.balance).toBe(9);
  });

  it('refuses a paymentId another account was credited without a claim (by a version before claims, in a rolling deploy)', async () => {
    const [first, second] = [randomUUID(), randomUUID()];
    const body = { paymentId: randomUUID(), amount: 9 };
    await purchase(first, body).expect(201);
    await testApp.database.pool.query('DELETE FROM payment_streams WHERE payment_id = $1', [body.paymentId]);
    expect((await purchase(second, body).expect(409)).body).toMatchObject({ code: 'PAYMENT_ID_REUSED' });
    expect(await eventCount(second)).toBe(0);
  });

  it('credits one account when the same paymentId races to 20 accounts', async () => {
    const users = Array.from({ length: 20 }, () => randomUUID());
    const body = { paymentId: randomUUID(), amount: 7, description: 'Race' };
    const responses = await Promise.all(users.map((userId) => purchase(userId, body)));
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(1);
    expect(statuses.filter((status) => status === 409)).toHaveLength(19);
    expect(responses.filter((response) => response.status === 409).map((response) => response.body.code)).toEqual(Array.from({ length: 19 }, () => 'PAYMENT_ID_REUSED'));
    const credited = await testApp.database.pool.query<{ user_id: string; total: string }>(
      "SELECT user_id, sum(amount) AS total FROM token_transactions WHERE payment_id = $1 AND transaction_type = 'purchase' GROUP BY user_id",
      [body.paymentId],
    );
    expect(credited.rows).toEqual([{ user_id: users[statuses.indexOf(201)], total: '7' }]);
    expect((await Promise.all(users.map(eventCount))).reduce((sum, count) => sum + count, 0)).toBe(1);
  });

  it('after a crash between claiming a paymentId and crediting it, the same account credits it once and another is refused', async () => {
    const [owner, other] = [randomUUID(), randomUUID()];
    const body = { paymentId: randomUUID(), amount: 11 };
    // What a process that died right after the claim leaves: the claim, no event.
    await testApp.database.pool.query('INSERT INTO payment_streams (payment_id, user_id) VALUES ($1, $2)', [body.paymentId, owner]);
    expect((await purchase(other, body).expect(409)).body).toMatchObject({ code: 'PAYMENT_ID_REUSED' });
    expect((await purchase(owner, body).expect(201)).body.balance).toBe(11);
    expect((await purchase(owner, body).expect(201)).body.balance).toBe(11);
    expect([await eventCount(owner), await eventCount(other)]).toEqual([1, 0]);
  });

  it('credits one payment once when 20 identical purchases race', async () => {
    const userId = randomUUID();
    const body = { paymentId: randomUUID(), amount: 7, description: 'Race' };
    const responses = await Promise.all(Array.from({ length: 20 }, () => purchase(userId, body)));
    expect(responses.map((response) => response.status)).toEqual(Array.from({ length: 20 }, () => 201));
    expect(new Set(responses.map((response) => response.body.transaction.id)).size).toBe(1);
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 7, held: 0, available: 7, nextExpiry: null });
    const history = await http().get(`/v1/accounts/${userId}/transactions`).expect(200);
    expect(history.body.total).toBe(1);
    expect(await eventCount(userId)).toBe(1);
  });
});

describe('usage', () => {
  it('debits the balance and records a negative usage transaction', async () => {
    const userId = await fundedUser(100);
    const response = await use(userId, { amount: 30, description: 'Chat completion' }).expect(201);
    expect(response.body).toMatchObject({
      userId,
      balance: 70,
      transaction: { amount: -30, transactionType: 'usage', description: 'Chat completion', paymentId: null, balanceAfter: 70 },
    });
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 70, held: 0, available: 70, nextExpiry: null });
  });

  it('refuses usage above the balance with 409 INSUFFICIENT_BALANCE and writes nothing', async () => {
    const userId = await fundedUser(10);
    const response = await use(userId, { amount: 11 }).expect(409);
    expect(response.body).toMatchObject({ type: 'urn:token-ledger:problem:insufficient-balance', status: 409, code: 'INSUFFICIENT_BALANCE', balance: 10, requested: 11 });
    expect(await eventCount(userId)).toBe(1);
    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 10, held: 0, available: 10, nextExpiry: null });
  });

  it('lets exactly 20 of 50 racing 1-token usages through a balance of 20', async () => {
    const userId = await fundedUser(20);
    const responses = await Promise.all(Array.from({ length: 50 }, (_, index) => use(userId, { amount: 1, description: `call ${index}` })));
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(20);
    expect(statuses.filter((status) => status === 409)).toHaveLength(30);
    for (const refused of responses.filter((response) => response.status === 409)) expect(refused.body.code).toBe('INSUFFICIENT_BALANCE');

    await http().get(`/v1/accounts/${userId}/balance`).expect(200, { userId, balance: 0, held: 0, available: 0, nextExpiry: null });
    const rows = await testApp.database.pool.query<{ balance_after: string }>(
      `SELECT balance_after FROM token_transactions WHERE user_id = $1 AND transaction_type = 'usage' ORDER BY stream_revision`,
      [userId],
    );
    expect(rows.rows.map((row) => Number(row.balance_after))).toEqual(Array.from({ length: 20 }, (_, index) => 19 - index));
  });
});

describe('history', () => {
  it('pages newest first with the total', async () => {
    const userId = await fundedUser(100);
    for (const amount of [1, 2, 3, 4]) await use(userId, { amount }).expect(201);
    const first = await http().get(`/v1/accounts/${userId}/transactions?limit=2`).expect(200);
    expect(first.body).toMatchObject({ total: 5, limit: 2, offset: 0, hasMore: true });
    expect(first.body.data.map((row: { amount: number }) => row.amount)).toEqual([-4, -3]);
    const second = await http().get(`/v1/accounts/${userId}/transactions?limit=2&offset=2`).expect(200);
    expect(second.body.data.map((row: { amount: number }) => row.amount)).toEqual([-2, -1]);
    const last = await http().get(`/v1/accounts/${userId}/transactions?limit=2&offset=4`).expect(200);
    expect(last.body.data.map((row: { transactionType: string; balanceAfter: number }) => [row.transactionType, row.balanceAfter])).toEqual([['purchase', 100]]);
    const beyond = await http().get(`/v1/accounts/${userId}/transactions?offset=50`).expect(200);
    expect(beyond.body).toEqual({ data: [], total: 5, limit: 10, offset: 50, hasMore: false, nextCursor: null });
  });

  it('is empty with total 0 for a user never seen', async () => {
    const response = await http().get(`/v1/accounts/${randomUUID()}/transactions`).expect(200);
    expect(response.body).toEqual({ data: [], total: 0, limit: 10, offset: 0, hasMore: false, nextCursor: null });
  });

  it('keeps the sum of transaction amounts equal to every balance', async () => {
    const result = await testApp.database.pool.query<{ user_id: string; balance: string; total: string | null }>(
      `SELECT u.user_id, u.balance, (SELECT sum(amount) FROM token_transactions t WHERE t.user_id = u.user_id) AS total FROM user_tokens u`,
    );
    expect(result.rows.length).toBeGreaterThan(5);
    for (const row of result.rows) expect(row.total).toBe(row.balance);
  });
});

describe('bad input gets 400 naming the field and writes nothing', () => {
  const longText = 'x'.repeat(501);
  const cases: ReadonlyArray<[string, string, Record<string, unknown>, string]> = [
    ['purchases', 'zero amount', { paymentId: randomUUID(), amount: 0 }, 'amount'],
    ['purchases', 'negative amount', { paymentId: randomUUID(), amount: -5 }, 'amount'],
    ['purchases', 'fractional amount', { paymentId: randomUUID(), amount: 1.5 }, 'amount'],
    ['purchases', 'unsafe integer amount', { paymentId: randomUUID(), amount: Number.MAX_SAFE_INTEGER + 1 }, 'amount'],
    ['purchases', 'amount as text', { paymentId: randomUUID(), amount: '10' }, 'amount'],
    ['purchases', 'missing amount', { paymentId: randomUUID() }, 'amount'],
    ['purchases', 'non-UUID paymentId', { paymentId: 'pay-1', amount: 5 }, 'paymentId'],
    ['purchases', 'over-long description', { paymentId: randomUUID(), amount: 5, description: longText }, 'description'],
    ['purchases', 'unknown field', { paymentId: randomUUID(), amount: 5, bonus: 10 }, 'bonus'],
    ['usage', 'zero amount', { amount: 0 }, 'amount'],
    ['usage', 'fractional amount', { amount: 0.5 }, 'amount'],
    ['usage', 'unsafe integer amount', { amount: 2 ** 53 }, 'amount'],
    ['usage', 'over-long description', { amount: 1, description: longText }, 'description'],
    ['usage', 'description not text', { amount: 1, description: 42 }, 'description'],
    ['usage', 'unknown field', { amount: 1, userId: randomUUID() }, 'userId'],
  ];

  it.each(cases)('%s: %s', async (route, _name, body, field) => {
    const userId = await fundedUser(50);
    const response = await http().post(`/v1/accounts/${userId}/${route}`).send(body).expect(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ status: 400, code: 'VALIDATION_FAILED' });
    expect(response.body.errors.map((error: { field: string }) => error.field)).toContain(field);
    expect(await eventCount(userId)).toBe(1);
  });

  it.each(['purchases', 'usage'])('%s: non-UUID user id', async (route) => {
    const body = route === 'purchases' ? { paymentId: randomUUID(), amount: 1 } : { amount: 1 };
    const response = await http().post(`/v1/accounts/not-a-user/${route}`).send(body).expect(400);
    expect(response.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'userId', rule: 'isUuid' })]));
  });

  it('non-UUID user id on reads', async () => {
    const response = await http().get('/v1/accounts/12345/balance').expect(400);
    expect(response.body.errors).toEqual([expect.objectContaining({ field: 'userId', rule: 'isUuid' })]);
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=101', 'limit'],
    ['limit=abc', 'limit'],
    ['limit=2.5', 'limit'],
    ['offset=-1', 'offset'],
    ['offset=x', 'offset'],
  ])('history paging %s', async (query, field) => {
    const response = await http().get(`/v1/accounts/${randomUUID()}/transactions?${query}`).expect(400);
    expect(new Set(response.body.errors.map((error: { field: string }) => error.field))).toEqual(new Set([field]));
  });

  it('malformed JSON', async () => {
    const userId = await fundedUser(5);
    const response = await http().post(`/v1/accounts/${userId}/usage`).set('content-type', 'application/json').send('{"amount":').expect(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(await eventCount(userId)).toBe(1);
  });

  it('a body that is not JSON gets 415', async () => {
    const userId = await fundedUser(5);
    await http().post(`/v1/accounts/${userId}/usage`).set('content-type', 'text/plain').send('amount=1').expect(415);
    expect(await eventCount(userId)).toBe(1);
  });

  it('a body over 64 KiB gets 413', async () => {
    const userId = await fundedUser(5);
    const response = await http()
      .post(`/v1/accounts/${userId}/usage`)
      .set('content-type', 'application/json')
      .send(JSON.stringify({ amount: 1, description: 'x'.repeat(65 * 1024) }))
      .expect(413);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({ status: 413 });
    expect(await eventCount(userId)).toBe(1);
  });
});

describe('service endpoints', () => {
  it('reports health with the database up', async () => {
    const response = await http().get('/health').expect(200);
    expect(response.body).toMatchObject({ status: 'ok', info: { database: { status: 'up' } } });
  });

  it('serves the OpenAPI document', async () => {
    const response = await http().get('/docs-json').expect(200);
    expect(Object.keys(response.body.paths)).toEqual(
      expect.arrayContaining(['/v1/accounts/{userId}/balance', '/v1/accounts/{userId}/purchases', '/v1/accounts/{userId}/usage', '/v1/accounts/{userId}/transactions', '/health']),
    );
    expect(Object.keys(response.body.components.schemas.PurchaseRequest.properties).sort()).toEqual(['amount', 'description', 'paymentId']);
    expect(response.body.components.schemas.PurchaseRequest.required.sort()).toEqual(['amount', 'paymentId']);
    expect(Object.keys(response.body.components.schemas.UsageRequest.properties).sort()).toEqual(['amount', 'description', 'metadata']);
  });

  it('echoes a valid request id and makes one otherwise', async () => {
    const given = await http().get('/health').set('x-request-id', 'trace-123').expect(200);
    expect(given.headers['x-request-id']).toBe('trace-123');
    const made = await http().get('/health').set('x-request-id', 'bad id with spaces').expect(200);
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers an unknown route with a 404 problem', async () => {
    const response = await http().get('/v1/nothing-here').expect(404);
    expect(response.body).toMatchObject({ status: 404, code: 'NOT_FOUND' });
  });
});

describe('user ids in upper case', () => {
  it('name the same account as in lower case: one stream, one credit for one paymentId', async () => {
    const userId = randomUUID();
    const paymentId = randomUUID();
    const upper = await http().post(`/v1/accounts/${userId.toUpperCase()}/purchases`).send({ paymentId: paymentId.toUpperCase(), amount: 40 }).expect(201);
    expect(upper.body).toMatchObject({ userId, balance: 40, transaction: { paymentId } });
    const lower = await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId, amount: 40 }).expect(201);
    expect(lower.body).toMatchObject({ userId, balance: 40 });
    await http().post(`/v1/accounts/${userId.toUpperCase()}/usage`).send({ amount: 15 }).expect(201);
    expect((await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toMatchObject({ userId, balance: 25 });
    expect((await http().get(`/v1/accounts/${userId.toUpperCase()}/transactions`).expect(200)).body.total).toBe(2);
  });
});
