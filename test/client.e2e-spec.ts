import { randomUUID } from 'node:crypto';
import { createTokenLedgerClient, isProblem, type TokenLedgerClient } from '@token-ledger/client';
import { startTestApp, testToken, TEST_ADMIN_SUBJECT, type TestApp } from './support/test-app.js';

// The generated client (libs/client) against the service listening on a real port: what an
// integrator's code does, typed by the document the service serves.

let testApp: TestApp;
let baseUrl: string;
let admin: TokenLedgerClient;
/** A backend that records usage, with an API key the admin created through the client. */
let service: TokenLedgerClient;

beforeAll(async () => {
  testApp = await startTestApp({ PAYMENT_JOBS_ENABLED: 'false' });
  await testApp.app.listen({ port: 0, host: '127.0.0.1' });
  const address = testApp.app.getHttpServer().address();
  if (address === null || typeof address === 'string') throw new Error('the test service has no TCP address');
  baseUrl = `http://127.0.0.1:${address.port}`;
  admin = createTokenLedgerClient({ baseUrl, auth: { bearerToken: await testToken('admin', TEST_ADMIN_SUBJECT) } });
  const created = await admin.POST('/v1/admin/api-keys', { body: { name: `billing ${randomUUID()}`, role: 'service', scopes: ['usage:write', 'accounts:read'] } });
  if (created.error !== undefined) throw new Error(`API key refused: ${created.error.code}`);
  service = createTokenLedgerClient({ baseUrl, auth: { apiKey: created.data.key } });
});

afterAll(async () => {
  await testApp.close();
});

async function fundedUser(amount: number): Promise<string> {
  const userId = randomUUID();
  const { data, error } = await admin.POST('/v1/accounts/{userId}/purchases', { params: { path: { userId } }, body: { paymentId: randomUUID(), amount } });
  if (error !== undefined) throw new Error(`funding failed: ${error.code}`);
  expect(data.balance).toBe(amount);
  return userId;
}

const useTokens = (client: TokenLedgerClient, userId: string, amount: number) => client.POST('/v1/accounts/{userId}/usage', { params: { path: { userId } }, body: { amount } });

/** The codes the client's types give a usage's error. */
type UsageProblemCode = NonNullable<Awaited<ReturnType<typeof useTokens>>['error']>['code'];

/**
 * Every one of them, and (the type checker sees to it: a key missing or extra does not compile) no
 * other: the test below compares this list with the document the service serves.
 */
const USAGE_PROBLEM_CODES: Record<UsageProblemCode, true> = {
  ACCOUNT_IN_SHORTFALL: true,
  APPEND_DEADLINE_EXCEEDED: true,
  AUTHENTICATION_UNAVAILABLE: true,
  BAD_REQUEST: true,
  BODY_NOT_UTF8: true,
  BODY_TOO_DEEP: true,
  CONCURRENCY_CONFLICT: true,
  DATABASE_UNAVAILABLE: true,
  FORBIDDEN: true,
  IDEMPOTENCY_KEY_INVALID: true,
  IDEMPOTENCY_KEY_IN_PROGRESS: true,
  IDEMPOTENCY_KEY_REUSED: true,
  INSUFFICIENT_AVAILABLE_BALANCE: true,
  INSUFFICIENT_BALANCE: true,
  INTERNAL_ERROR: true,
  PAYLOAD_TOO_LARGE: true,
  RATE_LIMITED: true,
  UNAUTHENTICATED: true,
  UNSUPPORTED_MEDIA_TYPE: true,
  VALIDATION_FAILED: true,
};

async function balanceOf(client: TokenLedgerClient, userId: string) {
  const { data, error } = await client.GET('/v1/accounts/{userId}/balance', { params: { path: { userId } } });
  if (error !== undefined) throw new Error(`balance failed: ${error.code}`);
  return data;
}

describe('the generated client against the running service', () => {
  it('spends tokens with a service API key, a retry with the same Idempotency-Key gets the first response, and the user reads the result', async () => {
    const userId = await fundedUser(100);
    const user = createTokenLedgerClient({ baseUrl, auth: { bearerToken: await testToken('user', userId) } });
    const key = randomUUID();
    const spend = () => service.POST('/v1/accounts/{userId}/usage', { params: { path: { userId }, header: { 'Idempotency-Key': key } }, body: { amount: 30, description: 'gpt call' } });

    const first = await spend();
    expect(first.response.status).toBe(201);
    expect(first.data?.balance).toBe(70);
    expect(first.data?.transaction).toMatchObject({ amount: -30, transactionType: 'usage', description: 'gpt call', balanceAfter: 70 });
    const repeat = await spend();
    expect(repeat.response.headers.get('idempotent-replayed')).toBe('true');
    expect(repeat.data?.transaction.id).toBe(first.data?.transaction.id);
    expect(await balanceOf(user, userId)).toMatchObject({ balance: 70, held: 0, available: 70 });

    const history = await user.GET('/v1/accounts/{userId}/transactions', { params: { path: { userId }, query: { limit: 10 } } });
    expect(history.data?.data.map((transaction) => transaction.transactionType)).toEqual(['usage', 'purchase']);
  });

  it('holds tokens and settles part of the hold, releasing the rest', async () => {
    const userId = await fundedUser(100);
    const hold = await admin.POST('/v1/accounts/{userId}/holds', { params: { path: { userId } }, body: { amount: 40, description: 'streaming reply' } });
    if (hold.error !== undefined) throw new Error(`hold failed: ${hold.error.code}`);
    expect(await balanceOf(admin, userId)).toMatchObject({ balance: 100, held: 40, available: 60 });

    const settled = await admin.POST('/v1/accounts/{userId}/holds/{holdId}/settle', { params: { path: { userId, holdId: hold.data.holdId } }, body: { amount: 25 } });
    expect(settled.data).toMatchObject({ holdId: hold.data.holdId, settledAmount: 25, releasedAmount: 15 });
    expect(await balanceOf(admin, userId)).toMatchObject({ balance: 75, held: 0, available: 75 });

    const again = await admin.POST('/v1/accounts/{userId}/holds/{holdId}/settle', { params: { path: { userId, holdId: hold.data.holdId } }, body: { amount: 1 } });
    expect(again.response.status).toBe(409);
    expect(isProblem(again.error, 'HOLD_NOT_ACTIVE') && again.error['holdStatus']).toBe('settled');
  });

  it('buys a package with the mock provider: a public price list, a payment, its capture and the tokens credited', async () => {
    const userId = randomUUID();
    const anonymous = createTokenLedgerClient({ baseUrl });
    const packages = await anonymous.GET('/v1/packages');
    const starter = packages.data?.data.find((offer) => offer.id === 'starter');
    if (starter === undefined) throw new Error('no starter package');

    const created = await admin.POST('/v1/payments', { body: { userId, packageId: starter.id } });
    if (created.error !== undefined) throw new Error(`payment failed: ${created.error.code}`);
    expect(created.data).toMatchObject({ userId, status: 'PENDING', tokens: starter.tokens, amount: starter.price, provider: 'mock' });

    const captured = await admin.POST('/v1/payments/{paymentId}/capture', { params: { path: { paymentId: created.data.paymentId } } });
    expect(captured.data).toMatchObject({ balance: starter.tokens, payment: { paymentId: created.data.paymentId, status: 'COMPLETED' } });
    expect((await balanceOf(admin, userId)).balance).toBe(starter.tokens);
    const listed = await admin.GET('/v1/accounts/{userId}/payments', { params: { path: { userId } } });
    expect(listed.data?.data.map((payment) => payment.status)).toEqual(['COMPLETED']);
  });

  it('gets a problem typed by its code: INSUFFICIENT_BALANCE with its details, UNAUTHENTICATED, FORBIDDEN, VALIDATION_FAILED', async () => {
    const userId = await fundedUser(5);
    const user = createTokenLedgerClient({ baseUrl, auth: { bearerToken: await testToken('user', userId) } });
    const short = await useTokens(service, userId, 10);
    expect(short.response.status).toBe(409);
    expect(short.response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    // The error's type lists the codes this operation can answer; switching on it is exhaustive.
    const code = short.error?.code;
    expect(code).toBe('INSUFFICIENT_BALANCE');
    expect(short.error).toMatchObject({ status: 409, balance: 5, requested: 10, type: 'urn:token-ledger:problem:insufficient-balance' });

    const anonymous = createTokenLedgerClient({ baseUrl });
    const refused = await anonymous.GET('/v1/accounts/{userId}/balance', { params: { path: { userId } } });
    expect(refused.response.status).toBe(401);
    expect(refused.error?.code).toBe('UNAUTHENTICATED');

    const stranger = createTokenLedgerClient({ baseUrl, auth: { bearerToken: await testToken('user') } });
    const forbidden = await stranger.GET('/v1/accounts/{userId}/balance', { params: { path: { userId } } });
    expect(forbidden.response.status).toBe(403);
    expect(forbidden.error?.code).toBe('FORBIDDEN');
    const notForUsers = await useTokens(user, userId, 1);
    expect(notForUsers.error?.code).toBe('FORBIDDEN');

    const invalid = await useTokens(service, userId, 0);
    expect(invalid.error).toMatchObject({ code: 'VALIDATION_FAILED', errors: [{ field: 'amount', rule: 'min' }] });
    expect(await balanceOf(user, userId)).toMatchObject({ balance: 5 });
  });

  it('types the error of an operation by exactly the codes the served document lists for it', async () => {
    type Responses = Record<string, { content?: Record<string, { schema?: { allOf?: { properties?: { code?: { enum?: string[] } } }[] } }> }>;
    const document = (await (await fetch(`${baseUrl}/docs-json`)).json()) as { paths: Record<string, Record<string, { responses: Responses }>> };
    const responses = document.paths['/v1/accounts/{userId}/usage']?.['post']?.responses ?? {};
    const listed = Object.values(responses).flatMap((response) => response.content?.['application/problem+json']?.schema?.allOf?.[1]?.properties?.code?.enum ?? []);
    expect(Object.keys(USAGE_PROBLEM_CODES).sort()).toEqual([...new Set(listed)].sort());
  });
});
