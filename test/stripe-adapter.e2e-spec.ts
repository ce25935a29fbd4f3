import { randomUUID } from 'node:crypto';
import { PaymentProviderError, StripePaymentProvider, stripeClient, StripeWebhooks, type StripeSettings } from '@app/payments';
import { FakeStripeServer } from './support/fake-stripe/fake-stripe-server.js';

/**
 * The Stripe adapter over real HTTP, through the real `stripe` SDK, against the fake Stripe server
 * (Stripe's documented shapes, not Stripe). The contract test at the end lists what the adapter
 * sends, to be checked against Stripe's API reference.
 */
let fake: FakeStripeServer;
let settings: StripeSettings;
let provider: StripePaymentProvider;

beforeAll(async () => {
  fake = new FakeStripeServer();
  await fake.start();
  settings = { secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, autoCapture: true, apiUrl: fake.url, maxNetworkRetries: 2, timeoutMs: 400, webhookToleranceSeconds: 300 };
  provider = new StripePaymentProvider(stripeClient(settings));
});

afterAll(async () => {
  await fake.stop();
});

/** The payment's order as the ledger passes it: the PaymentIntent's id and the price it was created for (500 USD cents unless said). */
function priced(orderId: string, amount = 500) {
  return { orderId, amount, currency: 'USD' };
}

async function order(amount = 500) {
  const paymentId = randomUUID();
  const created = await provider.createOrder({ paymentId, userId: randomUUID(), amount, currency: 'USD', description: '100 tokens (starter)' });
  return { paymentId, ...created };
}

/** A captured order, then our refund of it, which Stripe leaves pending (`beforeRefund` runs first: another refund, say). */
async function pendingRefund(beforeRefund: (orderId: string) => void = () => undefined) {
  const { orderId, paymentId } = await order();
  fake.confirmAsCustomer(orderId);
  await provider.capture(priced(orderId), `capture-${paymentId}`);
  beforeRefund(orderId);
  return { orderId, key: `refund-${paymentId}`, first: await fake.whileRefundsPending(() => provider.refund(priced(orderId), `refund-${paymentId}`)) };
}

describe('Stripe adapter against the fake Stripe API', () => {
  it('creates one PaymentIntent per payment (manual capture, metadata, client_secret), however often it is asked', async () => {
    const first = await order();
    const intent = fake.paymentIntents.get(first.orderId);
    expect(intent).toMatchObject({ amount: 500, currency: 'usd', capture_method: 'manual', status: 'requires_payment_method', metadata: { paymentId: first.paymentId } });
    expect(first.clientSecret).toBe(intent?.client_secret);
    const again = await provider.createOrder({ paymentId: first.paymentId, userId: intent?.metadata['userId'] ?? '', amount: 500, currency: 'USD', description: '100 tokens (starter)' });
    expect(again).toEqual({ orderId: first.orderId, clientSecret: first.clientSecret });
    expect([...fake.paymentIntents.values()].filter((each) => each.metadata['paymentId'] === first.paymentId)).toHaveLength(1);
  });

  it('refuses to capture before the buyer authorised, captures once after, and answers a repeat with the same charge', async () => {
    const { orderId, paymentId } = await order();
    await expect(provider.capture(priced(orderId), `capture-${paymentId}`)).rejects.toMatchObject({ code: 'PAYMENT_NOT_AUTHORIZED' });
    expect(fake.confirmAsCustomer(orderId).status).toBe(200);
    const captured = await provider.capture(priced(orderId), `capture-${paymentId}`);
    expect(captured).toEqual({ status: 'captured', providerTransactionId: fake.paymentIntents.get(orderId)?.latest_charge });
    expect(await provider.capture(priced(orderId), `capture-${paymentId}`)).toEqual(captured);
    expect(fake.eventsOf('payment_intent.succeeded', orderId)).toHaveLength(1);
    expect(await provider.getOrder(priced(orderId))).toEqual({ status: 'captured', providerTransactionId: captured.status === 'captured' ? captured.providerTransactionId : '', declineReason: null, providerRefundId: null, refundPending: false, amountRefunded: 0 });
  });

  it('answers a declined card as a decline with its decline code', async () => {
    const { orderId, paymentId } = await order();
    const declined = fake.confirmAsCustomer(orderId, 'pm_card_visa_chargeDeclinedInsufficientFunds');
    expect(declined).toMatchObject({ status: 402, body: { error: { type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds' } } });
    expect(await provider.capture(priced(orderId), `capture-${paymentId}`)).toEqual({ status: 'declined', reason: 'insufficient_funds' });
    // The buyer may still try another card: the order is not over at Stripe.
    expect((await provider.getOrder(priced(orderId))).status).toBe('created');
  });

  it('does not capture a PaymentIntent changed to another amount or currency before the buyer confirmed: a decline, price_mismatch, and the cancel releases it', async () => {
    const stripe = stripeClient(settings);
    for (const change of [{ amount: 50 }, { amount: 900 }, { currency: 'eur' }]) {
      const { orderId, paymentId } = await order();
      // Whoever holds our API key changes it; the buyer then authorises what it now says.
      await stripe.paymentIntents.update(orderId, change);
      expect(fake.confirmAsCustomer(orderId).status).toBe(200);
      expect([change, await provider.capture(priced(orderId), `capture-${paymentId}`)]).toEqual([change, { status: 'declined', reason: 'price_mismatch' }]);
      expect(fake.requests.filter((request) => request.path === `/v1/payment_intents/${orderId}/capture`)).toHaveLength(0);
      // Still authorised at Stripe until the payment's failure cancels it: not money taken.
      expect((await provider.getOrder(priced(orderId))).status).toBe('created');
      expect(await provider.cancel(priced(orderId), `cancel-${paymentId}`)).toMatchObject({ status: 'canceled' });
      expect(fake.paymentIntents.get(orderId)).toMatchObject({ status: 'canceled', amount_received: 0 });
    }
  });

  it('does not capture an authorisation for less or more than the price (a partial authorisation, an incremented one), and captures the price, never more', async () => {
    const stripe = stripeClient(settings);
    const partly = await order();
    fake.confirmAsCustomer(partly.orderId);
    fake.authorisePartly(partly.orderId, 200);
    const raised = await order();
    fake.confirmAsCustomer(raised.orderId);
    await stripe.paymentIntents.incrementAuthorization(raised.orderId, { amount: 900 });
    for (const { orderId, paymentId } of [partly, raised]) {
      expect(await provider.capture(priced(orderId), `capture-${paymentId}`)).toEqual({ status: 'declined', reason: 'price_mismatch' });
      expect(fake.requests.filter((request) => request.path === `/v1/payment_intents/${orderId}/capture`)).toHaveLength(0);
      expect(fake.paymentIntents.get(orderId)).toMatchObject({ status: 'requires_capture', amount_received: 0 });
    }
    // Authorised at the price: the capture asks for exactly the price.
    const { orderId, paymentId } = await order();
    fake.confirmAsCustomer(orderId);
    expect(await provider.capture(priced(orderId), `capture-${paymentId}`)).toMatchObject({ status: 'captured' });
    expect(fake.requests.filter((request) => request.path === `/v1/payment_intents/${orderId}/capture`).map((request) => request.params)).toEqual([{ amount_to_capture: '500' }]);
    expect(fake.paymentIntents.get(orderId)).toMatchObject({ status: 'succeeded', amount_received: 500 });
  });

  it('reads money taken that is not the price as captured_in_part, and refuses its capture naming both, whether less, more or in another currency', async () => {
    const stripe = stripeClient(settings);
    for (const [change, taken, currency] of [
      [{ amount: 50 }, 50, 'usd'],
      [{ amount: 900 }, 900, 'usd'],
      [{ currency: 'eur' }, 500, 'eur'],
    ] as const) {
      const { orderId, paymentId } = await order();
      await stripe.paymentIntents.update(orderId, change);
      fake.confirmAsCustomer(orderId);
      // Captured by someone else than the ledger (the dashboard, another integration with our key).
      fake.dashboardCapture(orderId, taken);
      expect([change, await provider.getOrder(priced(orderId))]).toEqual([change, { status: 'captured_in_part', providerTransactionId: expect.stringMatching(/^ch_/), declineReason: null, providerRefundId: null, refundPending: false, amountRefunded: 0 }]);
      await expect(provider.capture(priced(orderId), `capture-${paymentId}`)).rejects.toMatchObject({
        code: 'PAYMENT_CAPTURED_IN_PART',
        message: expect.stringContaining(`Stripe captured ${taken} of ${taken} ${currency} of PaymentIntent ${orderId}, and the payment's price is 500 usd`),
        details: { amountReceived: taken, amount: taken, price: 500, currency },
      });
      // Refunded whole, nothing was kept: the refund is the order's, still not captured as priced.
      const refund = fake.dashboardRefund(orderId);
      expect(await provider.getOrder(priced(orderId))).toMatchObject({ status: 'captured_in_part', providerRefundId: refund.id });
    }
    // The price as created, taken whole: captured.
    const { orderId } = await order();
    fake.confirmAsCustomer(orderId);
    fake.dashboardCapture(orderId, 500);
    expect((await provider.getOrder(priced(orderId))).status).toBe('captured');
  });

  it('retries a Stripe 500 during the capture with the same key and captures once', async () => {
    const { orderId, paymentId } = await order();
    fake.confirmAsCustomer(orderId);
    fake.inject('POST', /\/capture$/, { kind: 'error', status: 500, type: 'api_error', when: 'before' });
    expect(await provider.capture(priced(orderId), `capture-${paymentId}`)).toMatchObject({ status: 'captured' });
    const captures = fake.requests.filter((request) => request.path === `/v1/payment_intents/${orderId}/capture`);
    expect(captures.map((request) => request.idempotencyKey)).toEqual([`capture-${paymentId}`, `capture-${paymentId}`]);
  });

  it('retries a timed-out capture whose effect happened, and reads the capture the first attempt made', async () => {
    const { orderId, paymentId } = await order();
    fake.confirmAsCustomer(orderId);
    fake.inject('POST', /\/capture$/, { kind: 'delay', ms: 700 });
    expect(await provider.capture(priced(orderId), `capture-${paymentId}`)).toMatchObject({ status: 'captured' });
    expect(fake.eventsOf('payment_intent.succeeded', orderId)).toHaveLength(1);
  });

  it('retries a 429 (rate limited) itself, then answers PROVIDER_RATE_LIMITED when Stripe keeps refusing', async () => {
    const { orderId } = await order();
    fake.inject('GET', new RegExp(`/payment_intents/${orderId}$`), { kind: 'error', status: 429, type: 'rate_limit_error', code: 'rate_limit', when: 'before' });
    expect((await provider.getOrder(priced(orderId))).status).toBe('created');
    fake.inject('GET', new RegExp(`/payment_intents/${orderId}$`), { kind: 'error', status: 429, type: 'rate_limit_error', code: 'rate_limit', when: 'before' }, 3);
    const refused = await provider.getOrder(priced(orderId)).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(PaymentProviderError);
    expect(refused).toMatchObject({ code: 'PROVIDER_RATE_LIMITED', details: { providerError: 'rate_limited' } });
  });

  it('refunds once with the key, and answers a refunded order with its refund', async () => {
    const { orderId, paymentId } = await order();
    fake.confirmAsCustomer(orderId);
    await provider.capture(priced(orderId), `capture-${paymentId}`);
    const refund = await provider.refund(priced(orderId), `refund-${paymentId}`);
    expect(await provider.refund(priced(orderId), `refund-${paymentId}`)).toEqual(refund);
    expect([...fake.refunds.values()].filter((each) => each.payment_intent === orderId)).toHaveLength(1);
    expect(await provider.getOrder(priced(orderId))).toMatchObject({ status: 'refunded', providerRefundId: refund.providerRefundId });
  });

  it('answers a dashboard refund as the refund, a partial one not, and our refund of the rest as a whole refund', async () => {
    const { orderId, paymentId } = await order();
    fake.confirmAsCustomer(orderId);
    await provider.capture(priced(orderId), `capture-${paymentId}`);
    fake.dashboardRefund(orderId, 200);
    expect((await provider.getOrder(priced(orderId))).status).toBe('captured');
    const rest = await provider.refund(priced(orderId), `refund-${paymentId}`);
    expect(fake.refunds.get(rest.providerRefundId)?.amount).toBe(300);
    expect(await provider.getOrder(priced(orderId))).toMatchObject({ status: 'refunded', providerRefundId: rest.providerRefundId });

    const other = await order();
    fake.confirmAsCustomer(other.orderId);
    await provider.capture(priced(other.orderId), `capture-${other.paymentId}`);
    const dashboard = fake.dashboardRefund(other.orderId);
    expect(await provider.refund(priced(other.orderId), `refund-${other.paymentId}`)).toEqual({ providerRefundId: dashboard.id, status: 'succeeded' });
  });

  it('answers a refund Stripe leaves pending as pending (read again on a keyed retry), the order captured until it succeeds, and a failed one as an error', async () => {
    const confirmed = await pendingRefund();
    expect(confirmed.first).toEqual({ providerRefundId: expect.stringMatching(/^re_/), status: 'pending' });
    // Stripe counts a pending refund in the charge's `refunded`; the order is not refunded until the bank confirms it.
    expect(await provider.getOrder(priced(confirmed.orderId))).toMatchObject({ status: 'captured', providerRefundId: null, refundPending: true });
    fake.settleRefund(confirmed.first.providerRefundId, 'succeeded');
    expect(await provider.refund(priced(confirmed.orderId), confirmed.key)).toEqual({ providerRefundId: confirmed.first.providerRefundId, status: 'succeeded' });
    expect(await provider.getOrder(priced(confirmed.orderId))).toMatchObject({ status: 'refunded', providerRefundId: confirmed.first.providerRefundId, refundPending: false });

    const failed = await pendingRefund();
    fake.settleRefund(failed.first.providerRefundId, 'failed');
    await expect(provider.refund(priced(failed.orderId), failed.key)).rejects.toMatchObject({ code: 'REFUND_FAILED', details: { providerRefundId: failed.first.providerRefundId } });
    expect(await provider.getOrder(priced(failed.orderId))).toMatchObject({ status: 'captured', providerRefundId: null, refundPending: false, amountRefunded: 0 });
    // Past Stripe's 24 hours, the key no longer replays: our refund is still found by the key in its metadata, and no second one is made.
    fake.forgetIdempotencyKey(failed.key);
    await expect(provider.refund(priced(failed.orderId), failed.key)).rejects.toMatchObject({ code: 'REFUND_FAILED' });
    expect([...fake.refunds.values()].filter((each) => each.payment_intent === failed.orderId)).toHaveLength(1);
  });

  it('answers the refund an operator made after ours failed, rather than our failure', async () => {
    const { orderId, key, first: ours } = await pendingRefund();
    fake.settleRefund(ours.providerRefundId, 'failed');
    await expect(provider.refund(priced(orderId), key)).rejects.toMatchObject({ code: 'REFUND_FAILED' });
    const dashboard = fake.dashboardRefund(orderId);
    expect(await provider.refund(priced(orderId), key)).toEqual({ providerRefundId: dashboard.id, status: 'succeeded' });
  });

  it("answers an operator's pending refund of the whole price without making ours, though Stripe replays its refusal of ours under our key; one of part of the price is not the payment's refund", async () => {
    const whole = await order();
    fake.confirmAsCustomer(whole.orderId);
    await provider.capture(priced(whole.orderId), `capture-${whole.paymentId}`);
    const key = `refund-${whole.paymentId}`;
    fake.inject('POST', /\/refunds$/, { kind: 'error', status: 400, type: 'invalid_request_error', code: 'charge_expired_for_refund', when: 'instead' });
    await expect(provider.refund(priced(whole.orderId), key)).rejects.toMatchObject({ code: 'REFUND_FAILED', details: { failureReason: 'charge_expired_for_refund' } });
    const operators = await fake.whileRefundsPending(() => fake.dashboardRefund(whole.orderId));
    expect(await provider.refund(priced(whole.orderId), key)).toEqual({ providerRefundId: operators.id, status: 'pending' });
    expect([...fake.refunds.values()].filter((each) => each.payment_intent === whole.orderId)).toHaveLength(1);

    const part = await order();
    fake.confirmAsCustomer(part.orderId);
    await provider.capture(priced(part.orderId), `capture-${part.paymentId}`);
    await fake.whileRefundsPending(() => fake.dashboardRefund(part.orderId, 100));
    const ours = await provider.refund(priced(part.orderId), `refund-${part.paymentId}`);
    expect(ours).toEqual({ providerRefundId: expect.stringMatching(/^re_/), status: 'succeeded' });
    expect(fake.refunds.get(ours.providerRefundId)).toMatchObject({ metadata: { idempotencyKey: `refund-${part.paymentId}` } });
  });

  it('reads a PaymentIntent captured in part as captured_in_part, with the refund once the part captured is refunded whole and no refund of it is pending', async () => {
    const { orderId } = await order();
    fake.confirmAsCustomer(orderId);
    fake.dashboardCapture(orderId, 200);
    expect(await provider.getOrder(priced(orderId))).toMatchObject({ status: 'captured_in_part', providerRefundId: null });
    fake.dashboardRefund(orderId, 150);
    expect(await provider.getOrder(priced(orderId))).toMatchObject({ status: 'captured_in_part', providerRefundId: null, amountRefunded: 150 });
    const rest = await fake.whileRefundsPending(() => fake.dashboardRefund(orderId));
    expect(rest.amount).toBe(50);
    expect(await provider.getOrder(priced(orderId))).toMatchObject({ status: 'captured_in_part', providerRefundId: null, refundPending: true });
    fake.settleRefund(rest.id, 'succeeded');
    expect(await provider.getOrder(priced(orderId))).toMatchObject({ status: 'captured_in_part', providerRefundId: rest.id, refundPending: false });
  });

  it('does not read an order as refunded while a refund of it is pending, though another of it succeeded', async () => {
    let dashboard = { id: '' };
    const { orderId, first: ours } = await pendingRefund((captured) => {
      dashboard = fake.dashboardRefund(captured, 100);
    });
    expect(dashboard.id).toMatch(/^re_/);
    expect(ours).toEqual({ providerRefundId: expect.not.stringMatching(dashboard.id), status: 'pending' });
    expect(await provider.getOrder(priced(orderId))).toMatchObject({ status: 'captured', providerRefundId: null, refundPending: true });
    fake.settleRefund(ours.providerRefundId, 'succeeded');
    expect(await provider.getOrder(priced(orderId))).toMatchObject({ status: 'refunded', providerRefundId: ours.providerRefundId });
  });

  it('cancels an uncaptured order, and answers one captured meanwhile as captured', async () => {
    const waiting = await order();
    expect(await provider.cancel(priced(waiting.orderId), `cancel-${waiting.paymentId}`)).toMatchObject({ status: 'canceled', declineReason: 'abandoned' });
    const paid = await order();
    fake.confirmAsCustomer(paid.orderId);
    await provider.capture(priced(paid.orderId), `capture-${paid.paymentId}`);
    expect(await provider.cancel(priced(paid.orderId), `cancel-${paid.paymentId}`)).toMatchObject({ status: 'captured' });
  });

  it('answers an unknown PaymentIntent as unknown', async () => {
    expect(await provider.getOrder(priced('pi_nothing'))).toEqual({ status: 'unknown', providerTransactionId: null, declineReason: null, providerRefundId: null });
  });

  it('verifies webhook signatures with the SDK over the raw body and finds our payment through the PaymentIntent', async () => {
    const webhooks = new StripeWebhooks(stripeClient(settings), settings.webhookSecret, 300);
    const { orderId, paymentId } = await order();
    fake.confirmAsCustomer(orderId);
    await provider.capture(priced(orderId), `capture-${paymentId}`);
    const [charge] = fake.eventsOf('charge.captured', orderId);
    if (charge === undefined) throw new Error('no charge.captured event');
    const { body, signature } = fake.signed(charge);
    const event = webhooks.verify(Buffer.from(body), signature);
    expect(await webhooks.notificationOf(event)).toEqual({ eventId: charge.id, type: 'charge.captured', action: 'reconcile', paymentId });
    expect(() => webhooks.verify(Buffer.from(body.replace('"livemode":false', '"livemode":true')), signature)).toThrow(expect.objectContaining({ code: 'WEBHOOK_SIGNATURE_INVALID' }));
    const old = fake.signed(charge, { timestamp: Math.floor(Date.now() / 1000) - 301 });
    expect(() => webhooks.verify(Buffer.from(old.body), old.signature)).toThrow(/timestamp outside the tolerance zone/i);
    // The SDK checks only the age: a timestamp from the future is refused here, past the tolerance and not within it.
    const early = fake.signed(charge, { timestamp: Math.floor(Date.now() / 1000) + 310 });
    expect(() => webhooks.verify(Buffer.from(early.body), early.signature)).toThrow(expect.objectContaining({ code: 'WEBHOOK_SIGNATURE_INVALID', message: expect.stringMatching(/timestamp is 3\d\d s ahead of this server's clock, past the tolerance of 300 s/) }));
    // The SDK verifies the last `t=` of the header: an earlier one in range does not hide it.
    const hidden = `t=${Math.floor(Date.now() / 1000)},${early.signature}`;
    expect(() => webhooks.verify(Buffer.from(early.body), hidden)).toThrow(expect.objectContaining({ code: 'WEBHOOK_SIGNATURE_INVALID', message: expect.stringMatching(/ahead of this server's clock/) }));
    const soon = fake.signed(charge, { timestamp: Math.floor(Date.now() / 1000) + 250 });
    expect(webhooks.verify(Buffer.from(soon.body), soon.signature).id).toBe(charge.id);
    const otherSecret = fake.signed(charge, { secret: 'whsec_another_secret_123' });
    expect(() => webhooks.verify(Buffer.from(otherSecret.body), otherSecret.signature)).toThrow(expect.objectContaining({ code: 'WEBHOOK_SIGNATURE_INVALID' }));
  });
});

describe('contract: what the adapter sends to Stripe (check against https://docs.stripe.com/api)', () => {
  it('sends form-encoded, keyed POSTs with these parameters, and GETs without keys', async () => {
    fake.requests.length = 0;
    const { orderId, paymentId } = await order(2000);
    fake.confirmAsCustomer(orderId);
    await provider.capture(priced(orderId, 2000), `capture-${paymentId}`);
    await provider.refund(priced(orderId, 2000), `refund-${paymentId}`);
    const expired = await order(500);
    await provider.cancel(priced(expired.orderId), `cancel-${expired.paymentId}`);
    const sent = fake.requests.map(({ method, path, params, idempotencyKey, contentType }) => ({
      call: `${method} ${path.replace(orderId, '{pi}').replace(expired.orderId, '{pi}').replace(/ch_\w+/, '{ch}')}`,
      params,
      idempotencyKey: idempotencyKey?.replace(paymentId, '{paymentId}').replace(expired.paymentId, '{paymentId}').replace(/^stripe-node-retry-.*/, '(SDK default)'),
      contentType,
    }));
    const userId = fake.paymentIntents.get(orderId)?.metadata['userId'];
    const form = 'application/x-www-form-urlencoded';
    expect(sent).toEqual([
      {
        call: 'POST /v1/payment_intents',
        params: { amount: '2000', currency: 'usd', capture_method: 'manual', description: '100 tokens (starter)', metadata: { paymentId, userId } },
        idempotencyKey: 'create-{paymentId}',
        contentType: form,
      },
      { call: 'GET /v1/payment_intents/{pi}', params: {}, idempotencyKey: undefined, contentType: form },
      { call: 'POST /v1/payment_intents/{pi}/capture', params: { amount_to_capture: '2000' }, idempotencyKey: 'capture-{paymentId}', contentType: form },
      // Ours made before, if any (found by its key in the metadata), before a new one.
      { call: 'GET /v1/refunds', params: { payment_intent: orderId, limit: '100' }, idempotencyKey: undefined, contentType: form },
      { call: 'POST /v1/refunds', params: { payment_intent: orderId, reason: 'requested_by_customer', metadata: { idempotencyKey: `refund-${paymentId}` } }, idempotencyKey: 'refund-{paymentId}', contentType: form },
      {
        call: 'POST /v1/payment_intents',
        params: { amount: '500', currency: 'usd', capture_method: 'manual', description: '100 tokens (starter)', metadata: { paymentId: expired.paymentId, userId: fake.paymentIntents.get(expired.orderId)?.metadata['userId'] } },
        idempotencyKey: 'create-{paymentId}',
        contentType: form,
      },
      { call: 'GET /v1/payment_intents/{pi}', params: {}, idempotencyKey: undefined, contentType: form },
      { call: 'POST /v1/payment_intents/{pi}/cancel', params: { cancellation_reason: 'abandoned' }, idempotencyKey: 'cancel-{paymentId}-requires_payment_method', contentType: form },
      { call: 'GET /v1/payment_intents/{pi}', params: {}, idempotencyKey: undefined, contentType: form },
    ]);
    expect(new Set(fake.requests.map((request) => request.stripeVersion))).toEqual(new Set([fake.events[0]?.api_version]));
  });
});
