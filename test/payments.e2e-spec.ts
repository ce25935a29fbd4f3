import { createHmac, randomUUID } from 'node:crypto';
import pg from 'pg';
import { CommandHandling, PaymentStreams, ReadModelConsistency } from '@app/event-sourcing';
import { EVENT_STORE, type EventStore } from '@app/event-store';
import { decideTokenAccount, tokenAccountDecider, tokenAccountStreamId } from '@app/ledger';
import { MockPaymentProvider, PAYMENT_PROVIDER, PaymentExpiryJob, PaymentWorkflow, DEFAULT_TOKEN_PACKAGES, type PaymentProvider } from '@app/payments';
import { signWebhook } from '../apps/api/src/payments/webhook-signature.guard.js';
import { DEVELOPMENT_WEBHOOK_SECRET } from '../apps/api/src/config/app.config.js';
import { startTestApp, TEST_ACTOR, type TestApp } from './support/test-app.js';

let testApp: TestApp;
let provider: MockPaymentProvider;

beforeAll(async () => {
  testApp = await startTestApp({ PAYMENT_JOBS_ENABLED: 'false' });
  provider = testApp.app.get<MockPaymentProvider>(PAYMENT_PROVIDER, { strict: false });
});

afterAll(async () => {
  await testApp.close();
});

const http = () => testApp.http();
const HOUR_MS = 3_600_000;

async function buy(userId: string, packageId = 'starter') {
  const response = await http().post('/v1/payments').send({ userId, packageId }).expect(201);
  return response.body as { paymentId: string; orderId: string; status: string; tokens: number; amount: number; currency: string };
}

const capture = (paymentId: string) => http().post(`/v1/payments/${paymentId}/capture`).send();
const refund = (paymentId: string) => http().post(`/v1/payments/${paymentId}/refund`).send();
const balanceOf = async (userId: string) => (await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body.balance as number;

async function eventTypes(userId: string): Promise<string[]> {
  const result = await testApp.database.pool.query<{ event_type: string }>('SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_revision', [`token-account-${userId}`]);
  return result.rows.map((row) => row.event_type);
}

/** Another API instance: its own command handling (cache, per-stream lock) over the same store and provider. */
function otherInstance(now: () => Date = () => new Date()): { workflow: PaymentWorkflow; job: PaymentExpiryJob } {
  const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
  const commands = new CommandHandling(store, { cacheEntriesMax: 100, snapshotIntervalEvents: 500 });
  const consistency = testApp.app.get(ReadModelConsistency, { strict: false });
  const workflow = new PaymentWorkflow(commands, consistency, provider, new PaymentStreams(testApp.database.pool), { packages: DEFAULT_TOKEN_PACKAGES, pendingTtlMs: HOUR_MS, pendingPaymentsMax: 10, now });
  return { workflow, job: new PaymentExpiryJob(testApp.database.pool, workflow) };
}

/** Polls until `read` returns what `accept` wants: the job does not wait for the read models. */
async function eventually<T>(read: () => Promise<T>, accept: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const value = await read();
    if (accept(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const theJob = () => testApp.app.get(PaymentExpiryJob, { strict: false });
const hoursFromNow = (hours: number) => new Date(Date.now() + hours * HOUR_MS);

describe('buying a package', () => {
  it('takes a new user from a PENDING payment to a credited balance, with the payment and the purchase in the read models', async () => {
    const userId = randomUUID();
    const created = await buy(userId);
    expect(created).toMatchObject({ status: 'PENDING', tokens: 100, amount: 500, currency: 'USD', orderId: `MOCK-ORDER-${created.paymentId}`, readModelUpToDate: true });
    const captured = await capture(created.paymentId).expect(200);
    expect(captured.body).toMatchObject({ balance: 100, readModelUpToDate: true, payment: { paymentId: created.paymentId, status: 'COMPLETED', providerTransactionId: `MOCK-CAPTURE-${created.paymentId}` } });
    const stored = await http().get(`/v1/payments/${created.paymentId}`).expect(200);
    expect(stored.body).toEqual(captured.body.payment);
    const history = await http().get(`/v1/accounts/${userId}/transactions`).expect(200);
    expect(history.body.data).toMatchObject([{ amount: 100, transactionType: 'purchase', paymentId: created.paymentId, balanceAfter: 100 }]);
    const payments = await http().get(`/v1/accounts/${userId}/payments?status=COMPLETED`).expect(200);
    expect(payments.body).toEqual({ data: [captured.body.payment], total: 1, limit: 10, offset: 0, hasMore: false, nextCursor: null });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
  });

  it('adds a package to the balance of an existing user', async () => {
    const userId = randomUUID();
    await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 40 }).expect(201);
    const { paymentId } = await buy(userId, 'standard');
    const captured = await capture(paymentId).expect(200);
    expect(captured.body).toMatchObject({ balance: 540, payment: { status: 'COMPLETED', tokens: 500 } });
    expect(await balanceOf(userId)).toBe(540);
  });

  it("refuses to credit a provider payment's id directly to another account, before and after its capture, and GET by a direct purchase's id is 404", async () => {
    const [buyer, other] = [randomUUID(), randomUUID()];
    const { paymentId } = await buy(buyer);
    const direct = () => http().post(`/v1/accounts/${other}/purchases`).send({ paymentId, amount: 100 });
    expect((await direct().expect(409)).body).toMatchObject({ code: 'PAYMENT_ID_REUSED', paymentId });
    await capture(paymentId).expect(200);
    expect((await direct().expect(409)).body).toMatchObject({ code: 'PAYMENT_ID_REUSED', paymentId });
    expect([await balanceOf(buyer), await balanceOf(other)]).toEqual([100, 0]);
    expect(await eventTypes(other)).toEqual([]);
    // A direct purchase's id names no provider payment, though its account is now known.
    const purchased = randomUUID();
    await http().post(`/v1/accounts/${other}/purchases`).send({ paymentId: purchased, amount: 5 }).expect(201);
    expect((await http().get(`/v1/payments/${purchased}`).expect(404)).body).toMatchObject({ code: 'PAYMENT_NOT_FOUND' });
    expect((await capture(purchased).expect(404)).body).toMatchObject({ code: 'PAYMENT_NOT_FOUND' });
  });

  it('refuses an unknown package and a body that names a price', async () => {
    const unknown = await http().post('/v1/payments').send({ userId: randomUUID(), packageId: 'gold' }).expect(404);
    expect(unknown.body).toMatchObject({ code: 'PACKAGE_NOT_FOUND' });
    const priced = await http().post('/v1/payments').send({ userId: randomUUID(), packageId: 'starter', amount: 1 }).expect(400);
    expect(priced.body.errors).toEqual([expect.objectContaining({ field: 'amount', rule: 'whitelistValidation' })]);
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=101', 'limit'],
    ['limit=2.5', 'limit'],
    ['offset=-1', 'offset'],
    ['status=PAID', 'status'],
  ])("refuses the payments list's %s with a problem naming the field", async (query, field) => {
    const response = await http().get(`/v1/accounts/${randomUUID()}/payments?${query}`).expect(400);
    expect(response.body).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(new Set(response.body.errors.map((error: { field: string }) => error.field))).toEqual(new Set([field]));
  });

  it('takes user and payment ids in upper case as the same ids in canonical form', async () => {
    const userId = randomUUID();
    const created = await http().post('/v1/payments').send({ userId: userId.toUpperCase(), packageId: 'starter' }).expect(201);
    expect(created.body).toMatchObject({ userId, status: 'PENDING' });
    const paymentId = created.body.paymentId as string;
    const captured = await capture(paymentId.toUpperCase()).expect(200);
    expect(captured.body).toMatchObject({ balance: 100, payment: { paymentId, status: 'COMPLETED' } });
    expect((await http().get(`/v1/payments/${paymentId.toUpperCase()}`).expect(200)).body).toMatchObject({ paymentId, userId });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
  });

  it('credits once when 20 captures of one payment race', async () => {
    const userId = randomUUID();
    const { paymentId } = await buy(userId);
    const responses = await Promise.all(Array.from({ length: 20 }, () => capture(paymentId)));
    expect(responses.map((response) => response.status)).toEqual(Array.from({ length: 20 }, () => 200));
    expect(new Set(responses.map((response) => response.body.balance))).toEqual(new Set([100]));
    expect(await balanceOf(userId)).toBe(100);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
  });

  it('credits once when two instances capture one payment 10 times each', async () => {
    const userId = randomUUID();
    const { paymentId } = await buy(userId);
    const other = otherInstance();
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, index) => (index % 2 === 0 ? capture(paymentId).then((response) => response.body.balance as number) : other.workflow.capture(paymentId, { requestId: 'other', actor: TEST_ACTOR }).then((result) => result.balance))),
    );
    expect(new Set(outcomes)).toEqual(new Set([100]));
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
  });

  it('fails a declined payment, credits nothing, and answers the same to a retry', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    await provider.behave('decline', orderId);
    const declined = await capture(paymentId).expect(402);
    expect(declined.body).toMatchObject({ code: 'PAYMENT_DECLINED', reason: 'card_declined' });
    await capture(paymentId).expect(402);
    const stored = await http().get(`/v1/payments/${paymentId}`).expect(200);
    expect(stored.body).toMatchObject({ status: 'FAILED', metadata: { error: 'card_declined' } });
    expect(await balanceOf(userId)).toBe(0);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentFailed']);
  });
});

describe('crash safety', () => {
  it('credits exactly once when the provider fails after capturing and the client retries', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    await provider.behave('error_after_capture', orderId);
    const failed = await capture(paymentId).expect(502);
    expect(failed.body).toMatchObject({ code: 'PROVIDER_UNAVAILABLE' });
    expect((await provider.getOrder({ orderId })).status).toBe('captured');
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
    const retried = await capture(paymentId).expect(200);
    expect(retried.body).toMatchObject({ balance: 100, payment: { status: 'COMPLETED' } });
    await capture(paymentId).expect(200);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
  });

  it('lets the reconciliation job complete, not expire, a payment the provider captured before the process died', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    await provider.behave('error_after_capture', orderId);
    await capture(paymentId).expect(502);
    const run = await theJob().runOnce(hoursFromNow(2));
    expect(run).toMatchObject({ failed: 0 });
    expect(await eventually(() => balanceOf(userId), (balance) => balance === 100)).toBe(100);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
    await capture(paymentId).expect(200);
  });

  it('records both the capture and the refund of a payment the provider captured and then refunded before the ledger heard of either', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    await provider.behave('error_after_capture', orderId);
    await capture(paymentId).expect(502);
    await provider.refund({ orderId }, 'operator-refund');
    const run = await theJob().runOnce(hoursFromNow(2));
    expect(run).toMatchObject({ failed: 0 });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased', 'PaymentRefunded', 'TokensRefunded']);
    const stored = await eventually(() => http().get(`/v1/payments/${paymentId}`).then((response) => response.body as { status: string }), (body) => body.status === 'REFUNDED');
    expect(stored).toMatchObject({ status: 'REFUNDED', metadata: { tokensDebited: 100 } });
    expect(await balanceOf(userId)).toBe(0);
  });

  it('answers 502 to a provider timeout without recording anything, and a retry captures once', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    await provider.behave('timeout', orderId);
    await capture(paymentId).expect(502);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
    await provider.behave('approve', orderId);
    await capture(paymentId).expect(200);
    expect(await balanceOf(userId)).toBe(100);
  });
});

describe('a provider that hangs', () => {
  it('is given up on after the call timeout, and the account is not held meanwhile', async () => {
    const userId = randomUUID();
    const { paymentId } = await buy(userId);
    const hanging: PaymentProvider = {
      name: provider.name,
      createOrder: (request) => provider.createOrder(request),
      clientSecretOf: () => provider.clientSecretOf(),
      capture: () => new Promise(() => undefined),
      getOrder: (order) => provider.getOrder(order),
      cancel: (order) => provider.cancel(order),
      refund: (order, key) => provider.refund(order, key),
      findRefund: (order) => provider.findRefund(order),
    };
    const commands = new CommandHandling(testApp.app.get<EventStore>(EVENT_STORE, { strict: false }), { cacheEntriesMax: 10, snapshotIntervalEvents: 500 });
    const consistency = testApp.app.get(ReadModelConsistency, { strict: false });
    const workflow = new PaymentWorkflow(commands, consistency, hanging, new PaymentStreams(testApp.database.pool), {
      packages: DEFAULT_TOKEN_PACKAGES,
      pendingTtlMs: HOUR_MS,
      pendingPaymentsMax: 10,
      now: () => new Date(),
      providerTimeoutMs: 200,
    });
    await expect(workflow.capture(paymentId, { requestId: 'hanging', actor: TEST_ACTOR })).rejects.toMatchObject({ name: 'PaymentProviderError', kind: 'timeout' });
    // The stream's lock is free: a command on the account runs at once.
    const next = await commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: () => [], metadata: {} });
    expect(next.events).toEqual([]);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
  });
});

describe('expiry', () => {
  it('refuses a capture after the payment expired and marks it FAILED with Payment timed out', async () => {
    const userId = randomUUID();
    const { paymentId } = await buy(userId);
    await theJob().runOnce(hoursFromNow(2));
    const refused = await capture(paymentId).expect(409);
    expect(refused.body).toMatchObject({ code: 'PAYMENT_EXPIRED', paymentId });
    const stored = await eventually(() => http().get(`/v1/payments/${paymentId}`).expect(200), (response) => response.body.status !== 'PENDING');
    expect(stored.body).toMatchObject({ status: 'FAILED', metadata: { error: 'Payment timed out' } });
    expect(await balanceOf(userId)).toBe(0);
  });

  it('leaves payments before their expiry alone', async () => {
    const userId = randomUUID();
    const { paymentId } = await buy(userId);
    await theJob().runOnce(new Date(Date.now() + HOUR_MS / 2));
    expect((await http().get(`/v1/payments/${paymentId}`).expect(200)).body.status).toBe('PENDING');
  });

  // Leadership runs the scheduled job in one process at a time; this is the case it does not cover
  // (two leaders for a moment, a manual run alongside): the expected revisions still expire each once.
  it('expires each payment once when two job instances run at once', async () => {
    const users = Array.from({ length: 6 }, () => randomUUID());
    for (const userId of users) await buy(userId);
    const later = hoursFromNow(3);
    await Promise.all([theJob().runOnce(later), otherInstance(() => later).job.runOnce(later)]);
    for (const userId of users) expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentExpired']);
  });

  it('ends a payment one way when two expiry runs race ten captures of it: credited and captured at the provider, or expired and cancelled there, never apart', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    const later = hoursFromNow(3);
    const [captures] = await Promise.all([
      Promise.all(Array.from({ length: 10 }, () => capture(paymentId))),
      theJob().runOnce(later),
      otherInstance(() => later).job.runOnce(later),
    ]);
    const types = await eventTypes(userId);
    const order = await provider.getOrder({ orderId });
    const stored = await eventually(() => http().get(`/v1/payments/${paymentId}`).expect(200), (response) => response.body.status !== 'PENDING');
    if (types.includes('PaymentCaptured')) {
      expect(types).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
      expect([order.status, stored.body.status, await balanceOf(userId)]).toEqual(['captured', 'COMPLETED', 100]);
      expect(captures.map((answer) => [answer.status, answer.body.payment?.status])).toEqual(Array.from({ length: 10 }, () => [200, 'COMPLETED']));
    } else {
      // Expired by a run; or, at the boundary (the captures' clock is still before the expiry the runs'
      // is past), failed by a capture that reached the provider after a run had cancelled the order there.
      expect(types).toEqual(['PaymentInitiated', expect.stringMatching(/^Payment(Expired|Failed)$/)]);
      expect([order.status, stored.body.status, await balanceOf(userId)]).toEqual(['canceled', 'FAILED', 0]);
      const refusals = captures.map((answer) => `${answer.status} ${answer.body.code as string}`);
      expect(refusals.filter((refusal) => refusal !== '409 PAYMENT_EXPIRED' && refusal !== '402 PAYMENT_DECLINED')).toEqual([]);
    }
  });

  // The keyset compares timestamps, so its pages must be sorted by them too. Sorted by their text in a
  // zone with daylight saving time, 02:15+01 (after the clocks went back) came before 02:30+02, and
  // the page after it skipped the payment due at 02:30+02.
  it('pages through due payments in time order when the session time zone has daylight saving time', async () => {
    const users = [randomUUID(), randomUUID(), randomUUID()];
    const paymentIds: string[] = [];
    for (const userId of users) paymentIds.push((await buy(userId)).paymentId);
    // Around the end of summer time in Berlin (25 October 2026, 03:00 CEST back to 02:00 CET), in time order.
    const expiries = ['2026-10-25T00:30:00Z', '2026-10-25T01:15:00Z', '2026-10-25T01:45:00Z'];
    for (const [index, paymentId] of paymentIds.entries()) await testApp.database.pool.query('UPDATE payments SET expires_at = $2 WHERE id = $1', [paymentId, expiries[index]]);
    const berlin = new pg.Pool({ connectionString: testApp.database.url, options: '-c TimeZone=Europe/Berlin', max: 1 });
    try {
      const job = new PaymentExpiryJob(berlin, testApp.app.get(PaymentWorkflow, { strict: false }), undefined, 1);
      await job.runOnce(hoursFromNow(2));
    } finally {
      await berlin.end();
    }
    for (const userId of users) expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentExpired']);
  });
});

describe('refunds', () => {
  async function capturedPayment(): Promise<{ userId: string; paymentId: string; orderId: string }> {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    await capture(paymentId).expect(200);
    return { userId, paymentId, orderId };
  }

  it('refunds at the provider and takes the tokens back with a negative refund transaction, once', async () => {
    const { userId, paymentId, orderId } = await capturedPayment();
    const refunded = await refund(paymentId).expect(200);
    expect(refunded.body).toMatchObject({ balance: 0, payment: { status: 'REFUNDED', metadata: { providerRefundId: `MOCK-REFUND-${paymentId}`, tokensDebited: 100 } } });
    expect((await provider.getOrder({ orderId })).status).toBe('refunded');
    const again = await refund(paymentId).expect(200);
    expect(again.body.payment).toEqual(refunded.body.payment);
    const history = await http().get(`/v1/accounts/${userId}/transactions`).expect(200);
    expect(history.body.data[0]).toMatchObject({ amount: -100, transactionType: 'refund', paymentId, balanceAfter: 0 });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased', 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded']);
    expect(await provider.keysOf(orderId)).toEqual({ capture: `capture-${paymentId}`, refund: `refund-${paymentId}` });
  });

  it('refuses a refund when another instance spent the tokens since this one cached the account, and refunds nothing at the provider', async () => {
    // The service instance caches the account while it buys and captures; another instance spends.
    const { userId, paymentId, orderId } = await capturedPayment();
    const elsewhere = new CommandHandling(testApp.app.get<EventStore>(EVENT_STORE, { strict: false }), { cacheEntriesMax: 10, snapshotIntervalEvents: 500 });
    const spend = { type: 'UseTokens', data: { userId, amount: 100, description: null, transactionId: randomUUID(), now: new Date() } } as const;
    await elsewhere.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(spend, state), metadata: {} });
    const refundsBefore = provider.calls.refund;
    const refused = await refund(paymentId).expect(409);
    expect(refused.body).toMatchObject({ code: 'REFUND_EXCEEDS_BALANCE', balance: 0, requested: 100 });
    expect(provider.calls.refund).toBe(refundsBefore);
    expect((await provider.getOrder({ orderId })).status).toBe('captured');
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased', 'TokensUsed']);
  });

  it('records a refund an operator made at the provider even after tokens were spent, taking back what is left', async () => {
    const { userId, paymentId, orderId } = await capturedPayment();
    // An operator refunded at the provider; the ledger has not heard of it.
    await provider.refund({ orderId }, 'operator-refund');
    await http().post(`/v1/accounts/${userId}/usage`).send({ amount: 30 }).expect(201);
    const recorded = await refund(paymentId).expect(200);
    expect(recorded.body).toMatchObject({ balance: 0, payment: { status: 'REFUNDED', metadata: { providerRefundId: `MOCK-REFUND-${paymentId}`, tokensDebited: 70 } } });
    expect(await balanceOf(userId)).toBe(0);
  });

  it("records a refund an operator made at the provider after part of the purchase's lot was spent, though other credit covers the balance", async () => {
    const { userId, paymentId, orderId } = await capturedPayment();
    // A later purchase keeps the balance above the refund; the usage draws the older lot, the payment's.
    await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 500 }).expect(201);
    await http().post(`/v1/accounts/${userId}/usage`).send({ amount: 30 }).expect(201);
    const refused = await refund(paymentId).expect(409);
    expect(refused.body).toMatchObject({ code: 'REFUND_EXCEEDS_LOT', requested: 100, remaining: 70 });
    await provider.refund({ orderId }, 'operator-refund');
    const recorded = await refund(paymentId).expect(200);
    expect(recorded.body).toMatchObject({ balance: 500, payment: { status: 'REFUNDED', metadata: { providerRefundId: `MOCK-REFUND-${paymentId}`, tokensDebited: 70 } } });
    expect(await balanceOf(userId)).toBe(500);
  });

  it('takes the part a hold held when an operator refunded at the provider once the hold gives it back, while usages race the release', async () => {
    const { userId, paymentId, orderId } = await capturedPayment();
    const hold = await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 40 }).expect(201);
    const refused = await refund(paymentId).expect(409);
    expect(refused.body).toMatchObject({ code: 'REFUND_EXCEEDS_LOT', requested: 100, remaining: 60 });
    await provider.refund({ orderId }, 'operator-refund');
    const recorded = await refund(paymentId).expect(200);
    expect(recorded.body).toMatchObject({ balance: 40, payment: { status: 'REFUNDED', metadata: { tokensDebited: 60 } } });
    // The hold's 40 stay with it; when it is released they go with the refund, and no usage gets one.
    const [released, ...usages] = await Promise.all([
      http().post(`/v1/accounts/${userId}/holds/${hold.body.holdId as string}/release`).send({}),
      ...Array.from({ length: 8 }, () => http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1 })),
    ]);
    expect(released.status).toBe(200);
    expect(released.body).toMatchObject({ balance: 0, held: 0, available: 0 });
    expect(usages.map((usage) => usage.status)).toEqual(Array.from({ length: 8 }, () => 409));
    expect(await balanceOf(userId)).toBe(0);
    expect((await http().get(`/v1/payments/${paymentId}`).expect(200)).body).toMatchObject({ status: 'REFUNDED', metadata: { tokensDebited: 100 } });
    expect(await eventTypes(userId)).toEqual([
      'PaymentInitiated', 'PaymentCaptured', 'TokensPurchased', 'TokensHeld', 'PaymentRefunded', 'TokensRefunded', 'HoldReleased', 'TokensRefunded',
    ]);
  });

  it('refuses a refund the balance cannot cover and refunds nothing at the provider', async () => {
    const { userId, paymentId, orderId } = await capturedPayment();
    await http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1 }).expect(201);
    const refundsBefore = provider.calls.refund;
    const refused = await refund(paymentId).expect(409);
    expect(refused.body).toMatchObject({ code: 'REFUND_EXCEEDS_BALANCE', balance: 99, requested: 100 });
    expect(provider.calls.refund).toBe(refundsBefore);
    expect((await provider.getOrder({ orderId })).status).toBe('captured');
    expect(await balanceOf(userId)).toBe(99);
  });

  it('keeps the exact balance when a refund races 20 usages of 10 on one account', async () => {
    const { userId, paymentId } = await capturedPayment();
    const [refunded, ...usages] = await Promise.all([refund(paymentId), ...Array.from({ length: 20 }, () => http().post(`/v1/accounts/${userId}/usage`).send({ amount: 10 }))]);
    const spent = usages.filter((response) => response.status === 201).length;
    expect(usages.every((response) => response.status === 201 || response.body.code === 'INSUFFICIENT_BALANCE')).toBe(true);
    if (refunded?.status === 200) {
      expect(spent).toBe(0);
      expect(await balanceOf(userId)).toBe(0);
    } else {
      expect(refunded?.body.code).toBe('REFUND_EXCEEDS_BALANCE');
      expect(spent).toBe(10);
      expect(await balanceOf(userId)).toBe(0);
    }
  });

  it('refunds once when 20 refunds of one payment race', async () => {
    const { userId, paymentId } = await capturedPayment();
    const responses = await Promise.all(Array.from({ length: 20 }, () => refund(paymentId)));
    expect(responses.map((response) => response.status)).toEqual(Array.from({ length: 20 }, () => 200));
    expect(await balanceOf(userId)).toBe(0);
    expect((await eventTypes(userId)).filter((type) => type === 'TokensRefunded')).toHaveLength(1);
  });

  it('refuses a refund whose body names an amount, a partial refund being no part of the API, and refunds nothing', async () => {
    const { userId, paymentId, orderId } = await capturedPayment();
    const refundsBefore = provider.calls.refund;
    const refused = await http().post(`/v1/payments/${paymentId}/refund`).send({ amount: 50 }).expect(400);
    expect(refused.body).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(refused.body.errors.map((error: { field: string }) => error.field)).toEqual(['amount']);
    expect(provider.calls.refund).toBe(refundsBefore);
    expect((await provider.getOrder({ orderId })).status).toBe('captured');
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
    // An empty object is a whole refund, as no body is.
    expect((await http().post(`/v1/payments/${paymentId}/refund`).send({}).expect(200)).body.payment.status).toBe('REFUNDED');
  });

  it('refuses to refund a payment never captured', async () => {
    const { paymentId } = await buy(randomUUID());
    expect((await refund(paymentId).expect(409)).body.code).toBe('PAYMENT_NOT_CAPTURED');
  });
});

describe('mock provider webhook', () => {
  const hook = (body: string, signature?: string) => {
    const request = http().post('/v1/payments/webhooks/mock').set('content-type', 'application/json');
    return (signature === undefined ? request : request.set('x-mock-signature', signature)).send(body);
  };
  const nowSeconds = () => Math.floor(Date.now() / 1000);
  const notification = (type: string, orderId: string, paymentId: string) => JSON.stringify({ id: `evt_${randomUUID()}`, type, orderId, paymentId });

  async function capturedAtProviderOnly(): Promise<{ userId: string; paymentId: string; orderId: string; body: string }> {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    await provider.capture({ orderId }, `capture-${paymentId}`); // the provider captured; our process never heard of it
    return { userId, paymentId, orderId, body: notification('order.captured', orderId, paymentId) };
  }

  it('refuses a missing or bad signature with 401 WEBHOOK_SIGNATURE_INVALID, as the Stripe route does, saying which, and changes nothing', async () => {
    const { userId, paymentId, body } = await capturedAtProviderOnly();
    const refusal = (detail: RegExp) => ({ status: 401, code: 'WEBHOOK_SIGNATURE_INVALID', type: 'urn:token-ledger:problem:webhook-signature-invalid', detail: expect.stringMatching(detail) as unknown });
    expect((await hook(body).expect(401)).body).toMatchObject(refusal(/^the x-mock-signature header is missing/));
    expect((await hook(body, signWebhook('another secret entirely', body)).expect(401)).body).toMatchObject(refusal(/^x-mock-signature does not verify/));
    expect((await hook(body, signWebhook(DEVELOPMENT_WEBHOOK_SECRET, `${body} `)).expect(401)).body).toMatchObject(refusal(/^x-mock-signature does not verify/));
    expect((await hook(body, 'sha256=00').expect(401)).body).toMatchObject(refusal(/^x-mock-signature is malformed: expected t=<unix seconds>,v1=<hex HMAC-SHA256>/));
    expect((await hook(body, `t=${nowSeconds()}`).expect(401)).body).toMatchObject(refusal(/^x-mock-signature is malformed/));
    const key = randomUUID();
    await http().post('/v1/payments/webhooks/mock').set('content-type', 'application/json').set('Idempotency-Key', key).send(body).expect(401);
    expect((await testApp.database.pool.query('SELECT 1 FROM idempotency_keys WHERE key = $1', [key])).rowCount).toBe(0);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
    expect((await http().get(`/v1/payments/${paymentId}`).expect(200)).body.status).toBe('PENDING');
  });

  it('refuses the body-only signature of before: the timestamp is part of what is signed', async () => {
    const { userId, body } = await capturedAtProviderOnly();
    const bodyOnly = `sha256=${createHmac('sha256', DEVELOPMENT_WEBHOOK_SECRET).update(body).digest('hex')}`;
    await hook(body, bodyOnly).expect(401);
    // A valid v1 moved to another timestamp is not valid either.
    const signed = signWebhook(DEVELOPMENT_WEBHOOK_SECRET, body, nowSeconds() - 10);
    await hook(body, signed.replace(/^t=\d+/, `t=${nowSeconds()}`)).expect(401);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
  });

  it.each([
    ['stale', -301],
    ['from the future', 301],
  ])('refuses a correctly signed delivery whose timestamp is %s beyond the 5-minute tolerance, and changes nothing', async (_, offsetSeconds) => {
    const { userId, body } = await capturedAtProviderOnly();
    const refused = await hook(body, signWebhook(DEVELOPMENT_WEBHOOK_SECRET, body, nowSeconds() + offsetSeconds)).expect(401);
    expect(refused.body).toMatchObject({ code: 'WEBHOOK_SIGNATURE_INVALID', detail: expect.stringMatching(/^the x-mock-signature timestamp is outside the tolerance of 300 s/) });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
    // Within the tolerance the same notification is accepted.
    await hook(body, signWebhook(DEVELOPMENT_WEBHOOK_SECRET, body, nowSeconds() + Math.sign(offsetSeconds) * 290)).expect(200);
    expect(await balanceOf(userId)).toBe(100);
  });

  it('accepts a delivery signed with the old and the new secret during a rotation', async () => {
    const { userId, body } = await capturedAtProviderOnly();
    await hook(body, signWebhook(['the retired secret', DEVELOPMENT_WEBHOOK_SECRET], body)).expect(200, { received: true, duplicate: false });
    expect(await balanceOf(userId)).toBe(100);
  });

  it('records a signed capture notification, and a replay changes nothing', async () => {
    const { userId, body } = await capturedAtProviderOnly();
    const signature = signWebhook(DEVELOPMENT_WEBHOOK_SECRET, body);
    await hook(body, signature).expect(200, { received: true, duplicate: false });
    await hook(body, signature).expect(200, { received: true, duplicate: true });
    expect(await balanceOf(userId)).toBe(100);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
  });

  it('answers a replay of a processed delivery 2xx without effect, while a new notification is processed', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    const first = notification('order.captured', orderId, paymentId);
    const signature = signWebhook(DEVELOPMENT_WEBHOOK_SECRET, first);
    // Delivered while the order is not captured yet: processing it changes nothing.
    await hook(first, signature).expect(200, { received: true, duplicate: false });
    await provider.capture({ orderId }, `capture-${paymentId}`);
    // The same signed delivery again (a replay, or the provider's retry): answered, not processed.
    await hook(first, signature).expect(200, { received: true, duplicate: true });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
    const next = notification('order.captured', orderId, paymentId);
    await hook(next, signWebhook(DEVELOPMENT_WEBHOOK_SECRET, next)).expect(200, { received: true, duplicate: false });
    expect(await balanceOf(userId)).toBe(100);
  });

  it('records a refund an operator made at the provider when notified of it', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    await capture(paymentId).expect(200);
    await provider.refund({ orderId }, 'operator-refund');
    const body = notification('order.refunded', orderId, paymentId);
    await hook(body, signWebhook(DEVELOPMENT_WEBHOOK_SECRET, body)).expect(200, { received: true, duplicate: false });
    expect(await balanceOf(userId)).toBe(0);
    expect((await http().get(`/v1/payments/${paymentId}`).expect(200)).body).toMatchObject({ status: 'REFUNDED', metadata: { providerRefundId: `MOCK-REFUND-${paymentId}`, tokensDebited: 100 } });
  });

  it('credits once when one delivery 10 times, 10 other deliveries and 10 capture calls of one payment race', async () => {
    const { userId, paymentId, orderId, body } = await capturedAtProviderOnly();
    const signature = signWebhook(DEVELOPMENT_WEBHOOK_SECRET, body);
    const others = Array.from({ length: 10 }, () => notification('order.captured', orderId, paymentId));
    const [replays, deliveries, captures] = await Promise.all([
      Promise.all(Array.from({ length: 10 }, () => hook(body, signature))),
      Promise.all(others.map((other) => hook(other, signWebhook(DEVELOPMENT_WEBHOOK_SECRET, other)))),
      Promise.all(Array.from({ length: 10 }, () => capture(paymentId))),
    ]);
    // Each delivery is processed or found processed; whichever came first credited, the rest found it done.
    expect([...replays, ...deliveries].map((answer) => answer.status)).toEqual(Array.from({ length: 20 }, () => 200));
    expect(replays.filter((answer) => answer.body.duplicate === false).length).toBeGreaterThanOrEqual(1);
    expect(deliveries.map((answer) => answer.body)).toEqual(Array.from({ length: 10 }, () => ({ received: true, duplicate: false })));
    expect(captures.map((answer) => [answer.status, answer.body.payment?.status])).toEqual(Array.from({ length: 10 }, () => [200, 'COMPLETED']));
    expect(await balanceOf(userId)).toBe(100);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
    const recorded = await testApp.database.pool.query<{ count: string }>("SELECT count(*)::text AS count FROM payment_webhook_deliveries WHERE provider = 'mock' AND payment_id = $1", [paymentId]);
    expect(recorded.rows).toEqual([{ count: '11' }]);
  });

  it('takes a delivery to an endpoint configured with a query string: the provider shapes its own request', async () => {
    const { userId, body } = await capturedAtProviderOnly();
    await http().post('/v1/payments/webhooks/mock?env=prod').set('content-type', 'application/json').set('x-mock-signature', signWebhook(DEVELOPMENT_WEBHOOK_SECRET, body)).send(body).expect(200, { received: true, duplicate: false });
    expect(await balanceOf(userId)).toBe(100);
  });

  it('refuses a notification without an event id', async () => {
    const { body } = await capturedAtProviderOnly();
    const withoutId = JSON.stringify({ ...(JSON.parse(body) as object), id: undefined });
    const refused = await hook(withoutId, signWebhook(DEVELOPMENT_WEBHOOK_SECRET, withoutId)).expect(400);
    expect(refused.body.errors).toEqual([expect.objectContaining({ field: 'id' })]);
  });
});

describe('Idempotency-Key', () => {
  async function funded(amount: number): Promise<string> {
    const userId = randomUUID();
    await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount }).expect(201);
    return userId;
  }
  const useWithKey = (userId: string, key: string, body: object) => http().post(`/v1/accounts/${userId}/usage`).set('Idempotency-Key', key).send(body);

  it('replays the first usage response (status and body) without spending again', async () => {
    const userId = await funded(100);
    const key = randomUUID();
    const first = await useWithKey(userId, key, { amount: 30, description: 'Chat' }).expect(201);
    const again = await useWithKey(userId, key, { description: 'Chat', amount: 30 }).expect(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual(first.body);
    expect(await balanceOf(userId)).toBe(70);
  });

  it('replays a refusal too, even once the balance would allow the request', async () => {
    const userId = await funded(10);
    const key = randomUUID();
    await useWithKey(userId, key, { amount: 20 }).expect(409);
    await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 50 }).expect(201);
    const again = await useWithKey(userId, key, { amount: 20 }).expect(409);
    expect(again.body).toMatchObject({ code: 'INSUFFICIENT_BALANCE', balance: 10 });
    expect(await balanceOf(userId)).toBe(60);
  });

  it('answers 422 to the same key with a different body and spends nothing', async () => {
    const userId = await funded(100);
    const key = randomUUID();
    await useWithKey(userId, key, { amount: 30 }).expect(201);
    const mismatch = await useWithKey(userId, key, { amount: 31 }).expect(422);
    expect(mismatch.body).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
    expect(await balanceOf(userId)).toBe(70);
  });

  it('forgets a key whose request failed validation, so the corrected request can use it', async () => {
    const userId = await funded(100);
    const key = randomUUID();
    const invalid = await useWithKey(userId, key, { amount: 0 }).expect(400);
    expect(invalid.body).toMatchObject({ code: 'VALIDATION_FAILED' });
    const stored = await testApp.database.pool.query('SELECT 1 FROM idempotency_keys WHERE key = $1', [key]);
    expect(stored.rowCount).toBe(0);
    await useWithKey(userId, key, { amount: 30 }).expect(201);
    expect(await balanceOf(userId)).toBe(70);
  });

  it('spends once when 10 requests with one key race, and all get the same response', async () => {
    const userId = await funded(100);
    const key = randomUUID();
    const responses = await Promise.all(Array.from({ length: 10 }, () => useWithKey(userId, key, { amount: 7 })));
    expect(responses.map((response) => response.status)).toEqual(Array.from({ length: 10 }, () => 201));
    expect(new Set(responses.map((response) => response.body.transaction.id)).size).toBe(1);
    expect(await balanceOf(userId)).toBe(93);
    expect(await eventTypes(userId)).toEqual(['TokensPurchased', 'TokensUsed']);
  });

  it('makes POST /v1/payments and purchases idempotent, and rejects a malformed key', async () => {
    const userId = randomUUID();
    const key = randomUUID();
    const first = await http().post('/v1/payments').set('Idempotency-Key', key).send({ userId, packageId: 'starter' }).expect(201);
    const again = await http().post('/v1/payments').set('Idempotency-Key', key).send({ userId, packageId: 'starter' }).expect(201);
    expect(again.body.paymentId).toBe(first.body.paymentId);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
    const purchaseKey = randomUUID();
    const body = { paymentId: randomUUID(), amount: 5 };
    await http().post(`/v1/accounts/${userId}/purchases`).set('Idempotency-Key', purchaseKey).send(body).expect(201);
    await http().post(`/v1/accounts/${userId}/purchases`).set('Idempotency-Key', purchaseKey).send({ ...body, amount: 6 }).expect(422);
    const bad = await http().post(`/v1/accounts/${userId}/usage`).set('Idempotency-Key', 'x'.repeat(256)).send({ amount: 1 }).expect(400);
    expect(bad.body.code).toBe('IDEMPOTENCY_KEY_INVALID');
  });

  it('keeps keys at least 24 hours and purges only expired ones', async () => {
    const userId = await funded(10);
    const key = randomUUID();
    const live = randomUUID();
    await useWithKey(userId, key, { amount: 1 }).expect(201);
    await useWithKey(userId, live, { amount: 1 }).expect(201);
    const row = await testApp.database.pool.query<{ hours: number }>(`SELECT extract(epoch FROM expires_at - created_at) / 3600 AS hours FROM idempotency_keys WHERE key = $1`, [key]);
    expect(Number(row.rows[0]?.hours)).toBeGreaterThanOrEqual(24);
    await testApp.database.pool.query(`UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = $1`, [key]);
    const { IdempotencyStore } = await import('../apps/api/src/http/idempotency/idempotency.store.js');
    const purged = await testApp.app.get(IdempotencyStore).purge();
    expect(purged).toBeGreaterThanOrEqual(1);
    const left = await testApp.database.pool.query<{ key: string }>('SELECT key FROM idempotency_keys WHERE key = ANY($1::text[])', [[key, live]]);
    // The expired key is gone; the live one stays, and still answers its retry with the first response.
    expect(left.rows).toEqual([{ key: live }]);
    expect((await useWithKey(userId, live, { amount: 1 }).expect(201)).body).toMatchObject({ balance: 8 });
    expect(await balanceOf(userId)).toBe(8);
  });
});
