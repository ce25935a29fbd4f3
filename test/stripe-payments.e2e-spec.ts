import { randomUUID } from 'node:crypto';
import { crashingWorkflow, SimulatedCrash } from './support/crashing-payments.js';
import type { CommandContext } from '@app/event-sourcing';
import { PaymentExpiryJob, PaymentReconciliationJob, PaymentWorkflow, stripeClient, StripeRefundList, type PaymentFaultPoint, type ReconciliationProblem } from '@app/payments';
import { FakeStripeServer, type FakeStripeEvent } from './support/fake-stripe/fake-stripe-server.js';
import { startTestApp, startTestAppOn, TEST_ACTOR, type TestApp } from './support/test-app.js';
import { DEVELOPMENT_WEBHOOK_SECRET } from '../apps/api/src/config/app.config.js';
import { signWebhook, WEBHOOK_SIGNATURE_HEADER } from '../apps/api/src/payments/webhook-signature.guard.js';
import { ServiceMetrics } from '../apps/api/src/metrics/service-metrics.js';

/**
 * Buying tokens with PAYMENT_PROVIDER=stripe, through the API, against the fake Stripe server (real
 * HTTP, the real SDK; Stripe's documented shapes, not Stripe). `testApp` captures on the client's
 * call only; `autoApp`, a second instance on the same database, also captures when the
 * `payment_intent.amount_capturable_updated` webhook arrives (STRIPE_AUTO_CAPTURE).
 */
let fake: FakeStripeServer;
let testApp: TestApp;
let autoApp: TestApp;

const HOUR_MS = 3_600_000;

beforeAll(async () => {
  fake = new FakeStripeServer();
  await fake.start();
  const stripe = {
    PAYMENT_JOBS_ENABLED: 'false',
    PAYMENT_PROVIDER: 'stripe',
    STRIPE_SECRET_KEY: fake.secretKey,
    STRIPE_WEBHOOK_SECRET: fake.webhookSecret,
    STRIPE_API_URL: fake.url,
    STRIPE_TIMEOUT_MS: '300',
    STRIPE_MAX_NETWORK_RETRIES: '2',
  };
  testApp = await startTestApp({ ...stripe, STRIPE_AUTO_CAPTURE: 'false' });
  autoApp = await startTestAppOn(testApp.database, { ...stripe, STRIPE_AUTO_CAPTURE: 'true' });
});

afterAll(async () => {
  await autoApp.close();
  await testApp.close();
  await fake.stop();
});

const http = () => testApp.http();
const context = (): CommandContext => ({ requestId: randomUUID(), actor: TEST_ACTOR });

async function buy(userId: string, packageId = 'starter') {
  const response = await http().post('/v1/payments').send({ userId, packageId }).expect(201);
  return response.body as { paymentId: string; orderId: string; status: string; clientSecret: string | null };
}

const capture = (paymentId: string, app = testApp) => app.http().post(`/v1/payments/${paymentId}/capture`).send();

/** A payment bought, approved by the buyer at the fake, and captured through the API. */
async function purchased(userId: string) {
  const bought = await buy(userId);
  fake.confirmAsCustomer(bought.orderId);
  await capture(bought.paymentId).expect(200);
  return bought;
}
const balanceOf = async (userId: string) => (await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body.balance as number;
const paymentOf = async (paymentId: string) => (await http().get(`/v1/payments/${paymentId}`).expect(200)).body as { status: string; providerTransactionId: string | null; metadata: Record<string, unknown> };

/** Delivers a Stripe event to `app`'s webhook route, signed as Stripe signs (the SDK's test header). */
const balanceBodyOf = async (userId: string) => (await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body as Record<string, unknown>;
const refundsOf = (orderId: string) => [...fake.refunds.values()].filter((each) => each.payment_intent === orderId);
const count = (types: readonly string[], type: string) => types.filter((each) => each === type).length;

function deliver(event: FakeStripeEvent | object, app = testApp, signature?: string) {
  const signed = fake.signed(event);
  return app.anonymous().post('/v1/payments/webhooks/stripe').set('content-type', 'application/json; charset=utf-8').set('stripe-signature', signature ?? signed.signature).send(signed.body);
}

/** The latest event of `type` about this PaymentIntent (or its charge). */
function eventOf(type: string, orderId: string): FakeStripeEvent {
  const intent = fake.paymentIntents.get(orderId);
  const found = fake.eventsOf(type).filter((event) => {
    const object = event.data.object as { id?: string; payment_intent?: string };
    return object.id === orderId || object.payment_intent === orderId || (intent?.latest_charge !== null && object.id === intent?.latest_charge);
  });
  const last = found.at(-1);
  if (last === undefined) throw new Error(`no ${type} event for ${orderId}`);
  return last;
}

async function eventTypes(userId: string): Promise<string[]> {
  const result = await testApp.database.pool.query<{ event_type: string }>('SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_revision', [`token-account-${userId}`]);
  return result.rows.map((row) => row.event_type);
}

const PURCHASED = ['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased'];

/** Polls until `read` returns what `accept` wants (a webhook answered 2xx has committed; the read models follow). */
async function eventually<T>(read: () => Promise<T>, accept: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const value = await read();
    if (accept(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('buying tokens with Stripe', () => {
  it('opens a PaymentIntent for the package, waits for the buyer, then captures and credits once', async () => {
    const userId = randomUUID();
    const created = await buy(userId);
    const intent = fake.paymentIntents.get(created.orderId);
    expect(intent).toMatchObject({ amount: 500, currency: 'usd', capture_method: 'manual', metadata: { paymentId: created.paymentId, userId } });
    expect(created).toMatchObject({ status: 'PENDING', clientSecret: intent?.client_secret });
    expect((await capture(created.paymentId).expect(409)).body).toMatchObject({ code: 'PAYMENT_NOT_AUTHORIZED' });
    expect(await paymentOf(created.paymentId)).toMatchObject({ status: 'PENDING' });
    expect(fake.confirmAsCustomer(created.orderId).status).toBe(200); // Stripe.js with the client_secret
    const captured = await capture(created.paymentId).expect(200);
    expect(captured.body).toMatchObject({ balance: 100, payment: { status: 'COMPLETED', provider: 'stripe', providerTransactionId: fake.paymentIntents.get(created.orderId)?.latest_charge } });
    expect((await capture(created.paymentId).expect(200)).body.balance).toBe(100);
    // Stripe's notifications of what just happened change nothing more; a repeat is a duplicate.
    const succeeded = eventOf('payment_intent.succeeded', created.orderId);
    expect((await deliver(succeeded).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    expect((await deliver(succeeded).expect(200)).body).toEqual({ received: true, duplicate: true, ignored: false });
    expect(await balanceOf(userId)).toBe(100);
    expect(await eventTypes(userId)).toEqual(PURCHASED);
  });

  it('does not keep a capture refused before the buyer authorised under its Idempotency-Key: the same key captures once the buyer has', async () => {
    const userId = randomUUID();
    const created = await buy(userId);
    const key = randomUUID();
    const keyedCapture = () => http().post(`/v1/payments/${created.paymentId}/capture`).set('Idempotency-Key', key).send();
    const early = await keyedCapture().expect(409);
    expect(early.body).toMatchObject({ code: 'PAYMENT_NOT_AUTHORIZED' });
    expect(early.headers['idempotent-replayed']).toBeUndefined();
    expect(fake.confirmAsCustomer(created.orderId).status).toBe(200);
    const captured = await keyedCapture().expect(200);
    expect(captured.headers['idempotent-replayed']).toBeUndefined();
    expect(captured.body).toMatchObject({ balance: 100, payment: { status: 'COMPLETED' } });
    // From here the key keeps its answer: a repeat is the capture's, replayed.
    const repeated = await keyedCapture().expect(200);
    expect(repeated.headers['idempotent-replayed']).toBe('true');
    expect(await eventTypes(userId)).toEqual(PURCHASED);
  });

  it('answers a keyed replay of POST /v1/payments with the same PaymentIntent, read (not created again) after Stripe forgot the create key', async () => {
    const userId = randomUUID();
    const key = randomUUID();
    const first = (await http().post('/v1/payments').set('Idempotency-Key', key).send({ userId, packageId: 'starter' }).expect(201)).body as { paymentId: string; orderId: string; clientSecret: string };
    // A day later: our key row has expired (or its answer was lost in a crash), and Stripe no longer knows `create-<paymentId>`.
    await testApp.database.pool.query('DELETE FROM idempotency_keys WHERE key = $1', [key]);
    fake.forgetIdempotencyKey(`create-${first.paymentId}`);
    const again = (await http().post('/v1/payments').set('Idempotency-Key', key).send({ userId, packageId: 'starter' }).expect(201)).body as typeof first;
    expect(again).toMatchObject({ paymentId: first.paymentId, orderId: first.orderId, clientSecret: first.clientSecret });
    expect(fake.requests.filter((request) => request.method === 'POST' && request.path === '/v1/payment_intents' && request.idempotencyKey === `create-${first.paymentId}`)).toHaveLength(1);
    expect([...fake.paymentIntents.values()].filter((intent) => intent.metadata['paymentId'] === first.paymentId)).toHaveLength(1);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
  });

  it('captures on the amount_capturable_updated webhook (auto-capture), and the client capture after it credits nothing more', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    expect((await deliver(eventOf('payment_intent.amount_capturable_updated', orderId), autoApp).expect(200)).body).toMatchObject({ duplicate: false, ignored: false });
    expect(fake.paymentIntents.get(orderId)?.status).toBe('succeeded');
    expect(await eventTypes(userId)).toEqual(PURCHASED);
    expect((await capture(paymentId).expect(200)).body.balance).toBe(100);
    expect(await eventTypes(userId)).toEqual(PURCHASED);
  });

  it('without auto-capture, the amount_capturable_updated webhook records nothing and the capture call credits', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    await deliver(eventOf('payment_intent.amount_capturable_updated', orderId)).expect(200);
    expect(fake.paymentIntents.get(orderId)?.status).toBe('requires_capture');
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'PENDING' });
    expect((await capture(paymentId).expect(200)).body.balance).toBe(100);
  });

  it('credits once whatever order the webhooks arrive in, after the capture and instead of it', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    const capturable = eventOf('payment_intent.amount_capturable_updated', orderId);
    // Captured by another of our instances (its answer lost): the notifications arrive, newest first.
    await stripeClient({ secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, autoCapture: false, apiUrl: fake.url, maxNetworkRetries: 0, timeoutMs: 1_000, webhookToleranceSeconds: 300 }).paymentIntents.capture(orderId);
    await deliver(eventOf('payment_intent.succeeded', orderId)).expect(200);
    expect(await balanceOf(userId)).toBe(100);
    await deliver(capturable, autoApp).expect(200);
    await deliver(eventOf('charge.captured', orderId)).expect(200);
    expect((await capture(paymentId).expect(200)).body.balance).toBe(100);
    expect(await eventTypes(userId)).toEqual(PURCHASED);
  });

  it('answers a declined card 402 with its decline code, credits nothing, and cancels the PaymentIntent so no later card is authorised for it', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    expect(fake.confirmAsCustomer(orderId, 'pm_card_visa_chargeDeclinedInsufficientFunds').status).toBe(402);
    // Ten captures race on two instances: each answers the decline, recorded once.
    const raced = await Promise.all(Array.from({ length: 10 }, (_, index) => capture(paymentId, index % 2 === 0 ? testApp : autoApp)));
    expect(raced.map((response) => [response.status, response.body.code])).toEqual(Array.from({ length: 10 }, () => [402, 'PAYMENT_DECLINED']));
    expect((await eventTypes(userId)).filter((type) => type === 'PaymentFailed')).toHaveLength(1);
    const declined = await capture(paymentId).expect(402);
    expect(declined.body).toMatchObject({ code: 'PAYMENT_DECLINED', reason: 'insufficient_funds' });
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'FAILED' });
    expect(await balanceOf(userId)).toBe(0);
    // The payment is FAILED ("open a new one"): Stripe no longer takes another card on its PaymentIntent.
    expect(fake.paymentIntents.get(orderId)?.status).toBe('canceled');
    expect(fake.confirmAsCustomer(orderId).status).toBe(400);
    expect((await capture(paymentId).expect(402)).body).toMatchObject({ code: 'PAYMENT_DECLINED' });
  });

  it('releases the card a buyer authorised after the decline was recorded, when the cancel had not reached Stripe: by the auto-capture webhook, and by the reconciliation job', async () => {
    for (const releasedBy of ['webhook', 'job'] as const) {
      const userId = randomUUID();
      const { paymentId, orderId } = await buy(userId);
      expect(fake.confirmAsCustomer(orderId, 'pm_card_visa_chargeDeclined').status).toBe(402);
      // Stripe refuses the cancel, every attempt of it: the decline is still recorded and answered.
      fake.inject('POST', new RegExp(`/payment_intents/${orderId}/cancel$`), { kind: 'error', status: 500, type: 'api_error', when: 'before' }, 100);
      expect((await capture(paymentId).expect(402)).body).toMatchObject({ code: 'PAYMENT_DECLINED' });
      fake.clearInjected();
      // The buyer tries another card on the same PaymentIntent: authorised, for a FAILED payment.
      expect(fake.confirmAsCustomer(orderId).status).toBe(200);
      expect(fake.paymentIntents.get(orderId)?.status).toBe('requires_capture');
      if (releasedBy === 'webhook') await deliver(eventOf('payment_intent.amount_capturable_updated', orderId), autoApp).expect(200);
      else await testApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date());
      expect([releasedBy, fake.paymentIntents.get(orderId)?.status]).toEqual([releasedBy, 'canceled']);
      expect(await paymentOf(paymentId)).toMatchObject({ status: 'FAILED' });
      expect(await balanceOf(userId)).toBe(0);
    }
  });

  it('credits once when 20 capture calls and 5 auto-capture webhooks race', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    const capturable = eventOf('payment_intent.amount_capturable_updated', orderId);
    const [captures, webhooks] = await Promise.all([
      Promise.all(Array.from({ length: 20 }, (_, index) => capture(paymentId, index % 2 === 0 ? testApp : autoApp))),
      Promise.all(Array.from({ length: 5 }, () => deliver(capturable, autoApp))),
    ]);
    expect(captures.map((response) => response.status)).toEqual(Array.from({ length: 20 }, () => 200));
    expect(webhooks.map((response) => response.status)).toEqual(Array.from({ length: 5 }, () => 200));
    expect(await balanceOf(userId)).toBe(100);
    expect(await eventTypes(userId)).toEqual(PURCHASED);
    expect(fake.eventsOf('payment_intent.succeeded', orderId)).toHaveLength(1);
  });

  it('retries a Stripe 500 during the capture and captures once', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    fake.inject('POST', new RegExp(`/payment_intents/${orderId}/capture$`), { kind: 'error', status: 500, type: 'api_error', when: 'before' });
    expect((await capture(paymentId).expect(200)).body.balance).toBe(100);
  });

  it('answers 503 PROVIDER_RATE_LIMITED with Retry-After when Stripe keeps answering 429, and the retry captures once', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    const capturePath = new RegExp(`/payment_intents/${orderId}/capture$`);
    fake.inject('POST', capturePath, { kind: 'error', status: 429, type: 'rate_limit_error', code: 'rate_limit', when: 'before' }, 3);
    const limited = await capture(paymentId).expect(503);
    expect(limited.body).toMatchObject({ code: 'PROVIDER_RATE_LIMITED', providerError: 'rate_limited' });
    expect(limited.headers['retry-after']).toBe('2');
    // The adapter tried three times (it retries 429 itself); nothing was captured or recorded.
    expect(fake.requests.filter((request) => request.method === 'POST' && capturePath.test(request.path))).toHaveLength(3);
    expect(fake.paymentIntents.get(orderId)?.status).toBe('requires_capture');
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
    expect((await capture(paymentId).expect(200)).body.balance).toBe(100);
    expect(await eventTypes(userId)).toEqual(PURCHASED);
  });

  it('answers 502 when every attempt of the capture times out, and the retry records the capture Stripe made once', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    fake.inject('POST', new RegExp(`/payment_intents/${orderId}/capture$`), { kind: 'delay', ms: 1_200 }, 3);
    const failed = await capture(paymentId).expect(502);
    expect(failed.body).toMatchObject({ code: 'PROVIDER_UNAVAILABLE', providerError: 'timeout' });
    expect(await balanceOf(userId)).toBe(0);
    await eventually(() => Promise.resolve(fake.paymentIntents.get(orderId)?.status), (status) => status === 'succeeded');
    expect((await capture(paymentId).expect(200)).body.balance).toBe(100);
    expect(await eventTypes(userId)).toEqual(PURCHASED);
  });
});

describe('a call Stripe refuses as sent', () => {
  it('answers 502 PROVIDER_REJECTED, not "retry", naming the error type, code and request but not Stripe\'s words, and writes nothing', async () => {
    const userId = randomUUID();
    for (const [status, type, code, name] of [
      [400, 'invalid_request_error', 'amount_too_small', 'StripeInvalidRequestError'],
      [401, 'authentication_error', undefined, 'StripeAuthenticationError'],
    ] as const) {
      fake.inject('POST', /\/payment_intents$/, { kind: 'error', status, type, ...(code === undefined ? {} : { code }), when: 'before' });
      const refused = await http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(502);
      expect(refused.body).toMatchObject({ code: 'PROVIDER_REJECTED', providerError: 'rejected', title: 'The payment provider refused the request; retrying it unchanged will not help' });
      expect(refused.body.detail).toMatch(new RegExp(`^Stripe: could not .+ \\(${name}${code === undefined ? '' : ` ${code}`}, request req_\\w+\\); the request will be refused the same way`));
      expect(refused.body.detail).not.toContain('injected');
    }
    expect((await http().get(`/v1/accounts/${userId}/payments`).expect(200)).body.data).toEqual([]);
  });
});

describe('Stripe webhooks', () => {
  it('refuses a bad, missing or old signature with 401 and changes nothing', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    const event = eventOf('payment_intent.amount_capturable_updated', orderId);
    const forged = fake.signed(event, { secret: 'whsec_not_the_right_secret' }).signature;
    expect((await deliver(event, autoApp, forged).expect(401)).body).toMatchObject({ code: 'WEBHOOK_SIGNATURE_INVALID' });
    const old = fake.signed(event, { timestamp: Math.floor(Date.now() / 1000) - 301 }).signature;
    expect((await deliver(event, autoApp, old).expect(401)).body).toMatchObject({ code: 'WEBHOOK_SIGNATURE_INVALID' });
    expect((await autoApp.anonymous().post('/v1/payments/webhooks/stripe').set('content-type', 'application/json').send(JSON.stringify(event)).expect(401)).body).toMatchObject({ code: 'WEBHOOK_SIGNATURE_INVALID' });
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'PENDING' });
    expect(fake.paymentIntents.get(orderId)?.status).toBe('requires_capture');
  });

  it("closes the mock provider's webhook route: even signed with the development secret, 404 PROVIDER_NOT_CONFIGURED and nothing happens", async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    const body = JSON.stringify({ id: `evt_mock_${paymentId}`, type: 'order.captured', paymentId });
    const refused = await testApp
      .anonymous()
      .post('/v1/payments/webhooks/mock')
      .set('content-type', 'application/json')
      .set(WEBHOOK_SIGNATURE_HEADER, signWebhook(DEVELOPMENT_WEBHOOK_SECRET, body))
      .send(body)
      .expect(404);
    expect(refused.body).toMatchObject({ code: 'PROVIDER_NOT_CONFIGURED' });
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'PENDING' });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
  });

  it('answers 2xx to a late amount_capturable_updated for a PaymentIntent no longer authorised, and captures nothing', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    const intent = fake.paymentIntents.get(orderId);
    const late = { ...eventOf('payment_intent.created', orderId), id: `evt_late_${paymentId}`, type: 'payment_intent.amount_capturable_updated', data: { object: { ...intent, status: 'requires_capture' } } };
    expect((await deliver(late, autoApp).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'PENDING' });
    expect(fake.paymentIntents.get(orderId)?.status).toBe('requires_payment_method');
  });

  it('answers 200 with the refusal when the ledger refuses an auto-capture, captures nothing, and the client captures once the refusal no longer holds', async () => {
    const userId = randomUUID();
    // 50 tokens below the largest balance: the starter package's 100 would take it over.
    await http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: Number.MAX_SAFE_INTEGER - 50, reason: 'Near the largest balance' }).expect(201);
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    const authorised = eventOf('payment_intent.amount_capturable_updated', orderId);
    // A 4xx or 5xx would have Stripe deliver it again for days (and flag the endpoint); the refusal is an answer.
    const refused = await deliver(authorised, autoApp).expect(200);
    expect(refused.body).toEqual({ received: true, duplicate: false, ignored: false, refused: { code: 'BALANCE_OUT_OF_RANGE', message: expect.stringContaining('above') } });
    expect(fake.paymentIntents.get(orderId)?.status).toBe('requires_capture');
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'PENDING', providerTransactionId: null });
    expect(await balanceOf(userId)).toBe(Number.MAX_SAFE_INTEGER - 50);
    expect(await eventTypes(userId)).toEqual(['TokensAdjusted', 'PaymentInitiated']);
    expect((await deliver(authorised, autoApp).expect(200)).body).toEqual({ received: true, duplicate: true, ignored: false });
    // Once the account has room, the client's capture takes the money and credits the package once.
    await http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: -100, reason: 'Room for the purchase' }).expect(201);
    expect((await capture(paymentId).expect(200)).body).toMatchObject({ balance: Number.MAX_SAFE_INTEGER - 50, payment: { status: 'COMPLETED' } });
    expect(fake.paymentIntents.get(orderId)?.status).toBe('succeeded');
    expect(await eventTypes(userId)).toEqual(['TokensAdjusted', 'PaymentInitiated', 'TokensAdjusted', ...PURCHASED.slice(1)]);
  });

  it('does not answer refused when the money moved before the refusal (a capture that died before its append): the refusal is a failure Stripe retries', async () => {
    const userId = randomUUID();
    await http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: Number.MAX_SAFE_INTEGER - 50, reason: 'Near the largest balance' }).expect(201);
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    // What a process that died right after Stripe's capture leaves: captured there, nothing recorded here.
    const client = stripeClient({ secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, autoCapture: false, apiUrl: fake.url, maxNetworkRetries: 0, timeoutMs: 1_000, webhookToleranceSeconds: 300 });
    await client.paymentIntents.capture(orderId);
    const authorised = eventOf('payment_intent.amount_capturable_updated', orderId);
    const answer = await deliver(authorised, autoApp);
    expect(answer.status).toBe(422);
    expect(answer.body).toMatchObject({ code: 'BALANCE_OUT_OF_RANGE' });
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'PENDING' });
    // Stripe's next delivery, once the account has room, credits the money it took, once.
    await http().post(`/v1/admin/accounts/${userId}/adjustments`).send({ amount: -100, reason: 'Room for the purchase' }).expect(201);
    expect((await deliver(authorised, autoApp).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'COMPLETED' });
    expect(await balanceOf(userId)).toBe(Number.MAX_SAFE_INTEGER - 50);
  });

  it('answers 2xx to events that are not about a payment of ours, and to event types it does not use', async () => {
    const client = stripeClient({ secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, autoCapture: false, apiUrl: fake.url, maxNetworkRetries: 0, timeoutMs: 1_000, webhookToleranceSeconds: 300 });
    const foreign = await client.paymentIntents.create({ amount: 999, currency: 'usd', capture_method: 'manual', metadata: { order: 'from another app' } });
    fake.confirmAsCustomer(foreign.id);
    expect((await deliver(eventOf('payment_intent.amount_capturable_updated', foreign.id), autoApp).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: true });
    expect(fake.paymentIntents.get(foreign.id)?.status).toBe('requires_capture');
    const unknownPayment = { ...eventOf('payment_intent.created', foreign.id), id: 'evt_unknown_payment', data: { object: { ...foreign, metadata: { paymentId: randomUUID() } } }, type: 'payment_intent.succeeded' };
    expect((await deliver(unknownPayment).expect(200)).body).toMatchObject({ ignored: true });
    expect((await deliver({ ...unknownPayment, id: 'evt_customer', type: 'customer.created', data: { object: { object: 'customer', id: 'cus_1' } } }).expect(200)).body).toMatchObject({ ignored: true });
  });
});

describe('Stripe refunds', () => {
  it('ends the request of a refund Stripe refuses as asked (a charge too old to refund): 409 REFUND_FAILED, the tokens spendable, the reason kept; a refusal of our key leaves it pending', async () => {
    const userId = randomUUID();
    const { paymentId } = await purchased(userId);
    fake.inject('POST', /\/refunds$/, { kind: 'error', status: 400, type: 'invalid_request_error', code: 'charge_expired_for_refund', when: 'before' });
    const refused = await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409);
    expect(refused.body).toMatchObject({ code: 'REFUND_FAILED', paymentStatus: 'COMPLETED' });
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'COMPLETED', metadata: { refundError: 'refused: charge_expired_for_refund' } });
    expect(await balanceOf(userId)).toBe(100);
    // Asked again, it is refunded (Stripe refuses no more here).
    expect((await http().post(`/v1/payments/${paymentId}/refund`).send().expect(200)).body).toMatchObject({ payment: { status: 'REFUNDED' }, balance: 0 });
    // Our credentials refused: Stripe will answer once they are fixed, so the request stays pending, its tokens reserved.
    const other = await purchased(userId);
    fake.inject('POST', /\/refunds$/, { kind: 'error', status: 401, type: 'authentication_error', when: 'before' });
    expect((await http().post(`/v1/payments/${other.paymentId}/refund`).send().expect(502)).body).toMatchObject({ code: 'PROVIDER_REJECTED' });
    expect(await paymentOf(other.paymentId)).toMatchObject({ status: 'REFUND_PENDING' });
    expect((await http().post(`/v1/payments/${other.paymentId}/refund`).send().expect(200)).body).toMatchObject({ payment: { status: 'REFUNDED' }, balance: 0 });
  });

  it('asked again after Stripe refused a refund as asked, reserves the tokens before asking Stripe: spent since, the refund is refused and no money goes back', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    fake.inject('POST', /\/refunds$/, { kind: 'error', status: 400, type: 'invalid_request_error', code: 'charge_expired_for_refund', when: 'before' });
    expect((await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409)).body).toMatchObject({ code: 'REFUND_FAILED', paymentStatus: 'COMPLETED' });
    // The refused refund left no Refund at Stripe; the tokens were the account's again, and are spent.
    await http().post(`/v1/accounts/${userId}/usage`).send({ amount: 100 }).expect(201);
    const refusal = await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409);
    expect(refusal.body.code).toMatch(/^REFUND_EXCEEDS_(BALANCE|LOT)$/);
    expect([...fake.refunds.values()].filter((refund) => refund.payment_intent === orderId)).toEqual([]);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'COMPLETED' });
    expect(await balanceOf(userId)).toBe(0);
    // A refund an operator made at Stripe since is still recorded (the money went back): read, not made, before the reservation.
    const client = stripeClient({ secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, autoCapture: false, apiUrl: fake.url, maxNetworkRetries: 0, timeoutMs: 1_000, webhookToleranceSeconds: 300 });
    await client.refunds.create({ payment_intent: orderId });
    expect((await http().post(`/v1/payments/${paymentId}/refund`).send().expect(200)).body).toMatchObject({ payment: { status: 'REFUNDED' }, balance: 0 });
    expect([...fake.refunds.values()].filter((refund) => refund.payment_intent === orderId)).toHaveLength(1);
  });

  it('ends every request when 10 refunds on two instances race and Stripe refuses the refund as asked: every answer 409 REFUND_FAILED, the tokens spendable', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    fake.inject('POST', /\/refunds$/, { kind: 'error', status: 400, type: 'invalid_request_error', code: 'charge_expired_for_refund', when: 'before' }, 100);
    try {
      const answers = await Promise.all(Array.from({ length: 10 }, (_, index) => (index % 2 === 0 ? testApp : autoApp).http().post(`/v1/payments/${paymentId}/refund`).send()));
      expect(answers.map((answer) => [answer.status, answer.body.code])).toEqual(Array.from({ length: 10 }, () => [409, 'REFUND_FAILED']));
    } finally {
      fake.clearInjected();
    }
    // Each request asked Stripe only once its tokens were reserved, and was ended by its refusal before
    // the next began: one to ten of them (those that came while one was pending were answered by its end).
    const types = await eventTypes(userId);
    const requests = (types.length - PURCHASED.length) / 2;
    expect(requests).toBeGreaterThanOrEqual(1);
    expect(requests).toBeLessThanOrEqual(10);
    expect(types).toEqual([...PURCHASED, ...Array.from({ length: requests }, () => ['PaymentRefundRequested', 'PaymentRefundFailed']).flat()]);
    expect([...fake.refunds.values()].filter((refund) => refund.payment_intent === orderId)).toEqual([]);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'COMPLETED', metadata: { refundError: 'refused: charge_expired_for_refund' } });
    expect(await balanceOf(userId)).toBe(100);
  });

  it('refunds through Stripe with the refund key after recording the intent, once, and its charge.refunded webhook changes nothing more', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    const refunded = await http().post(`/v1/payments/${paymentId}/refund`).send().expect(200);
    expect(refunded.body).toMatchObject({ balance: 0, payment: { status: 'REFUNDED' } });
    const refunds = [...fake.refunds.values()].filter((refund) => refund.payment_intent === orderId);
    expect(refunds).toHaveLength(1);
    expect(fake.requests.filter((request) => request.path === '/v1/refunds' && request.method === 'POST').at(-1)?.idempotencyKey).toBe(`refund-${paymentId}`);
    await http().post(`/v1/payments/${paymentId}/refund`).send().expect(200);
    await deliver(eventOf('charge.refunded', orderId)).expect(200);
    expect(await balanceOf(userId)).toBe(0);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded']);
    expect([...fake.refunds.values()].filter((refund) => refund.payment_intent === orderId)).toHaveLength(1);
  });

  it('records a refund made in the dashboard (charge.refunded) as the refund, with its id', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    const refund = fake.dashboardRefund(orderId);
    await deliver(eventOf('charge.refunded', orderId)).expect(200);
    expect(await balanceOf(userId)).toBe(0);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'REFUNDED', metadata: expect.objectContaining({ providerRefundId: refund.id }) });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefunded', 'TokensRefunded']);
  });

  it('keeps the tokens of a partial dashboard refund, and takes them all back when the rest is refunded', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    fake.dashboardRefund(orderId, 100);
    await deliver(eventOf('charge.refunded', orderId)).expect(200);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'COMPLETED' });
    expect(await balanceOf(userId)).toBe(100);
    const rest = fake.dashboardRefund(orderId);
    await deliver(eventOf('charge.refunded', orderId)).expect(200);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'REFUNDED', metadata: expect.objectContaining({ providerRefundId: rest.id }) });
    expect(await balanceOf(userId)).toBe(0);
  });
});

/** `token_ledger_payments_unresolved_total` of this source, over both processes. */
async function unresolvedReports(source: 'webhook' | 'reconciliation'): Promise<number> {
  let total = 0;
  for (const app of [testApp, autoApp]) {
    const { values } = await app.app.get(ServiceMetrics, { strict: false }).paymentsUnresolved.get();
    total += values.filter((value) => value.labels.source === source).reduce((sum, value) => sum + value.value, 0);
  }
  return total;
}

describe('a refund Stripe returns after it succeeded (the card was closed since)', () => {
  it('is not undone but reported: the webhooks answer it unresolved on both processes, the job names it within its look-back, and a new refund at Stripe settles it', async () => {
    const userId = randomUUID();
    const bought = await buy(userId);
    fake.confirmAsCustomer(bought.orderId);
    await capture(bought.paymentId).expect(200);
    await http().post(`/v1/payments/${bought.paymentId}/refund`).send().expect(200);
    const refund = [...fake.refunds.values()].find((each) => each.payment_intent === bought.orderId);
    if (refund === undefined) throw new Error('no refund made');
    fake.returnRefund(refund.id);
    const webhookReportsBefore = await unresolvedReports('webhook');
    const unresolved = `payment ${bought.paymentId} is REFUNDED but the provider no longer reads it refunded whole: a refund of it (the ledger recorded ${refund.id}) failed after it succeeded, so the customer did not get all the money back while the tokens were taken; an operator checks its refunds at the provider, then refunds the rest another way or credits tokens back`;
    // Stripe's two events, each delivered to both processes at once: answered, nothing appended.
    const answers = await Promise.all([
      deliver(eventOf('refund.updated', bought.orderId)),
      deliver(eventOf('refund.updated', bought.orderId), autoApp),
      deliver(eventOf('refund.failed', bought.orderId)),
      deliver(eventOf('refund.failed', bought.orderId), autoApp),
    ]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
    // Of each event, one delivery did the work and the other found it processed, or both did it (neither recorded yet).
    for (const answer of answers) expect(answer.body).toEqual(answer.body.duplicate === true ? { received: true, duplicate: true, ignored: false } : { received: true, duplicate: false, ignored: false, unresolved });
    const taken = answers.filter((answer) => answer.body.duplicate === false).length;
    expect(taken).toBeGreaterThanOrEqual(2);
    // Each answer that did the work counted one report for the operators' alert.
    expect((await unresolvedReports('webhook')) - webhookReportsBefore).toBe(taken);
    expect(await paymentOf(bought.paymentId)).toMatchObject({ status: 'REFUNDED', metadata: expect.objectContaining({ providerRefundId: refund.id }) });
    expect(await balanceOf(userId)).toBe(0);
    const refundedEvents = [...PURCHASED, 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded'];
    expect(await eventTypes(userId)).toEqual(refundedEvents);
    // The reconciliation job reports it each run while the refund is within the look-back, and not after.
    const problems = new Map<string, unknown>();
    const job = new PaymentReconciliationJob(testApp.database.pool, crashingWorkflow(testApp), { lookbackMs: HOUR_MS }, (paymentId, problem) => problems.set(paymentId, problem.kind === 'unresolved' ? problem.why : problem.error));
    await job.runOnce(new Date());
    expect(problems.get(bought.paymentId)).toBe(unresolved);
    // The service's own job counts each unresolved payment of its run.
    const jobReportsBefore = await unresolvedReports('reconciliation');
    const run = await testApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date());
    expect(run.unresolved).toBeGreaterThanOrEqual(1);
    expect((await unresolvedReports('reconciliation')) - jobReportsBefore).toBe(run.unresolved);
    problems.clear();
    await job.runOnce(new Date(Date.now() + 2 * HOUR_MS));
    expect(problems.has(bought.paymentId)).toBe(false);
    expect(await eventTypes(userId)).toEqual(refundedEvents);
    // The operator refunds the customer again at Stripe (another card on file, say): Stripe reads it refunded, nothing is left to report.
    fake.dashboardRefund(bought.orderId);
    expect((await deliver(eventOf('charge.refunded', bought.orderId)).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    await job.runOnce(new Date());
    expect(problems.has(bought.paymentId)).toBe(false);
    expect(await eventTypes(userId)).toEqual(refundedEvents);
    expect(await balanceOf(userId)).toBe(0);
  });
});

describe('a refund Stripe has not decided beside ours', () => {
  it("reports nothing while an operator's partial refund is pending beside our refund of the rest, and reports the part that failed once it does", async () => {
    const userId = randomUUID();
    const bought = await buy(userId);
    fake.confirmAsCustomer(bought.orderId);
    await capture(bought.paymentId).expect(200);
    const operators = await fake.whileRefundsPending(() => fake.dashboardRefund(bought.orderId, 100));
    await deliver(eventOf('charge.refunded', bought.orderId)).expect(200);
    const refunded = await http().post(`/v1/payments/${bought.paymentId}/refund`).send().expect(200);
    expect(refunded.body).toMatchObject({ balance: 0, payment: { status: 'REFUNDED' } });
    // Stripe reads the PaymentIntent captured while the operator's refund is pending: not a refund that failed.
    const reconciled = await crashingWorkflow(testApp).reconcileById(bought.paymentId, context());
    expect({ appended: reconciled.appended, unresolved: reconciled.unresolved, orderStatus: reconciled.orderStatus }).toEqual({ appended: 0, unresolved: undefined, orderStatus: 'captured' });
    expect((await deliver(eventOf('charge.refunded', bought.orderId)).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    // The bank refuses the operator's part: that part of the money is the merchant's again, and is reported.
    fake.settleRefund(operators.id, 'failed');
    const answer = await deliver(eventOf('refund.updated', bought.orderId)).expect(200);
    expect(answer.body.unresolved).toMatch(new RegExp(`^payment ${bought.paymentId} is REFUNDED but the provider no longer reads it refunded whole`));
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded']);
  });
});

describe('a PaymentIntent an operator captured in part at Stripe', () => {
  it('credits nothing and expires nothing: the capture is refused naming the amounts, its webhook and the reconciliation job leave it to an operator', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    fake.dashboardCapture(orderId, 100);
    const captured = await capture(paymentId);
    expect(captured.status).toBe(409);
    expect(captured.body).toMatchObject({ code: 'PAYMENT_CAPTURED_IN_PART', amountReceived: 100, amount: 500, detail: expect.stringContaining(`Stripe captured 100 of 500 usd of PaymentIntent ${orderId}`) });
    await deliver(eventOf('payment_intent.succeeded', orderId)).expect(200);
    // The auto-capture's answer says why nothing was credited, so Stripe does not deliver it again.
    expect((await deliver(eventOf('payment_intent.amount_capturable_updated', orderId), autoApp).expect(200)).body).toEqual({
      received: true,
      duplicate: false,
      ignored: false,
      refused: { code: 'PAYMENT_CAPTURED_IN_PART', message: expect.stringContaining(`Stripe captured 100 of 500 usd of PaymentIntent ${orderId}`) as unknown },
    });
    // Past the payment's expiry too: Stripe has the money (part of it), so the payment is not expired either.
    const reconciled = await testApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date(Date.now() + 2 * 3_600_000));
    expect(reconciled.unresolved).toBeGreaterThanOrEqual(1);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'PENDING' });
    expect(await balanceOf(userId)).toBe(0);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
    // The operator refunds the part captured: nothing was kept, so the payment fails, still with no tokens.
    fake.dashboardRefund(orderId);
    await deliver(eventOf('charge.refunded', orderId)).expect(200);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'FAILED' });
    expect(await balanceOf(userId)).toBe(0);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentFailed']);
  });
});

describe('a PaymentIntent changed at Stripe to another price than the payment\'s', () => {
  /** Someone with our secret key, calling Stripe's API (`POST /v1/payment_intents/{id}`) outside the ledger. */
  const keyHolder = () => stripeClient({ secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, autoCapture: false, apiUrl: fake.url, maxNetworkRetries: 0, timeoutMs: 1_000, webhookToleranceSeconds: 300 });

  it('is never captured: 10 captures racing on two instances and the auto-capture webhook answer the decline (price_mismatch), recorded once, and the authorisation is cancelled', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    // Whoever holds our API key lowers it; the buyer authorises what it now says.
    await keyHolder().paymentIntents.update(orderId, { amount: 50 });
    expect(fake.confirmAsCustomer(orderId).status).toBe(200);
    const [raced, webhook] = await Promise.all([
      Promise.all(Array.from({ length: 10 }, (_, index) => capture(paymentId, index % 2 === 0 ? testApp : autoApp))),
      deliver(eventOf('payment_intent.amount_capturable_updated', orderId), autoApp),
    ]);
    expect(raced.map((response) => [response.status, response.body.code, response.body.reason])).toEqual(Array.from({ length: 10 }, () => [402, 'PAYMENT_DECLINED', 'price_mismatch']));
    expect(webhook.status).toBe(200);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentFailed']);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'FAILED' });
    expect(await balanceOf(userId)).toBe(0);
    expect(fake.requests.filter((request) => request.path === `/v1/payment_intents/${orderId}/capture`)).toHaveLength(0);
    expect(fake.paymentIntents.get(orderId)).toMatchObject({ status: 'canceled', amount_received: 0 });
  });

  it('credits nothing when it was captured elsewhere for more: the capture is refused naming the price, and the reconciliation job leaves it to an operator', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    await keyHolder().paymentIntents.update(orderId, { amount: 900 });
    fake.confirmAsCustomer(orderId);
    fake.dashboardCapture(orderId, 900);
    const captured = await capture(paymentId).expect(409);
    expect(captured.body).toMatchObject({ code: 'PAYMENT_CAPTURED_IN_PART', amountReceived: 900, amount: 900, price: 500, currency: 'usd' });
    const why = `payment ${paymentId} is PENDING but the provider took money that is not its price (500 USD): part of its order, or an order changed to another amount or currency`;
    expect((await deliver(eventOf('payment_intent.succeeded', orderId)).expect(200)).body).toMatchObject({ unresolved: why });
    // Past the payment's expiry too: Stripe has money for it, so it is neither credited nor expired, but reported.
    const problems = new Map<string, unknown>();
    const job = new PaymentReconciliationJob(testApp.database.pool, crashingWorkflow(testApp), { lookbackMs: HOUR_MS }, (id, problem) => problems.set(id, problem.kind === 'unresolved' ? problem.why : problem.error));
    await job.runOnce(new Date(Date.now() + 2 * HOUR_MS));
    expect(problems.get(paymentId)).toBe(why);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'PENDING' });
    expect(await balanceOf(userId)).toBe(0);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
  });

  it('is not captured when the bank authorised only part of the price: the decline, recorded once, and the authorisation cancelled', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    fake.authorisePartly(orderId, 200);
    const raced = await Promise.all(Array.from({ length: 6 }, (_, index) => capture(paymentId, index % 2 === 0 ? testApp : autoApp)));
    expect(raced.map((response) => [response.status, response.body.reason])).toEqual(Array.from({ length: 6 }, () => [402, 'price_mismatch']));
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentFailed']);
    expect(await balanceOf(userId)).toBe(0);
    expect(fake.paymentIntents.get(orderId)).toMatchObject({ status: 'canceled', amount_received: 0 });
  });
});

describe('Stripe refunds the bank has not confirmed yet', () => {
  async function refundedPending(userId: string) {
    const bought = await buy(userId);
    fake.confirmAsCustomer(bought.orderId);
    await capture(bought.paymentId).expect(200);
    const answer = await fake.whileRefundsPending(() => http().post(`/v1/payments/${bought.paymentId}/refund`).send().expect(202));
    const refund = [...fake.refunds.values()].find((each) => each.payment_intent === bought.orderId);
    if (refund === undefined) throw new Error('no refund made');
    return { ...bought, answer, refund };
  }
  it('keeps a refund Stripe leaves pending REFUND_PENDING, its tokens reserved, and records it once when refund.updated says it succeeded', async () => {
    const userId = randomUUID();
    const { paymentId, orderId, answer, refund } = await refundedPending(userId);
    expect(refund.status).toBe('pending');
    expect(answer.body).toMatchObject({ balance: 100, payment: { status: 'REFUND_PENDING' } });
    expect(await balanceBodyOf(userId)).toMatchObject({ balance: 100, available: 0, reservedForRefunds: 100 });
    // Racing retries, Stripe's charge.refunded and a reconciliation run: still not the money back, nothing recorded, no second refund.
    const [retries] = await Promise.all([
      Promise.all(Array.from({ length: 8 }, () => http().post(`/v1/payments/${paymentId}/refund`).send())),
      deliver(eventOf('charge.refunded', orderId)).expect(200),
      testApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date()),
    ]);
    expect(retries.map((retry) => [retry.status, retry.body.payment?.status])).toEqual(Array.from({ length: 8 }, () => [202, 'REFUND_PENDING']));
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested']);
    fake.settleRefund(refund.id, 'succeeded');
    // The bank confirms: notifications, retries and the job race to record it; it is recorded once.
    const [notified, recorded] = await Promise.all([
      Promise.all(Array.from({ length: 3 }, () => deliver(eventOf('refund.updated', orderId)))),
      Promise.all(Array.from({ length: 8 }, () => http().post(`/v1/payments/${paymentId}/refund`).send())),
      testApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date()),
    ]);
    expect(notified.map((response) => response.status)).toEqual([200, 200, 200]);
    expect(recorded.map((retry) => [retry.status, retry.body.payment?.status])).toEqual(Array.from({ length: 8 }, () => [200, 'REFUNDED']));
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'REFUNDED', metadata: expect.objectContaining({ providerRefundId: refund.id }) });
    expect(await balanceOf(userId)).toBe(0);
    await deliver(eventOf('refund.updated', orderId)).expect(200);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded']);
    expect([...fake.refunds.values()].filter((each) => each.payment_intent === orderId)).toHaveLength(1);
  });

  it('asks again under the same Idempotency-Key while the refund is pending (202 is not kept), and replays the refund once it succeeded', async () => {
    const userId = randomUUID();
    const bought = await buy(userId);
    fake.confirmAsCustomer(bought.orderId);
    await capture(bought.paymentId).expect(200);
    const key = randomUUID();
    const keyedRefund = () => http().post(`/v1/payments/${bought.paymentId}/refund`).set('Idempotency-Key', key).send();
    const pending = await fake.whileRefundsPending(() => keyedRefund().expect(202));
    expect(pending.headers['idempotent-replayed']).toBeUndefined();
    const refund = [...fake.refunds.values()].find((each) => each.payment_intent === bought.orderId);
    if (refund === undefined) throw new Error('no refund made');
    fake.settleRefund(refund.id, 'succeeded');
    const done = await keyedRefund().expect(200);
    expect(done.headers['idempotent-replayed']).toBeUndefined();
    expect(done.body).toMatchObject({ balance: 0, payment: { status: 'REFUNDED' } });
    expect((await keyedRefund().expect(200)).headers['idempotent-replayed']).toBe('true');
    expect([...fake.refunds.values()].filter((each) => each.payment_intent === bought.orderId)).toHaveLength(1);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded']);
  });

  const use = (userId: string, amount: number) => http().post(`/v1/accounts/${userId}/usage`).send({ amount });

  it('never records a pending refund that then failed, and ends its request: COMPLETED again, the tokens spendable, refundError saying why', async () => {
    const userId = randomUUID();
    const { paymentId, orderId, refund } = await refundedPending(userId);
    fake.settleRefund(refund.id, 'failed');
    // Stripe's notification ends the request (2xx: not redelivered); the job and a second notification find nothing left to do.
    await deliver(eventOf('refund.updated', orderId)).expect(200);
    await testApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date());
    await deliver(eventOf('refund.updated', orderId)).expect(200);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefundFailed']);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'COMPLETED', metadata: { refundError: 'failed: expired_or_canceled_card' } });
    expect(await balanceBodyOf(userId)).toMatchObject({ balance: 100, available: 100 });
    // Asked again: Stripe's answer under our key is still that failed refund, asked first, so nothing is reserved or recorded, and the client is told.
    const retried = await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409);
    expect(retried.body).toMatchObject({
      code: 'REFUND_FAILED',
      providerRefundId: refund.id,
      failureReason: 'expired_or_canceled_card',
      paymentStatus: 'COMPLETED',
      detail: expect.stringContaining(`refund ${refund.id} of PaymentIntent ${orderId} is failed (expired_or_canceled_card): the money stayed with the merchant; payment ${paymentId} stays COMPLETED`),
    });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefundFailed']);
    expect((await use(userId, 100).expect(201)).body).toMatchObject({ balance: 0 });
    expect(refundsOf(orderId)).toHaveLength(1);
  });

  it('answers the refund route that meets the failure with 409 REFUND_FAILED, the request ended', async () => {
    const userId = randomUUID();
    const { paymentId, orderId, refund } = await refundedPending(userId);
    fake.settleRefund(refund.id, 'failed');
    const answer = await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409);
    expect(answer.body).toMatchObject({
      code: 'REFUND_FAILED',
      paymentStatus: 'COMPLETED',
      detail: expect.stringContaining(`the money stayed with the merchant; the refund request ended: payment ${paymentId} is COMPLETED again`),
    });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefundFailed']);
    expect(await balanceBodyOf(userId)).toMatchObject({ balance: 100, available: 100 });
    expect(refundsOf(orderId)).toHaveLength(1);
  });

  it('keeps the tokens reserved for an open dispute when the refund fails, and ends the request once the dispute is won', async () => {
    const userId = randomUUID();
    const { paymentId, orderId, refund } = await refundedPending(userId);
    const dispute = fake.openDispute(orderId);
    await deliver(eventOf('charge.dispute.created', orderId)).expect(200);
    fake.settleRefund(refund.id, 'failed');
    await deliver(eventOf('refund.updated', orderId)).expect(200);
    expect((await testApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date())).unresolved).toBeGreaterThanOrEqual(1);
    const retried = await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409);
    expect(retried.body).toMatchObject({ code: 'REFUND_FAILED', paymentStatus: 'REFUND_PENDING', detail: expect.stringContaining(`while dispute ${dispute.id} is open`) });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentDisputeOpened']);
    expect(await balanceBodyOf(userId)).toMatchObject({ balance: 100, available: 0, reservedForRefunds: 100 });
    fake.closeDispute(dispute.id, 'won');
    await deliver(eventOf('charge.dispute.closed', orderId)).expect(200);
    await testApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date());
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'PaymentRefundFailed']);
    expect(await balanceBodyOf(userId)).toMatchObject({ balance: 100, available: 100 });
  });

  it("records the operator's refund made in the dashboard after ours failed once, taking back what is left of the purchase", async () => {
    const userId = randomUUID();
    const { paymentId, orderId, refund } = await refundedPending(userId);
    fake.settleRefund(refund.id, 'failed');
    await deliver(eventOf('refund.updated', orderId)).expect(200);
    await use(userId, 30).expect(201);
    const operators = fake.dashboardRefund(orderId);
    const notified = await Promise.all([deliver(eventOf('charge.refunded', orderId)), deliver(eventOf('charge.refunded', orderId), autoApp)]);
    expect(notified.map((response) => response.status)).toEqual([200, 200]);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'REFUNDED', metadata: { providerRefundId: operators.id, tokensDebited: 70 } });
    expect(await balanceBodyOf(userId)).toMatchObject({ balance: 0, available: 0 });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefundFailed', 'TokensUsed', 'PaymentRefunded', 'TokensRefunded']);
  });

  it("asks Stripe again under the same Idempotency-Key after a failure (409 is not kept), and records the operator's refund made since", async () => {
    const userId = randomUUID();
    const { paymentId, orderId, refund } = await refundedPending(userId);
    fake.settleRefund(refund.id, 'failed');
    await deliver(eventOf('refund.updated', orderId)).expect(200);
    const key = randomUUID();
    const keyedRefund = () => http().post(`/v1/payments/${paymentId}/refund`).set('Idempotency-Key', key).send();
    expect((await keyedRefund().expect(409)).body).toMatchObject({ code: 'REFUND_FAILED', paymentStatus: 'COMPLETED' });
    const operators = fake.dashboardRefund(orderId);
    const done = await keyedRefund().expect(200);
    expect(done.headers['idempotent-replayed']).toBeUndefined();
    expect(done.body).toMatchObject({ balance: 0, payment: { status: 'REFUNDED', metadata: { providerRefundId: operators.id, tokensDebited: 100 } } });
    expect((await keyedRefund().expect(200)).headers['idempotent-replayed']).toBe('true');
    // Recorded from Stripe's answer, without a new request of ours.
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefundFailed', 'PaymentRefunded', 'TokensRefunded']);
  });

  it("asks for the refund again, reserving the tokens, when an operator's refund made after ours failed is pending, and records it once it succeeded", async () => {
    const userId = randomUUID();
    const { paymentId, orderId, refund } = await refundedPending(userId);
    fake.settleRefund(refund.id, 'failed');
    await deliver(eventOf('refund.updated', orderId)).expect(200);
    const operators = await fake.whileRefundsPending(() => fake.dashboardRefund(orderId));
    expect((await http().post(`/v1/payments/${paymentId}/refund`).send().expect(202)).body).toMatchObject({ payment: { status: 'REFUND_PENDING' } });
    expect(await balanceBodyOf(userId)).toMatchObject({ balance: 100, available: 0, reservedForRefunds: 100 });
    fake.settleRefund(operators.id, 'succeeded');
    await deliver(eventOf('refund.updated', orderId)).expect(200);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'REFUNDED', metadata: { providerRefundId: operators.id, tokensDebited: 100 } });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefundFailed', 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded']);
  });

  it("answers 202 when Stripe refused our refund as asked, still replays that refusal under our key, and an operator's whole refund is pending: the operator's refund is the one recorded", async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    // The endpoint ran and refused (a charge too old to refund): Stripe keeps that answer under our key for 24 hours.
    fake.inject('POST', /\/refunds$/, { kind: 'error', status: 400, type: 'invalid_request_error', code: 'charge_expired_for_refund', when: 'instead' });
    expect((await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409)).body).toMatchObject({ code: 'REFUND_FAILED', paymentStatus: 'COMPLETED' });
    const operators = await fake.whileRefundsPending(() => fake.dashboardRefund(orderId));
    expect((await http().post(`/v1/payments/${paymentId}/refund`).send().expect(202)).body).toMatchObject({ payment: { status: 'REFUND_PENDING' } });
    expect(await balanceBodyOf(userId)).toMatchObject({ balance: 100, available: 0, reservedForRefunds: 100 });
    // Asked again while it is pending: still 202, nothing more asked of Stripe or recorded.
    expect((await http().post(`/v1/payments/${paymentId}/refund`).send().expect(202)).body).toMatchObject({ payment: { status: 'REFUND_PENDING' } });
    fake.settleRefund(operators.id, 'succeeded');
    await deliver(eventOf('refund.updated', orderId)).expect(200);
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'REFUNDED', metadata: { providerRefundId: operators.id, tokensDebited: 100 } });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefundFailed', 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded']);
    expect([...fake.refunds.values()].filter((refund) => refund.payment_intent === orderId).map((refund) => refund.id)).toEqual([operators.id]);
  });

  it('ends each request of a failed refund once while retries, notifications, the job and spends race it, and reserves nothing after', async () => {
    const userId = randomUUID();
    const { paymentId, orderId, refund } = await refundedPending(userId);
    fake.settleRefund(refund.id, 'failed');
    // Two processes on one database: the route, the notifications and the spends alternate between them.
    const app = (index: number) => (index % 2 === 0 ? testApp : autoApp);
    const [retries, notified, , spends] = await Promise.all([
      Promise.all(Array.from({ length: 8 }, (_, index) => app(index).http().post(`/v1/payments/${paymentId}/refund`).send())),
      Promise.all(Array.from({ length: 3 }, (_, index) => deliver(eventOf('refund.updated', orderId), app(index)))),
      autoApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date()),
      Promise.all(Array.from({ length: 30 }, (_, index) => app(index).http().post(`/v1/accounts/${userId}/usage`).send({ amount: 5 }))),
    ]);
    // Every retry meets the failure (ending the request, or finding it ended: then nothing is reserved or recorded again).
    expect(retries.map((retry) => `${retry.status} ${String(retry.body.code)} ${String(retry.body.paymentStatus)}`)).toEqual(Array.from({ length: 8 }, () => '409 REFUND_FAILED COMPLETED'));
    expect(notified.map((response) => response.status)).toEqual([200, 200, 200]);
    expect(spends.every((spend) => spend.status === 201 || (spend.status === 409 && spend.body.code === 'INSUFFICIENT_BALANCE'))).toBe(true);
    const spent = 5 * spends.filter((spend) => spend.status === 201).length;
    const types = await eventTypes(userId);
    // The one request ended once; the tokens are all the account's, less what was spent.
    expect({ requests: count(types, 'PaymentRefundRequested'), failures: count(types, 'PaymentRefundFailed'), spent: count(types, 'TokensUsed') * 5, refunded: count(types, 'PaymentRefunded') }).toEqual({
      requests: 1,
      failures: 1,
      spent,
      refunded: 0,
    });
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'COMPLETED', metadata: { refundError: 'failed: expired_or_canceled_card' } });
    expect(await balanceBodyOf(userId)).toMatchObject({ balance: 100 - spent, available: 100 - spent });
    if (spent < 100) await use(userId, 100 - spent).expect(201);
    expect(await balanceOf(userId)).toBe(0);
    expect(refundsOf(orderId)).toHaveLength(1);
  });
});

describe("the reconciliation job's sweep of Stripe's refunds (a refund made in the dashboard whose webhooks never arrived)", () => {
  // No call here is about a timeout: 10 s, so that a busy CI machine does not fail the setup.
  const client = () => stripeClient({ secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, autoCapture: false, apiUrl: fake.url, maxNetworkRetries: 0, timeoutMs: 10_000, webhookToleranceSeconds: 300 });

  /** A reconciliation job as the module wires it with Stripe (the refund list, the look-back), sweeping only these payments' refunds (the fake holds every other test's too), its problems kept. */
  function sweeper(paymentIds: readonly string[], app = testApp) {
    const problems: [string, ReconciliationProblem][] = [];
    const list = new StripeRefundList(client());
    const refunds = {
      refundsSince: async (since: Date) => {
        const listed = await list.refundsSince(since);
        return { refunds: listed.refunds.filter((reported) => paymentIds.includes(reported.paymentId)), failures: [] };
      },
    };
    const job = new PaymentReconciliationJob(app.database.pool, app.app.get(PaymentWorkflow, { strict: false }), { lookbackMs: 3_600_000, refunds }, (subject, problem) => {
      if (paymentIds.includes(subject)) problems.push([subject, problem]);
    });
    return { job, problems };
  }

  it('records, once, a whole refund made at Stripe of a purchase last changed before the look-back; a refund of part of one changes nothing', async () => {
    const userId = randomUUID();
    const [whole, part] = [await purchased(userId), await purchased(userId)];
    // Last changed before the look-back: the job's comparison of changed payments does not reach them.
    await testApp.database.pool.query("UPDATE payments SET updated_at = now() - interval '30 days' WHERE id = ANY($1::uuid[])", [[whole.paymentId, part.paymentId]]);
    await client().refunds.create({ payment_intent: whole.orderId });
    await client().refunds.create({ payment_intent: part.orderId, amount: 100 });
    const { job, problems } = sweeper([whole.paymentId, part.paymentId]);
    // The refund of part of a charge is not listed: it changes nothing in the ledger, and would be compared every run for nothing.
    expect(await job.runOnce(new Date())).toMatchObject({ refunds: 1, settled: 1 });
    expect(await paymentOf(whole.paymentId)).toMatchObject({ status: 'REFUNDED' });
    expect(await paymentOf(part.paymentId)).toMatchObject({ status: 'COMPLETED' });
    expect(await balanceOf(userId)).toBe(100);
    // The next run finds the recorded one recorded: nothing compared, nothing recorded.
    expect(await job.runOnce(new Date())).toMatchObject({ refunds: 0, settled: 0 });
    const history = (await http().get(`/v1/accounts/${userId}/transactions?limit=100`).expect(200)).body.data as { transactionType: string; amount: number }[];
    expect(history.map((row) => [row.transactionType, row.amount]).reverse()).toEqual([
      ['purchase', 100],
      ['purchase', 100],
      ['refund', -100],
    ]);
    expect(problems).toEqual([]);
  });
  it('records a dashboard refund once while sweeps on two processes, its webhooks, refund calls and spends race it; nothing is refunded twice at Stripe', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    await testApp.database.pool.query("UPDATE payments SET updated_at = now() - interval '30 days' WHERE id = $1", [paymentId]);
    const operators = fake.dashboardRefund(orderId);
    const app = (index: number) => (index % 2 === 0 ? testApp : autoApp);
    const sweepers = [sweeper([paymentId]), sweeper([paymentId], autoApp), sweeper([paymentId])];
    const [swept, notified, asked, spends] = await Promise.all([
      Promise.all(sweepers.map(({ job }) => job.runOnce(new Date()))),
      Promise.all(Array.from({ length: 4 }, (_, index) => deliver(eventOf('charge.refunded', orderId), app(index)))),
      Promise.all(Array.from({ length: 4 }, (_, index) => app(index).http().post(`/v1/payments/${paymentId}/refund`).send())),
      Promise.all(Array.from({ length: 12 }, (_, index) => app(index).http().post(`/v1/accounts/${userId}/usage`).send({ amount: 5 }))),
    ]);
    // At most one sweep recorded it; the others found it recorded, or recorded by a webhook or a call.
    expect(swept.reduce((sum, run) => sum + run.settled, 0)).toBeLessThanOrEqual(1);
    expect(notified.map((response) => response.status)).toEqual([200, 200, 200, 200]);
    expect(asked.map((response) => `${response.status} ${String(response.body.payment?.status)}`)).toEqual(Array.from({ length: 4 }, () => '200 REFUNDED'));
    expect(spends.every((spend) => spend.status === 201 || (spend.status === 409 && spend.body.code === 'INSUFFICIENT_BALANCE'))).toBe(true);
    const spent = 5 * spends.filter((spend) => spend.status === 201).length;
    const types = await eventTypes(userId);
    expect({ refunded: count(types, 'PaymentRefunded'), tokensRefunded: count(types, 'TokensRefunded'), failures: count(types, 'PaymentRefundFailed'), spent: count(types, 'TokensUsed') * 5 }).toEqual({
      refunded: 1,
      tokensRefunded: 1,
      failures: 0,
      spent,
    });
    // A call that came first may have reserved the tokens before it found the operator's refund; no more than one did.
    expect(count(types, 'PaymentRefundRequested')).toBeLessThanOrEqual(1);
    // The refund took back what was left of the purchase, whatever was spent before it.
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'REFUNDED', metadata: expect.objectContaining({ providerRefundId: operators.id, tokensDebited: 100 - spent }) });
    expect(await balanceBodyOf(userId)).toMatchObject({ balance: 0, held: 0, available: 0 });
    expect(refundsOf(orderId).map((refund) => refund.id)).toEqual([operators.id]);
    expect(sweepers.flatMap(({ problems }) => problems)).toEqual([]);
  });

  it('reports a refund list it cannot read, and still sweeps the disputes', async () => {
    let disputesRead = 0;
    const problems: [string, ReconciliationProblem][] = [];
    const job = new PaymentReconciliationJob(
      testApp.database.pool,
      testApp.app.get(PaymentWorkflow, { strict: false }),
      {
        lookbackMs: 3_600_000,
        refunds: { refundsSince: () => Promise.reject(new Error('Stripe is unavailable')) },
        disputes: { disputesSince: () => Promise.resolve({ disputes: [], failures: [] }).finally(() => (disputesRead += 1)) },
      },
      (subject, problem) => {
        if (subject === 'refunds') problems.push([subject, problem]);
      },
    );
    expect(await job.runOnce(new Date())).toMatchObject({ refunds: 0 });
    expect(disputesRead).toBe(1);
    expect(problems).toEqual([['refunds', { kind: 'failed', error: new Error('Stripe is unavailable') }]]);
  });
});

describe('Stripe expiry and reconciliation', () => {
  const expiryJob = () => testApp.app.get(PaymentExpiryJob, { strict: false });
  const later = () => new Date(Date.now() + 2 * HOUR_MS);

  it('cancels the PaymentIntent of an expired payment, so the buyer can no longer pay it', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    await expiryJob().runOnce(later());
    expect(fake.paymentIntents.get(orderId)).toMatchObject({ status: 'canceled', cancellation_reason: 'abandoned' });
    expect(await eventually(() => paymentOf(paymentId), (payment) => payment.status === 'FAILED')).toMatchObject({ status: 'FAILED', metadata: { error: 'Payment timed out' } });
    expect(fake.confirmAsCustomer(orderId).status).toBe(400);
  });

  it('credits, not expires, a payment whose PaymentIntent succeeded anyway', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    // The cancel fails (Stripe unavailable): the payment stays PENDING for the next run.
    fake.inject('POST', new RegExp(`/payment_intents/${orderId}/cancel$`), { kind: 'error', status: 500, type: 'api_error', when: 'before' }, 3);
    expect(await expiryJob().runOnce(later())).toMatchObject({ failed: 1 });
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'PENDING' });
    // Meanwhile it is captured at Stripe (its answer to us lost): the next run credits it.
    await stripeClient({ secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, autoCapture: false, apiUrl: fake.url, maxNetworkRetries: 0, timeoutMs: 1_000, webhookToleranceSeconds: 300 }).paymentIntents.capture(orderId);
    await expiryJob().runOnce(later());
    expect(await eventually(() => paymentOf(paymentId), (payment) => payment.status === 'COMPLETED')).toMatchObject({ status: 'COMPLETED' });
    expect(await balanceOf(userId)).toBe(100);
    expect(await eventTypes(userId)).toEqual(PURCHASED);
  });

  it('does not expire a payment whose PaymentIntent Stripe is still processing (it cannot be canceled), and cancels it once it can be', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    fake.startProcessing(orderId);
    // Due, but Stripe refuses the cancel: expiring it now would leave an authorisation nobody cancels.
    expect(await expiryJob().runOnce(later())).toMatchObject({ failed: 0 });
    expect(fake.paymentIntents.get(orderId)).toMatchObject({ status: 'processing' });
    expect(await paymentOf(paymentId)).toMatchObject({ status: 'PENDING' });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
    // Authorised again: the next run cancels it, releasing the buyer's funds, then expires the payment.
    fake.finishProcessing(orderId);
    await expiryJob().runOnce(later());
    expect(fake.paymentIntents.get(orderId)).toMatchObject({ status: 'canceled', cancellation_reason: 'abandoned' });
    expect(await eventually(() => paymentOf(paymentId), (payment) => payment.status === 'FAILED')).toMatchObject({ status: 'FAILED', metadata: { error: 'Payment timed out' } });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentExpired']);
  });

  /** A process of the service on the same database and Stripe, dying at `crashAt`. */
  const processOf = (crashAt: PaymentFaultPoint) => crashingWorkflow(testApp, crashAt);

  it('credits exactly once a capture Stripe made just before the process died, on the next reconciliation run', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    await expect(processOf('capture:after-provider-capture').capture(paymentId, context())).rejects.toThrow(SimulatedCrash);
    expect(fake.paymentIntents.get(orderId)?.status).toBe('succeeded');
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
    const reconciliation = testApp.app.get(PaymentReconciliationJob, { strict: false });
    await reconciliation.runOnce(new Date());
    await reconciliation.runOnce(new Date());
    expect(await eventually(() => balanceOf(userId), (balance) => balance === 100)).toBe(100);
    expect(await eventTypes(userId)).toEqual(PURCHASED);
    expect(fake.eventsOf('payment_intent.succeeded', orderId)).toHaveLength(1);
  });

  /** A purchase whose refund, asked for, Stripe left pending and then failed (the bank refused it); nothing recorded of the failure yet. */
  async function refundRequestedThenFailed(userId: string): Promise<{ paymentId: string; orderId: string }> {
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    await capture(paymentId).expect(200);
    await fake.whileRefundsPending(() => http().post(`/v1/payments/${paymentId}/refund`).send().expect(202));
    const [refund] = [...fake.refunds.values()].filter((each) => each.payment_intent === orderId);
    if (refund === undefined) throw new Error('no refund made');
    fake.settleRefund(refund.id, 'failed');
    return { paymentId, orderId };
  }

  it('ends the request of a refund that failed at Stripe when the process died before recording it, on the next reconciliation run', async () => {
    const userId = randomUUID();
    const { paymentId } = await refundRequestedThenFailed(userId);
    await expect(processOf('refund:after-provider-failure').refund(paymentId, context())).rejects.toThrow(SimulatedCrash);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested']);
    await testApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date());
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefundFailed']);
    expect(await eventually(() => paymentOf(paymentId), (payment) => payment.status === 'COMPLETED')).toMatchObject({ metadata: { refundError: 'failed: expired_or_canceled_card' } });
    expect(await balanceOf(userId)).toBe(100);
  });

  it('reconcile:after-provider-failure: a reconciliation that learned of the failed refund and died before recording it is ended once by the next run', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await refundRequestedThenFailed(userId);
    // The dying process's reconciliation asks Stripe, learns the refund failed, and dies before FailRefund.
    await expect(processOf('reconcile:after-provider-failure').reconcileById(paymentId, context())).rejects.toThrow(SimulatedCrash);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested']);
    expect(await balanceOf(userId)).toBe(100);
    // Two runs of the job, one after the other: the request ends once, its tokens the account's again.
    const job = testApp.app.get(PaymentReconciliationJob, { strict: false });
    await job.runOnce(new Date());
    await job.runOnce(new Date());
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefundFailed']);
    expect(await eventually(() => paymentOf(paymentId), (payment) => payment.status === 'COMPLETED')).toMatchObject({ metadata: { refundError: 'failed: expired_or_canceled_card' } });
    expect((await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toEqual({ userId, balance: 100, held: 0, available: 100, nextExpiry: null });
    expect([...fake.refunds.values()].filter((each) => each.payment_intent === orderId)).toHaveLength(1);
  });

  it('finishes a refund whose Stripe call happened just before the process died, once', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await buy(userId);
    fake.confirmAsCustomer(orderId);
    await capture(paymentId).expect(200);
    await expect(processOf('refund:after-provider-refund').refund(paymentId, context())).rejects.toThrow(SimulatedCrash);
    await testApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date());
    expect(await eventually(() => balanceOf(userId), (balance) => balance === 0)).toBe(0);
    expect([...fake.refunds.values()].filter((refund) => refund.payment_intent === orderId)).toHaveLength(1);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded']);
  });
});
