import { randomUUID } from 'node:crypto';
import { crashingWorkflow, SimulatedCrash } from './support/crashing-payments.js';
import type { CommandContext } from '@app/event-sourcing';
import { PaymentReconciliationJob, PaymentWorkflow, stripeClient, StripeDisputeList, type PaymentFaultPoint, type PaymentWorkflow as Workflow, type ReconciliationProblem } from '@app/payments';
import { FakeStripeServer, type FakeStripeEvent } from './support/fake-stripe/fake-stripe-server.js';
import { startTestApp, startTestAppOn, TEST_ACTOR, type TestApp } from './support/test-app.js';
import { verifyAccount } from '@app/operations';
import { EVENT_STORE, type EventStore } from '@app/event-store';
import { firstAnswersBalance } from '@app/token-accounts';
import { shortfallCoverTransactionId } from '@app/ledger';
import { tokenAccountsProjection, type Projection, type TransactionView } from '@app/projections';

/**
 * Payment disputes (chargebacks) with PAYMENT_PROVIDER=stripe, against the fake Stripe server (its
 * Dispute objects and signed `charge.dispute.*` events follow Stripe's documented shapes; it is not
 * Stripe). A lost dispute takes the purchase's tokens back; what the account no longer holds is its
 * shortfall, which refuses usage and holds until a credit covers it (ADR 0024).
 */
let fake: FakeStripeServer;
let testApp: TestApp;
let secondApp: TestApp;


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
    STRIPE_AUTO_CAPTURE: 'false',
  };
  testApp = await startTestApp(stripe);
  secondApp = await startTestAppOn(testApp.database, stripe);
});

afterAll(async () => {
  await secondApp.close();
  await testApp.close();
  await fake.stop();
});

const http = () => testApp.http();
const context = (): CommandContext => ({ requestId: randomUUID(), actor: TEST_ACTOR });

/** A Stripe purchase of `packageId`, paid by the buyer and captured: its tokens credited. */
async function purchased(userId: string, packageId = 'starter') {
  const bought = (await http().post('/v1/payments').send({ userId, packageId }).expect(201)).body as { paymentId: string; orderId: string };
  expect(fake.confirmAsCustomer(bought.orderId).status).toBe(200);
  await http().post(`/v1/payments/${bought.paymentId}/capture`).send().expect(200);
  return bought;
}

function deliver(event: FakeStripeEvent | object, app = testApp) {
  const signed = fake.signed(event);
  return app.anonymous().post('/v1/payments/webhooks/stripe').set('content-type', 'application/json; charset=utf-8').set('stripe-signature', signed.signature).send(signed.body);
}

/** The event of `type` about this dispute (the last one). */
function disputeEvent(type: 'charge.dispute.created' | 'charge.dispute.closed', disputeId: string): FakeStripeEvent {
  const found = fake.eventsOf(type, disputeId).at(-1);
  if (found === undefined) throw new Error(`no ${type} event for ${disputeId}`);
  return found;
}

const use = (userId: string, amount: number, app = testApp) => app.http().post(`/v1/accounts/${userId}/usage`).send({ amount });
const balanceOf = async (userId: string) => (await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body as { balance: number; held: number; available: number; shortfall?: number };

async function eventTypes(userId: string): Promise<string[]> {
  const result = await testApp.database.pool.query<{ event_type: string }>('SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_revision', [`token-account-${userId}`]);
  return result.rows.map((row) => row.event_type);
}

/** The read models of the account: its totals, its chargeback history rows, and the dispute marks of its payments. */
async function readModels(userId: string) {
  const pool = testApp.database.pool;
  const totals = await pool.query<{ balance: string; shortfall: string; history: string }>(
    `SELECT balance::text, shortfall::text, (SELECT coalesce(sum(amount), 0)::text FROM token_transactions WHERE user_id = $1) AS history FROM user_tokens WHERE user_id = $1`,
    [userId],
  );
  const chargebacks = await pool.query<{ amount: string; payment_id: string | null }>(
    `SELECT amount::text, payment_id::text FROM token_transactions WHERE user_id = $1 AND transaction_type = 'chargeback' ORDER BY stream_revision`,
    [userId],
  );
  const payments = await pool.query<{ id: string; status: string; dispute_id: string | null; dispute_status: string | null }>('SELECT id::text, status, dispute_id, dispute_status FROM payments WHERE user_id = $1 ORDER BY created_at', [
    userId,
  ]);
  return { totals: totals.rows[0], chargebacks: chargebacks.rows.map((row) => [Number(row.amount), row.payment_id]), payments: payments.rows };
}

/** The audit API's verification of the stream and the read models, and its replayed summary. */
async function expectAudited(userId: string, shortfall: number): Promise<void> {
  const verify = await http().get(`/v1/audit/accounts/${userId}/verify`).expect(200);
  expect(verify.body).toMatchObject({ ok: true, readModels: { differences: [], replayError: null } });
  const asOf = await http().get(`/v1/audit/accounts/${userId}/balance?at=${encodeURIComponent(new Date().toISOString())}`).expect(200);
  expect(asOf.body).toMatchObject({ shortfall });
}

const PURCHASED = ['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased'];

/** The dispute's close delivered three times to each of two processes, racing eight refund retries and ten spends of 1 on both. */
async function closeRacingRefundsAndSpends(closed: FakeStripeEvent, userId: string, paymentId: string) {
  const onEither = (index: number) => (index % 2 === 0 ? testApp : secondApp);
  const [webhooks, retries, spends] = await Promise.all([
    Promise.all(Array.from({ length: 6 }, (_, index) => deliver(closed, onEither(index)))),
    Promise.all(Array.from({ length: 8 }, (_, index) => onEither(index).http().post(`/v1/payments/${paymentId}/refund`).send())),
    Promise.all(Array.from({ length: 10 }, (_, index) => use(userId, 1, onEither(index)))),
  ]);
  return { webhooks, retries, spends };
}

/** A purchase whose refund Stripe holds pending (202), then disputed for 51 of its 500 cents. */
async function refundPendingAtStripeDisputedFor51() {
  const userId = randomUUID();
  const { paymentId, orderId } = await purchased(userId);
  await fake.whileRefundsPending(() => http().post(`/v1/payments/${paymentId}/refund`).send().expect(202));
  const [refund] = [...fake.refunds.values()].filter((each) => each.payment_intent === orderId);
  if (refund === undefined) throw new Error('no refund made');
  const dispute = fake.openDispute(orderId);
  dispute.amount = 51;
  return { userId, paymentId, orderId, refund, dispute };
}


describe('Stripe disputes', () => {
  it('records an opened dispute, then takes the tokens back when it is lost', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    const dispute = fake.openDispute(orderId);
    expect((await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened']);
    expect(await balanceOf(userId)).toMatchObject({ balance: 100 });
    expect((await readModels(userId)).payments).toEqual([{ id: paymentId, status: 'COMPLETED', dispute_id: dispute.id, dispute_status: 'open' }]);
    // While the dispute is open, the money cannot also be refunded.
    expect((await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409)).body).toMatchObject({ code: 'PAYMENT_DISPUTED', disputeId: dispute.id, disputeStatus: 'open' });

    fake.closeDispute(dispute.id, 'lost');
    await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack']);
    expect(await balanceOf(userId)).toEqual({ userId, balance: 0, held: 0, available: 0, nextExpiry: null });
    expect(await readModels(userId)).toEqual({
      totals: { balance: '0', shortfall: '0', history: '0' },
      chargebacks: [[-100, paymentId]],
      payments: [{ id: paymentId, status: 'COMPLETED', dispute_id: dispute.id, dispute_status: 'lost' }],
    });
    await expectAudited(userId, 0);
  });

  it('completes a refund asked for before the dispute was known, which Stripe refused (charge_disputed), when the dispute is lost: tokens taken once, nothing left reserved, whatever races it', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    // The bank disputes the charge; its webhook has not reached us when the refund is asked for.
    const dispute = fake.openDispute(orderId);
    const refused = await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409);
    expect(refused.body).toMatchObject({ code: 'REFUND_FAILED', providerStatus: 'charge_disputed', detail: expect.stringContaining('its charge is disputed') });
    expect(await balanceOf(userId)).toMatchObject({ balance: 100, available: 0, reservedForRefunds: 100 });
    await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200);
    fake.closeDispute(dispute.id, 'lost');
    // The close delivered three times to each of two processes, racing the client's refund retries and spends.
    const closed = disputeEvent('charge.dispute.closed', dispute.id);
    const { webhooks, retries, spends } = await closeRacingRefundsAndSpends(closed, userId, paymentId);
    expect(webhooks.map((response) => response.status)).toEqual(Array.from({ length: 6 }, () => 200));
    // Each retry answers the refund completed, or Stripe's refusal while the close was not yet recorded.
    for (const retry of retries) expect(retry.status === 200 ? retry.body.payment.status : retry.body.code).toMatch(/^(REFUNDED|REFUND_FAILED)$/);
    expect(spends.map((response) => response.status)).toEqual(Array.from({ length: 10 }, () => 409));
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentRefundRequested', 'PaymentDisputeOpened', 'PaymentRefunded', 'TokensRefunded', 'PaymentDisputeClosed']);
    expect(await balanceOf(userId)).toEqual({ userId, balance: 0, held: 0, available: 0, nextExpiry: null });
    expect(await readModels(userId)).toEqual({
      totals: { balance: '0', shortfall: '0', history: '0' },
      chargebacks: [],
      payments: [{ id: paymentId, status: 'REFUNDED', dispute_id: dispute.id, dispute_status: 'lost' }],
    });
    // The client's retry answers the refunded payment; Stripe is not asked to refund again.
    const refundCalls = fake.requests.filter((request) => request.path === '/v1/refunds' && request.method === 'POST').length;
    expect((await http().post(`/v1/payments/${paymentId}/refund`).send().expect(200)).body).toMatchObject({ balance: 0, payment: { status: 'REFUNDED' } });
    expect(fake.requests.filter((request) => request.path === '/v1/refunds' && request.method === 'POST')).toHaveLength(refundCalls);
    // REFUNDED while Stripe reads the charge captured (charged back, never refunded): nothing for an operator.
    const reconciled = await crashingWorkflow(testApp).reconcileById(paymentId, context());
    expect({ appended: reconciled.appended, unresolved: reconciled.unresolved, orderStatus: reconciled.orderStatus }).toEqual({ appended: 0, unresolved: undefined, orderStatus: 'captured' });
    await expectAudited(userId, 0);
  });

  it('ends a refund Stripe refused (charge_disputed) as failed when a dispute of part of the price is lost, and takes that share: the buyer keeps the rest, whatever races it', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    const dispute = fake.openDispute(orderId);
    dispute.amount = 51;
    await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409);
    await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200);
    fake.closeDispute(dispute.id, 'lost');
    const closed = disputeEvent('charge.dispute.closed', dispute.id);
    const { webhooks, retries, spends } = await closeRacingRefundsAndSpends(closed, userId, paymentId);
    expect(webhooks.map((response) => response.status)).toEqual(Array.from({ length: 6 }, () => 200));
    // Each retry meets Stripe's refusal while the close was not yet recorded, then the lost dispute.
    for (const retry of retries) expect(retry.body.code).toMatch(/^(REFUND_FAILED|PAYMENT_DISPUTED)$/);
    // A spend is refused while the refund reserves every token, and accepted once the dispute ended it.
    expect(spends.every((response) => response.status === 201 || (response.status === 409 && response.body.code === 'INSUFFICIENT_BALANCE'))).toBe(true);
    const spent = spends.filter((response) => response.status === 201).length;
    expect(await eventTypes(userId)).toEqual([
      ...PURCHASED,
      'PaymentRefundRequested',
      'PaymentDisputeOpened',
      'PaymentRefundFailed',
      'PaymentDisputeClosed',
      'TokensChargedBack',
      ...Array.from({ length: spent }, () => 'TokensUsed'),
    ]);
    // 51 of the price's 500 cents: 11 of its 100 tokens; the refund's reservation released.
    expect(await balanceOf(userId)).toEqual({ userId, balance: 89 - spent, held: 0, available: 89 - spent, nextExpiry: null });
    expect(await readModels(userId)).toEqual({
      totals: { balance: String(89 - spent), shortfall: '0', history: String(89 - spent) },
      chargebacks: [[-11, paymentId]],
      payments: [{ id: paymentId, status: 'COMPLETED', dispute_id: dispute.id, dispute_status: 'lost' }],
    });
    const payment = await http().get(`/v1/payments/${paymentId}`).expect(200);
    expect(payment.body).toMatchObject({ status: 'COMPLETED', metadata: { refundError: `dispute lost: ${dispute.id}` } });
    // No refund was made at Stripe, and the charge reads captured: nothing for an operator.
    expect([...fake.refunds.values()].filter((refund) => refund.payment_intent === orderId)).toEqual([]);
    const reconciled = await crashingWorkflow(testApp).reconcileById(paymentId, context());
    expect({ appended: reconciled.appended, unresolved: reconciled.unresolved, orderStatus: reconciled.orderStatus }).toEqual({ appended: 0, unresolved: undefined, orderStatus: 'captured' });
    await expectAudited(userId, 0);
  });

  it('completes the refund when a dispute of part of the price is lost while Stripe holds a pending refund of the payment, which returns the rest: its success takes nothing more', async () => {
    const { userId, paymentId, refund, dispute } = await refundPendingAtStripeDisputedFor51();
    await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200);
    fake.closeDispute(dispute.id, 'lost');
    // Delivered to both processes, racing a spend: the reservation holds every token until the dispute takes them.
    const closed = disputeEvent('charge.dispute.closed', dispute.id);
    const [first, second, spend] = await Promise.all([deliver(closed, testApp), deliver(closed, secondApp), use(userId, 1)]);
    expect([first.status, second.status, spend.status]).toEqual([200, 200, 409]);
    const settled = [...PURCHASED, 'PaymentRefundRequested', 'PaymentDisputeOpened', 'PaymentRefunded', 'TokensRefunded', 'PaymentDisputeClosed'];
    expect(await eventTypes(userId)).toEqual(settled);
    expect(await balanceOf(userId)).toEqual({ userId, balance: 0, held: 0, available: 0, nextExpiry: null });
    // Recorded under Stripe's refund, which returns the rest of the money.
    expect((await http().get(`/v1/payments/${paymentId}`).expect(200)).body).toMatchObject({ status: 'REFUNDED', metadata: { providerRefundId: refund.id, tokensDebited: 100 } });
    fake.settleRefund(refund.id, 'succeeded');
    const updated = fake.eventsOf('refund.updated', refund.id).at(-1);
    if (updated === undefined) throw new Error('no refund.updated event');
    await deliver(updated).expect(200);
    expect(await eventTypes(userId)).toEqual(settled);
    expect(await readModels(userId)).toEqual({
      totals: { balance: '0', shortfall: '0', history: '0' },
      chargebacks: [],
      payments: [{ id: paymentId, status: 'REFUNDED', dispute_id: dispute.id, dispute_status: 'lost' }],
    });
    await expectAudited(userId, 0);
  });

  it('reports the refund a dispute of part of the price completed when the refund Stripe held pending then fails: the merchant kept the rest, the tokens are gone', async () => {
    const { userId, paymentId, refund, dispute } = await refundPendingAtStripeDisputedFor51();
    fake.closeDispute(dispute.id, 'lost');
    await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200);
    expect(await balanceOf(userId)).toMatchObject({ balance: 0 });
    fake.settleRefund(refund.id, 'failed');
    const reconciled = await crashingWorkflow(testApp).reconcileById(paymentId, context());
    expect({ appended: reconciled.appended, orderStatus: reconciled.orderStatus }).toEqual({ appended: 0, orderStatus: 'captured' });
    expect(reconciled.unresolved).toContain(`the ledger recorded ${refund.id}`);
  });

  it('reports a refund Stripe returned (it failed after it succeeded) though a dispute of the payment was lost since: the dispute did not complete that refund', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    await http().post(`/v1/payments/${paymentId}/refund`).send().expect(200);
    const [refund] = [...fake.refunds.values()].filter((each) => each.payment_intent === orderId);
    if (refund === undefined) throw new Error('no refund made');
    // Disputed and lost after the refund: it owes nothing more (the refund took every token).
    const dispute = fake.openDispute(orderId);
    await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200);
    fake.closeDispute(dispute.id, 'lost');
    await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200);
    expect(await balanceOf(userId)).toMatchObject({ balance: 0 });
    // The bank sends the refund back: the money is the merchant's again, the tokens are gone.
    fake.returnRefund(refund.id);
    const reconciled = await crashingWorkflow(testApp).reconcileById(paymentId, context());
    expect({ appended: reconciled.appended, orderStatus: reconciled.orderStatus }).toEqual({ appended: 0, orderStatus: 'captured' });
    expect(reconciled.unresolved).toContain('failed after it succeeded');
  });

  it('takes back the share of the tokens a dispute of part of the price is about, rounded up', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    const dispute = fake.openDispute(orderId);
    // Stripe: the disputed amount "can differ ... because only part of the order is disputed".
    dispute.amount = 51;
    await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200);
    fake.closeDispute(dispute.id, 'lost');
    await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200);
    // 51 of the price's 500 cents: 10.2 of its 100 tokens, so 11.
    expect(await balanceOf(userId)).toMatchObject({ balance: 89 });
    expect((await readModels(userId)).chargebacks).toEqual([[-11, paymentId]]);
    await expectAudited(userId, 0);
  });

  it('takes every token when a dispute of part of the price is lost after an operator refunded the rest in the dashboard: the merchant kept none of the money', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    // 150 of the 500 cents back from the dashboard: the buyer keeps the tokens while the merchant keeps the rest.
    fake.dashboardRefund(orderId, 150);
    const dispute = fake.openDispute(orderId);
    dispute.amount = 350;
    await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200);
    fake.closeDispute(dispute.id, 'lost');
    await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200);
    expect(await balanceOf(userId)).toMatchObject({ balance: 0 });
    expect((await readModels(userId)).chargebacks).toEqual([[-100, paymentId]]);
    await expectAudited(userId, 0);

    // The merchant kept 49 cents of another purchase (100 refunded, 351 disputed): the dispute takes its share, 71 tokens.
    const other = await purchased(userId);
    fake.dashboardRefund(other.orderId, 100);
    const partOf = fake.openDispute(other.orderId);
    partOf.amount = 351;
    fake.closeDispute(partOf.id, 'lost');
    await deliver(disputeEvent('charge.dispute.closed', partOf.id)).expect(200);
    expect(await balanceOf(userId)).toMatchObject({ balance: 29 });
    await expectAudited(userId, 0);
  });

  it('records nothing for an open inquiry, so the payment can be refunded meanwhile, as Stripe allows; the inquiry closed is recorded won', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    const inquiry = fake.openDispute(orderId, 'fraudulent', true);
    expect((await deliver(disputeEvent('charge.dispute.created', inquiry.id)).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: true });
    expect(await eventTypes(userId)).toEqual(PURCHASED);
    const refunded = await http().post(`/v1/payments/${paymentId}/refund`).send().expect(200);
    expect(refunded.body).toMatchObject({ payment: { status: 'REFUNDED' }, balance: 0 });
    fake.closeDispute(inquiry.id, 'warning_closed');
    await deliver(disputeEvent('charge.dispute.closed', inquiry.id)).expect(200);
    expect((await readModels(userId)).payments).toEqual([{ id: paymentId, status: 'REFUNDED', dispute_id: inquiry.id, dispute_status: 'won' }]);
    await expectAudited(userId, 0);
  });

  it("answers a dispute webhook whose reads Stripe refuses (a restricted key without Disputes, a rate limit) as every Stripe call's failure, never with Stripe's status and words; Stripe's retry then records it", async () => {
    const userId = randomUUID();
    const { orderId } = await purchased(userId);
    const dispute = fake.openDispute(orderId);
    fake.closeDispute(dispute.id, 'lost');
    const closed = disputeEvent('charge.dispute.closed', dispute.id);
    fake.inject('GET', new RegExp(`^/v1/disputes/${dispute.id}$`), { kind: 'error', status: 403, type: 'invalid_request_error', code: 'secret_key_required', when: 'before' });
    const refused = (await deliver(closed).expect(502)).body as { code: string; detail: string };
    expect(refused).toMatchObject({ code: 'PROVIDER_REJECTED' });
    expect(JSON.stringify(refused)).not.toContain('injected');
    fake.inject('GET', new RegExp(`^/v1/payment_intents/${orderId}$`), { kind: 'error', status: 429, type: 'invalid_request_error', code: 'rate_limit', when: 'before' });
    expect((await deliver(closed).expect(503)).body).toMatchObject({ code: 'PROVIDER_RATE_LIMITED' });
    // Nothing recorded, the delivery included: Stripe's next try does the work.
    expect(await eventTypes(userId)).toEqual(PURCHASED);
    expect((await deliver(closed).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack']);
    expect(await balanceOf(userId)).toMatchObject({ balance: 0 });
  });

  it('takes nothing when the dispute is won', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    const dispute = fake.openDispute(orderId);
    await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200);
    fake.closeDispute(dispute.id, 'won');
    await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed']);
    expect(await balanceOf(userId)).toMatchObject({ balance: 100 });
    expect((await readModels(userId)).payments).toEqual([{ id: paymentId, status: 'COMPLETED', dispute_id: dispute.id, dispute_status: 'won' }]);
    expect((await use(userId, 100).expect(201)).body).toMatchObject({ balance: 0 });
  });

  it('records the part already spent as a shortfall, refuses spending until a purchase covers it, then spends again', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    await use(userId, 70).expect(201);
    const dispute = fake.openDispute(orderId);
    fake.closeDispute(dispute.id, 'lost');
    await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200);
    expect(await balanceOf(userId)).toEqual({ userId, balance: 0, held: 0, available: 0, nextExpiry: null, shortfall: 70 });
    const refused = await use(userId, 1).expect(409);
    expect(refused.body).toMatchObject({ code: 'ACCOUNT_IN_SHORTFALL', shortfall: 70 });
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect((await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 1 }).expect(409)).body).toMatchObject({ code: 'ACCOUNT_IN_SHORTFALL', shortfall: 70 });
    await expectAudited(userId, 70);
    // A projection bug that records no shortfall: verification's fold of the stream says what the account owes.
    const forgetful: Projection = { ...tokenAccountsProjection, project: (event) => tokenAccountsProjection.project(event.type === 'PaymentDisputeClosed' ? { ...event, data: { ...(event.data as Record<string, unknown>), shortfallAfter: 0 } } : event) };
    const differences = await verifyAccount(testApp.app.get<EventStore>(EVENT_STORE, { strict: false }), testApp.database.pool, [forgetful], userId);
    expect(differences.filter((difference) => difference.kind === 'balance').map((difference) => difference.detail)).toEqual(['fold gives a shortfall of 70, read model holds 0']);

    // The next purchase (100) pays the 70 off first; 30 are left to spend.
    const next = await purchased(userId);
    expect(await balanceOf(userId)).toEqual({ userId, balance: 30, held: 0, available: 30, nextExpiry: null });
    expect((await readModels(userId)).chargebacks).toEqual([
      [-30, paymentId],
      [-70, null],
    ]);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'TokensUsed', 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack', ...PURCHASED, 'ShortfallCovered']);
    expect((await use(userId, 30).expect(201)).body).toMatchObject({ balance: 0 });
    expect(next.paymentId).not.toBe(paymentId);
    await expectAudited(userId, 0);
  });

  it("pays a shortfall from a hold's tokens as the hold ends, before any later decision: usage goes through and a void of the grant they paid with is refused, whether or not the expiry job ran first", async () => {
    const userId = randomUUID();
    const { orderId } = await purchased(userId);
    // A grant spent before paid credit, then one hold of both: the lost dispute finds no free token and owes 100.
    const granted = await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 100, reason: 'Welcome', priority: 10 }).expect(201);
    const grantLot = granted.body.transaction.lotId as string;
    const placed = await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 200, expiresInSeconds: 2 }).expect(201);
    const dispute = fake.openDispute(orderId);
    fake.closeDispute(dispute.id, 'lost');
    await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200);
    expect(await balanceOf(userId)).toMatchObject({ balance: 200, held: 200, available: 0, shortfall: 100 });
    await new Promise((resolve) => setTimeout(resolve, Date.parse(placed.body.expiresAt as string) - Date.now() + 50));

    // The hold's end pays the grant's 100 (first in draw-down order) to the shortfall: the balance and a usage agree.
    expect(await balanceOf(userId)).toEqual({ userId, balance: 100, held: 0, available: 100, nextExpiry: null });
    expect((await use(userId, 10).expect(201)).body).toMatchObject({ balance: 90 });
    const voided = await http().post(`/v1/admin/accounts/${userId}/grants/${grantLot}/void`).send({ reason: 'Granted by mistake' }).expect(409);
    expect(voided.body).toMatchObject({ code: 'LOT_NOT_ACTIVE', lotId: grantLot, lotStatus: 'spent' });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'TokensGranted', 'TokensHeld', 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'HoldExpired', 'ShortfallCovered', 'TokensUsed']);
    expect((await readModels(userId)).chargebacks).toEqual([[-100, null]]);
    const lots = await http().get(`/v1/accounts/${userId}/lots`).expect(200);
    expect(lots.body.data.map((lot: { source: string; status: string; remaining: number }) => [lot.source, lot.status, lot.remaining])).toEqual([
      ['grant', 'spent', 0],
      ['purchase', 'active', 90],
    ]);
    await expectAudited(userId, 0);
  });

  it('answers a direct purchase or a grant made during a shortfall with the balance left after paying it off', async () => {
    const userId = randomUUID();
    const { orderId } = await purchased(userId);
    await use(userId, 100).expect(201);
    const dispute = fake.openDispute(orderId);
    fake.closeDispute(dispute.id, 'lost');
    await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200);
    expect(await balanceOf(userId)).toMatchObject({ balance: 0, shortfall: 100 });
    const purchase = { paymentId: randomUUID(), amount: 60, description: 'Top-up' };
    const bought = await http().post(`/v1/accounts/${userId}/purchases`).send(purchase).expect(201);
    // The row is the purchase (+60, balance 60 after it); the 60 then paid off the shortfall.
    expect(bought.body).toMatchObject({ balance: 0, transaction: { amount: 60, transactionType: 'purchase', balanceAfter: 60 } });
    expect(await balanceOf(userId)).toMatchObject({ balance: 0, shortfall: 40 });
    const granted = await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 50, reason: 'Goodwill' }).expect(201);
    expect(granted.body).toMatchObject({ balance: 10, transaction: { amount: 50 } });
    expect(await balanceOf(userId)).toEqual({ userId, balance: 10, held: 0, available: 10, nextExpiry: null });
    // The purchase sent again without a key (a retry after a lost answer) decides nothing and answers
    // as the first time: balance 0, what it left after paying off the shortfall, not its row's 60 or today's 10.
    const repeated = await http().post(`/v1/accounts/${userId}/purchases`).send(purchase).expect(201);
    expect(repeated.body).toMatchObject({ balance: 0, transaction: bought.body.transaction });
    // A purchase that covered nothing answers its row's balance when repeated, the later grant not counted.
    const plain = { paymentId: randomUUID(), amount: 5 };
    expect((await http().post(`/v1/accounts/${userId}/purchases`).send(plain).expect(201)).body).toMatchObject({ balance: 15 });
    await http().post(`/v1/admin/accounts/${userId}/grants`).send({ amount: 1, reason: 'Goodwill' }).expect(201);
    expect((await http().post(`/v1/accounts/${userId}/purchases`).send(plain).expect(201)).body).toMatchObject({ balance: 15, transaction: { balanceAfter: 15 } });
    expect(await balanceOf(userId)).toEqual({ userId, balance: 16, held: 0, available: 16, nextExpiry: null });
    await expectAudited(userId, 0);

    // The repeat reads the stream back from its end to the purchase, across pages; past its look-back,
    // the history. Every look-back gives the first answers, 0 and 15, however far the purchases lie.
    const store = testApp.app.get<EventStore>(EVENT_STORE, { strict: false });
    const pool = testApp.database.pool;
    const first = bought.body.transaction as TransactionView;
    const second = (await http().post(`/v1/accounts/${userId}/purchases`).send(plain).expect(201)).body.transaction as TransactionView;
    for (const page of [1, 2, 3, 500]) {
      for (const events of [1, 2, 3, 4, 5, 6, 7, 8, 20]) {
        const reach = { events, page };
        expect([reach, await firstAnswersBalance(store, pool, userId, purchase.paymentId, first, reach), await firstAnswersBalance(store, pool, userId, plain.paymentId, second, reach)]).toEqual([reach, 0, 15]);
      }
    }
    // With the cover's row out of the history, the stream alone answers within reach, and the history (no cover: 60) past it.
    const coverRow = [shortfallCoverTransactionId(first.id), userId];
    await pool.query("UPDATE token_transactions SET transaction_type = 'usage' WHERE id = $1 AND user_id = $2", coverRow);
    expect([await firstAnswersBalance(store, pool, userId, purchase.paymentId, first, { events: 20, page: 2 }), await firstAnswersBalance(store, pool, userId, purchase.paymentId, first, { events: 1, page: 1 })]).toEqual([0, 60]);
    await pool.query("UPDATE token_transactions SET transaction_type = 'chargeback' WHERE id = $1 AND user_id = $2", coverRow);
    await expectAudited(userId, 0);
  });

  it('applies each dispute once whatever the order and number of its webhooks', async () => {
    const userId = randomUUID();
    const { orderId } = await purchased(userId);
    const dispute = fake.openDispute(orderId);
    const created = disputeEvent('charge.dispute.created', dispute.id);
    fake.closeDispute(dispute.id, 'lost');
    const closed = disputeEvent('charge.dispute.closed', dispute.id);
    // The close overtakes the creation, and both are delivered again.
    expect((await deliver(closed).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    expect((await deliver(created, secondApp).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    expect((await deliver(closed, secondApp).expect(200)).body).toEqual({ received: true, duplicate: true, ignored: false });
    // A copy of the creation under another event id (as `charge.dispute.updated` would be) decides nothing either.
    await deliver({ ...created, id: `evt_copy_${dispute.id}`, type: 'charge.dispute.updated' }).expect(200);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack']);
    expect(await balanceOf(userId)).toMatchObject({ balance: 0 });
  });

  it('ends exactly when 30 spends on two instances race the lost-dispute webhook: balance 0, shortfall = what the accepted spends took', async () => {
    const userId = randomUUID();
    const { orderId } = await purchased(userId);
    const dispute = fake.openDispute(orderId);
    fake.closeDispute(dispute.id, 'lost');
    const closed = disputeEvent('charge.dispute.closed', dispute.id);
    const [webhooks, spends] = await Promise.all([
      Promise.all([deliver(closed), deliver(closed, secondApp)]),
      Promise.all(Array.from({ length: 30 }, (_, index) => use(userId, 5, index % 2 === 0 ? testApp : secondApp))),
    ]);
    expect(webhooks.map((response) => response.status)).toEqual([200, 200]);
    const accepted = spends.filter((response) => response.status === 201).length;
    const refusals = new Set(spends.filter((response) => response.status !== 201).map((response) => `${response.status} ${(response.body as { code: string }).code}`));
    expect([...refusals].every((refusal) => refusal === '409 ACCOUNT_IN_SHORTFALL' || refusal === '409 INSUFFICIENT_BALANCE')).toBe(true);
    expect(accepted).toBeLessThanOrEqual(20);
    const shortfall = 5 * accepted;
    const models = await readModels(userId);
    expect(models.totals).toEqual({ balance: '0', shortfall: String(shortfall), history: '0' });
    expect(models.chargebacks.reduce((sum, [amount]) => sum + Number(amount), 0)).toBe(shortfall - 100);
    const types = await eventTypes(userId);
    expect(types.filter((type) => type === 'PaymentDisputeClosed')).toHaveLength(1);
    expect(types.filter((type) => type === 'TokensUsed')).toHaveLength(accepted);
    await expectAudited(userId, shortfall);
  });

  it('credits, then takes back, a payment captured at Stripe whose capture the ledger never recorded', async () => {
    const userId = randomUUID();
    const bought = (await http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201)).body as { paymentId: string; orderId: string };
    fake.confirmAsCustomer(bought.orderId);
    // Captured by another client of the account (its answer, and its webhooks, lost to us).
    await stripeClient({ secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, autoCapture: false, apiUrl: fake.url, maxNetworkRetries: 0, timeoutMs: 1_000, webhookToleranceSeconds: 300 }).paymentIntents.capture(bought.orderId);
    const dispute = fake.openDispute(bought.orderId);
    fake.closeDispute(dispute.id, 'lost');
    await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack']);
    expect(await balanceOf(userId)).toMatchObject({ balance: 0 });
  });

  it("takes an event of up to 1 MiB, as a dispute's with the merchant's evidence can be, and refuses a larger one with 413", async () => {
    const userId = randomUUID();
    const { orderId } = await purchased(userId);
    const dispute = fake.openDispute(orderId);
    const created = disputeEvent('charge.dispute.created', dispute.id);
    // Stripe allows 150,000 characters of evidence text; in UTF-8 several bytes each.
    const evidence = { uncategorized_text: 'é'.repeat(150_000), product_description: 'x'.repeat(20_000) };
    const withEvidence = { ...created, data: { object: { ...created.data.object, evidence } } };
    expect(Buffer.byteLength(JSON.stringify(withEvidence))).toBeGreaterThan(300_000);
    expect((await deliver(withEvidence).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened']);
    const tooLarge = { ...created, id: `${created.id}_large`, data: { object: { ...created.data.object, evidence: { uncategorized_text: 'x'.repeat(1024 * 1024) } } } };
    expect((await deliver(tooLarge).expect(413)).body).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    // Other routes keep 64 KiB.
    await http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1, description: 'x'.repeat(70 * 1024) }).expect(413);
  });

  /** A Stripe purchase an operator captured in part (100 of its 500) in the dashboard: nothing credited. */
  async function capturedInPart(userId: string) {
    const bought = (await http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201)).body as { paymentId: string; orderId: string };
    fake.confirmAsCustomer(bought.orderId);
    fake.dashboardCapture(bought.orderId, 100);
    return bought;
  }
  const refusedInPart = (disputeId: string) => ({ code: 'PAYMENT_CAPTURED_IN_PART', message: expect.stringContaining(`so it credited no tokens and dispute ${disputeId}`) as unknown });

  it('answers an open, then won, dispute of a PaymentIntent an operator captured in part with 2xx refused, taking nothing: the ledger credited nothing for it', async () => {
    const userId = randomUUID();
    const bought = await capturedInPart(userId);
    const dispute = fake.openDispute(bought.orderId);
    expect((await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false, refused: refusedInPart(dispute.id) });
    fake.closeDispute(dispute.id, 'won');
    // Both processes, as Stripe may deliver to either; the repeat of an answered event is a duplicate.
    const closed = disputeEvent('charge.dispute.closed', dispute.id);
    expect((await deliver(closed, secondApp).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false, refused: refusedInPart(dispute.id) });
    expect((await deliver(closed).expect(200)).body).toEqual({ received: true, duplicate: true, ignored: false });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
    expect(await balanceOf(userId)).toMatchObject({ balance: 0 });
    expect((await readModels(userId)).payments).toEqual([{ id: bought.paymentId, status: 'PENDING', dispute_id: null, dispute_status: null }]);
  });

  it('fails the payment of a PaymentIntent captured in part when its dispute is lost: the bank took back what was captured, nothing was kept', async () => {
    const userId = randomUUID();
    const bought = await capturedInPart(userId);
    const dispute = fake.openDispute(bought.orderId);
    await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200);
    fake.closeDispute(dispute.id, 'lost');
    // Delivered to both processes at once: the payment fails once.
    const closed = disputeEvent('charge.dispute.closed', dispute.id);
    const answers = await Promise.all([deliver(closed), deliver(closed, secondApp)]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    for (const answer of answers) expect(answer.body).not.toHaveProperty('refused');
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentFailed']);
    expect(await balanceOf(userId)).toMatchObject({ balance: 0 });
    expect((await readModels(userId)).payments).toEqual([{ id: bought.paymentId, status: 'FAILED', dispute_id: null, dispute_status: null }]);
    // Nothing left for the operator: reconciling it (as the job does within its look-back) reports nothing.
    const reconciled = await crashingWorkflow(testApp).reconcileById(bought.paymentId, context());
    expect({ appended: reconciled.appended, unresolved: reconciled.unresolved }).toEqual({ appended: 0, unresolved: undefined });
  });

  it('still refuses PAYMENT_NOT_CAPTURED, for a redelivery to retry, a dispute of a payment Stripe reports not captured: only a capture in part is refused for good', async () => {
    const userId = randomUUID();
    const bought = (await http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201)).body as { paymentId: string; orderId: string };
    fake.confirmAsCustomer(bought.orderId);
    // Authorised, not captured: Stripe has no charge to dispute yet, so a report of one is not final.
    const reported = { disputeId: 'dp_not_yet', status: 'lost', amount: 500, currency: 'USD', reason: 'fraudulent' } as const;
    await expect(crashingWorkflow(testApp).recordDispute(bought.paymentId, reported, context())).rejects.toMatchObject({ code: 'PAYMENT_NOT_CAPTURED' });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
  });

  it('dispute:after-append: a process that dies after failing the payment of a lost dispute of a PaymentIntent captured in part leaves it failed once; Stripe’s retry answers 2xx', async () => {
    const userId = randomUUID();
    const bought = await capturedInPart(userId);
    const dispute = fake.openDispute(bought.orderId);
    fake.closeDispute(dispute.id, 'lost');
    const reported = { disputeId: dispute.id, status: 'lost', amount: dispute.amount, currency: 'USD', reason: dispute.reason } as const;
    await expect(crashingWorkflow(testApp, 'dispute:after-append').recordDispute(bought.paymentId, reported, context())).rejects.toThrow(SimulatedCrash);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentFailed']);
    expect((await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentFailed']);
  });

  it('ignores a dispute of a PaymentIntent that is not ours with 2xx', async () => {
    const client = stripeClient({ secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, autoCapture: false, apiUrl: fake.url, maxNetworkRetries: 0, timeoutMs: 1_000, webhookToleranceSeconds: 300 });
    const foreign = await client.paymentIntents.create({ amount: 999, currency: 'usd', capture_method: 'manual', metadata: { order: 'from another app' } });
    fake.confirmAsCustomer(foreign.id);
    await client.paymentIntents.capture(foreign.id);
    const dispute = fake.openDispute(foreign.id);
    expect((await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: true });
  });

  /** A process of the service on the same database and Stripe, dying at `crashAt`. */
  const processOf = (crashAt: PaymentFaultPoint) => crashingWorkflow(testApp, crashAt);

  it('dispute:after-append: a process that dies after recording the lost dispute, before the delivery is recorded, is not applied twice by Stripe’s retry', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    const dispute = fake.openDispute(orderId);
    fake.closeDispute(dispute.id, 'lost');
    const closed = disputeEvent('charge.dispute.closed', dispute.id);
    const reported = { disputeId: dispute.id, status: 'lost', amount: dispute.amount, currency: 'USD', reason: dispute.reason } as const;
    await expect(processOf('dispute:after-append').recordDispute(paymentId, reported, context())).rejects.toThrow(SimulatedCrash);
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack']);
    // Stripe got no 2xx and delivers the event again.
    expect((await deliver(closed).expect(200)).body).toEqual({ received: true, duplicate: false, ignored: false });
    expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack']);
    expect(await readModels(userId)).toMatchObject({ totals: { balance: '0', shortfall: '0', history: '0' }, chargebacks: [[-100, paymentId]] });
  });

  it('dispute:after-append: a process that dies after a lost dispute of part of the price ended a pending refund leaves it ended once, the share taken once, by Stripe’s retry and the client’s', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await purchased(userId);
    const dispute = fake.openDispute(orderId);
    dispute.amount = 51;
    await http().post(`/v1/payments/${paymentId}/refund`).send().expect(409);
    fake.closeDispute(dispute.id, 'lost');
    const closed = disputeEvent('charge.dispute.closed', dispute.id);
    const reported = { disputeId: dispute.id, status: 'lost', amount: 51, currency: 'USD', reason: dispute.reason } as const;
    await expect(processOf('dispute:after-append').recordDispute(paymentId, reported, context())).rejects.toThrow(SimulatedCrash);
    const ended = [...PURCHASED, 'PaymentRefundRequested', 'PaymentDisputeOpened', 'PaymentRefundFailed', 'PaymentDisputeClosed', 'TokensChargedBack'];
    expect(await eventTypes(userId)).toEqual(ended);
    const [again, retry] = await Promise.all([deliver(closed, secondApp), http().post(`/v1/payments/${paymentId}/refund`).send()]);
    expect([again.status, retry.status, retry.body.code]).toEqual([200, 409, 'PAYMENT_DISPUTED']);
    expect(await eventTypes(userId)).toEqual(ended);
    expect(await readModels(userId)).toEqual({
      totals: { balance: '89', shortfall: '0', history: '89' },
      chargebacks: [[-11, paymentId]],
      payments: [{ id: paymentId, status: 'COMPLETED', dispute_id: dispute.id, dispute_status: 'lost' }],
    });
    await expectAudited(userId, 0);
  });

  describe("the reconciliation job's sweep of Stripe's disputes (a dispute whose webhooks never arrived)", () => {
    // No call here is about a timeout: 10 s, so that a CI run on two busy cores does not fail a setup of 101 PaymentIntents (it did once at 1 s).
    const client = () => stripeClient({ secretKey: fake.secretKey, webhookSecret: fake.webhookSecret, autoCapture: false, apiUrl: fake.url, maxNetworkRetries: 0, timeoutMs: 10_000, webhookToleranceSeconds: 300 });

    /**
     * A reconciliation job as the module wires it (the Stripe dispute list, the look-back), over `workflow`,
     * sweeping only the disputes of these payments (the fake holds every other test's too), its problems kept.
     */
    function sweeper(paymentIds: readonly string[], workflow: Workflow = testApp.app.get(PaymentWorkflow, { strict: false }), disputeIds: readonly string[] = []) {
      const problems: [string, ReconciliationProblem][] = [];
      const list = new StripeDisputeList(client());
      const disputes = {
        disputesSince: async (since: Date) => {
          const listed = await list.disputesSince(since);
          return { disputes: listed.disputes.filter((reported) => paymentIds.includes(reported.paymentId)), failures: listed.failures.filter((failure) => disputeIds.includes(failure.disputeId)) };
        },
      };
      // Its payments' part reports other tests' payments too: only these payments' (and disputes') problems are kept.
      const subjects = [...paymentIds, ...disputeIds.map((disputeId) => `dispute ${disputeId}`)];
      const job = new PaymentReconciliationJob(testApp.database.pool, workflow, { lookbackMs: 3_600_000, disputes }, (subject, problem) => {
        if (subjects.includes(subject)) problems.push([subject, problem]);
      });
      return { job, problems };
    }

    it('records a dispute opened, then lost, with none of its webhooks delivered: the tokens taken back once, and the next runs record nothing', async () => {
      const userId = randomUUID();
      const { paymentId, orderId } = await purchased(userId);
      const { job, problems } = sweeper([paymentId]);
      const dispute = fake.openDispute(orderId);
      expect(await job.runOnce(new Date())).toMatchObject({ disputes: 1, disputesRecorded: 1 });
      expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened']);
      expect((await readModels(userId)).payments).toEqual([{ id: paymentId, status: 'COMPLETED', dispute_id: dispute.id, dispute_status: 'open' }]);

      fake.closeDispute(dispute.id, 'lost');
      expect(await job.runOnce(new Date())).toMatchObject({ disputes: 1, disputesRecorded: 1 });
      expect(await job.runOnce(new Date())).toMatchObject({ disputes: 1, disputesRecorded: 0 });
      expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack']);
      expect(await readModels(userId)).toEqual({
        totals: { balance: '0', shortfall: '0', history: '0' },
        chargebacks: [[-100, paymentId]],
        payments: [{ id: paymentId, status: 'COMPLETED', dispute_id: dispute.id, dispute_status: 'lost' }],
      });
      // Closed in the ledger, it is not decided again though Stripe reads it open once more (an appeal's status).
      const workflow = testApp.app.get(PaymentWorkflow, { strict: false });
      const counting = Object.create(workflow) as Workflow;
      let decided = 0;
      counting.recordDispute = async (...args) => {
        decided += 1;
        return workflow.recordDispute(...args);
      };
      dispute.status = 'under_review';
      expect(await sweeper([paymentId], counting).job.runOnce(new Date())).toMatchObject({ disputes: 1, disputesRecorded: 0 });
      expect(decided).toBe(0);
      dispute.status = 'lost';
      // Its webhooks, delivered at last, decide nothing more.
      await deliver(disputeEvent('charge.dispute.created', dispute.id)).expect(200);
      await deliver(disputeEvent('charge.dispute.closed', dispute.id)).expect(200);
      expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack']);
      expect(problems).toEqual([]);
      await expectAudited(userId, 0);
    });

    it('records a dispute won, and one lost after the tokens were spent (a shortfall), each from its state at Stripe alone', async () => {
      const [won, lost] = [randomUUID(), randomUUID()];
      const wonPayment = await purchased(won);
      const lostPayment = await purchased(lost);
      fake.closeDispute(fake.openDispute(wonPayment.orderId).id, 'won');
      await use(lost, 60).expect(201);
      fake.closeDispute(fake.openDispute(lostPayment.orderId).id, 'lost');
      const { job, problems } = sweeper([wonPayment.paymentId, lostPayment.paymentId]);
      expect(await job.runOnce(new Date())).toMatchObject({ disputes: 2, disputesRecorded: 2 });
      expect(await eventTypes(won)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed']);
      expect(await balanceOf(won)).toMatchObject({ balance: 100 });
      expect(await balanceOf(lost)).toMatchObject({ balance: 0, shortfall: 60 });
      expect(problems).toEqual([]);
      await expectAudited(won, 0);
      await expectAudited(lost, 60);
    });

    it('reports, and records nothing of, a dispute of a PaymentIntent that is not the payment it names (its metadata copied), from the sweep or its webhooks', async () => {
      const userId = randomUUID();
      const { paymentId, orderId } = await purchased(userId);
      const copy = await client().paymentIntents.create({ amount: 500, currency: 'usd', capture_method: 'manual', metadata: { paymentId, userId } });
      fake.confirmAsCustomer(copy.id);
      await client().paymentIntents.capture(copy.id);
      const dispute = fake.openDispute(copy.id);
      fake.closeDispute(dispute.id, 'lost');
      const { job, problems } = sweeper([paymentId]);
      expect(await job.runOnce(new Date())).toMatchObject({ disputes: 1, disputesRecorded: 0 });
      expect(problems).toEqual([[paymentId, { kind: 'unresolved', why: expect.stringContaining(`dispute ${dispute.id} (lost) is of order ${copy.id}`) }]]);
      // Its webhooks are answered 2xx, reported (unresolved), and record nothing either.
      for (const type of ['charge.dispute.created', 'charge.dispute.closed'] as const) {
        expect((await deliver(disputeEvent(type, dispute.id)).expect(200)).body).toEqual({
          received: true,
          duplicate: false,
          ignored: false,
          unresolved: `dispute ${dispute.id} (lost) is of order ${copy.id}, whose metadata names this payment, but the payment's order is ${orderId}: not recorded`,
        });
      }
      expect(await eventTypes(userId)).toEqual(PURCHASED);
      expect(await balanceOf(userId)).toMatchObject({ balance: 100 });
    });

    it('takes the tokens once when the sweeps of two processes race the webhooks on both and 20 spends of 1', async () => {
      const userId = randomUUID();
      const { paymentId, orderId } = await purchased(userId);
      const dispute = fake.openDispute(orderId);
      fake.closeDispute(dispute.id, 'lost');
      const closed = disputeEvent('charge.dispute.closed', dispute.id);
      const first = sweeper([paymentId]);
      const second = sweeper([paymentId], crashingWorkflow(secondApp));
      const onEither = (index: number) => (index % 2 === 0 ? testApp : secondApp);
      const [runs, webhooks, spends] = await Promise.all([
        Promise.all([first.job.runOnce(new Date()), second.job.runOnce(new Date())]),
        Promise.all(Array.from({ length: 4 }, (_, index) => deliver(closed, onEither(index)))),
        Promise.all(Array.from({ length: 20 }, (_, index) => use(userId, 1, onEither(index)))),
      ]);
      expect(webhooks.map((response) => response.status)).toEqual([200, 200, 200, 200]);
      expect(runs.map((run) => run.disputes)).toEqual([1, 1]);
      const spent = spends.filter((response) => response.status === 201).length;
      const refusals = new Set(spends.filter((response) => response.status !== 201).map((response) => `${response.status} ${(response.body as { code: string }).code}`));
      expect([...refusals].every((refusal) => refusal === '409 ACCOUNT_IN_SHORTFALL' || refusal === '409 INSUFFICIENT_BALANCE')).toBe(true);
      const types = await eventTypes(userId);
      expect(types.filter((type) => type === 'PaymentDisputeOpened' || type === 'PaymentDisputeClosed')).toEqual(['PaymentDisputeOpened', 'PaymentDisputeClosed']);
      expect(types.filter((type) => type === 'TokensUsed')).toHaveLength(spent);
      const models = await readModels(userId);
      expect(models.totals).toEqual({ balance: '0', shortfall: String(spent), history: '0' });
      expect(models.chargebacks.reduce((sum, [amount]) => sum + Number(amount), 0)).toBe(spent - 100);
      expect([...first.problems, ...second.problems]).toEqual([]);
      await expectAudited(userId, spent);
    });

    it('dispute:after-append: a sweep whose process dies after recording the lost dispute leaves it recorded once; the next run records nothing', async () => {
      const userId = randomUUID();
      const { paymentId, orderId } = await purchased(userId);
      fake.closeDispute(fake.openDispute(orderId).id, 'lost');
      const dying = sweeper([paymentId], crashingWorkflow(testApp, 'dispute:after-append'));
      expect(await dying.job.runOnce(new Date())).toMatchObject({ disputes: 1, disputesRecorded: 0 });
      expect(dying.problems).toEqual([[paymentId, { kind: 'failed', error: expect.any(SimulatedCrash) }]]);
      const taken = [...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack'];
      expect(await eventTypes(userId)).toEqual(taken);
      const next = sweeper([paymentId]);
      expect(await next.job.runOnce(new Date())).toMatchObject({ disputes: 1, disputesRecorded: 0 });
      expect(next.problems).toEqual([]);
      expect(await eventTypes(userId)).toEqual(taken);
      expect(await readModels(userId)).toMatchObject({ totals: { balance: '0', shortfall: '0', history: '0' }, chargebacks: [[-100, paymentId]] });
      await expectAudited(userId, 0);
    });

    it('is wired with the Stripe dispute list in the service: a run of its own job records a dispute no webhook reported', async () => {
      const userId = randomUUID();
      const { paymentId, orderId } = await purchased(userId);
      fake.closeDispute(fake.openDispute(orderId).id, 'lost');
      const run = await testApp.app.get(PaymentReconciliationJob, { strict: false }).runOnce(new Date());
      expect(run.disputes).toBeGreaterThanOrEqual(1);
      expect(run.disputesRecorded).toBeGreaterThanOrEqual(1);
      expect(await eventTypes(userId)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack']);
      expect((await readModels(userId)).payments).toEqual([expect.objectContaining({ id: paymentId, dispute_status: 'lost' })]);
    });

    it('records the other disputes when one cannot be read whole (its charge unreadable), reports that one, and records it once it can be read', async () => {
      const [first, second] = [randomUUID(), randomUUID()];
      const broken = await purchased(first);
      const sound = await purchased(second);
      // A dispute of an older API version names only its charge, whose PaymentIntent is then read.
      const unreadable = fake.openDispute(broken.orderId);
      unreadable.payment_intent = null;
      fake.closeDispute(unreadable.id, 'lost');
      fake.openDispute(sound.orderId);
      fake.inject('GET', new RegExp(`^/v1/charges/${unreadable.charge}$`), { kind: 'error', status: 500, type: 'api_error', when: 'before' }, 5);
      const { job, problems } = sweeper([broken.paymentId, sound.paymentId], undefined, [unreadable.id]);
      expect(await job.runOnce(new Date())).toMatchObject({ disputes: 1, disputesRecorded: 1 });
      // (The payment's own reconciliation reads the same charge, and fails too: reported for the payment.)
      expect(problems).toContainEqual([`dispute ${unreadable.id}`, { kind: 'failed', error: expect.objectContaining({ code: 'PROVIDER_UNAVAILABLE' }) }]);
      expect(await eventTypes(second)).toEqual([...PURCHASED, 'PaymentDisputeOpened']);
      expect(await eventTypes(first)).toEqual(PURCHASED);
      fake.clearInjected();
      expect(await job.runOnce(new Date())).toMatchObject({ disputes: 2, disputesRecorded: 1 });
      expect(await eventTypes(first)).toEqual([...PURCHASED, 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack']);
    });

    it('reads every page of the list (101 disputes, 100 a page), and leaves out open inquiries and PaymentIntents not ours', async () => {
      // From the next second on: Stripe's `created` counts seconds, and this test's disputes alone are listed.
      await new Promise((resolve) => setTimeout(resolve, 1_005 - (Date.now() % 1_000)));
      const since = new Date();
      // The list needs only PaymentIntents with our metadata, captured and disputed: made at the fake directly.
      const captured = async (metadata: Record<string, string>) => {
        const intent = await client().paymentIntents.create({ amount: 500, currency: 'usd', capture_method: 'manual', metadata });
        fake.confirmAsCustomer(intent.id);
        await client().paymentIntents.capture(intent.id);
        return intent.id;
      };
      const ours = await Promise.all(Array.from({ length: 101 }, async () => {
        const paymentId = randomUUID();
        return { paymentId, orderId: await captured({ paymentId, userId: randomUUID() }) };
      }));
      for (const { orderId } of ours) fake.openDispute(orderId);
      fake.openDispute(await captured({ paymentId: randomUUID(), userId: randomUUID() }), 'fraudulent', true);
      fake.openDispute(await captured({ order: 'from another app' }));
      const requestsBefore = fake.requests.length;
      const listed = await new StripeDisputeList(client()).disputesSince(since);
      expect(listed.failures).toEqual([]);
      expect(listed.disputes.map((reported) => reported.paymentId).sort()).toEqual(ours.map((payment) => payment.paymentId).sort());
      expect(listed.disputes.every((reported) => reported.dispute.status === 'open' && ours.some((payment) => payment.orderId === reported.orderId && payment.paymentId === reported.paymentId))).toBe(true);
      // Two pages, and no PaymentIntent read one by one (expanded in the list).
      expect(fake.requests.slice(requestsBefore).map((request) => `${request.method} ${request.path}`)).toEqual(['GET /v1/disputes', 'GET /v1/disputes']);
    });
  });
});
