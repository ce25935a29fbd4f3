import { randomUUID } from 'node:crypto';
import { crashingWorkflow, SimulatedCrash } from './support/crashing-payments.js';
import { CommandHandling, type CommandContext } from '@app/event-sourcing';
import { tokenAccountDecider, tokenAccountStreamId, type Payment } from '@app/ledger';
import { EXPIRY_PAGE_SIZE, MockPaymentProvider, PAYMENT_PROVIDER, PaymentExpiryJob, PaymentProviderError, PaymentReconciliationJob, RECONCILIATION_PAGE_SIZE, type PaymentFaultPoint, type PaymentProvider } from '@app/payments';
import { startTestApp, TEST_ACTOR, type TestApp } from './support/test-app.js';

/**
 * A crash injected at every named point between a provider call and the append after it (and after
 * a refund's intent), through the workflow's fault seam: the flow stops there as a dead process
 * would, nothing after the point runs. "After the restart" is a new workflow with its own command
 * handling (no cache) on the same database and provider, as a new process would be; then one run of
 * the reconciliation job. Each test checks the exact end state: balance, payment status, provider
 * state, transactions and events. test/payment-kill.e2e-spec.ts does the same with a real SIGKILL.
 */
let testApp: TestApp;
let provider: MockPaymentProvider;

beforeAll(async () => {
  testApp = await startTestApp({ PAYMENT_JOBS_ENABLED: 'false' });
  provider = testApp.app.get<MockPaymentProvider>(PAYMENT_PROVIDER, { strict: false });
});

afterAll(async () => {
  await testApp.close();
});

const HOUR_MS = 3_600_000;
const LOOKBACK_MS = 72 * HOUR_MS;
const http = () => testApp.http();
const context = (): CommandContext => ({ requestId: randomUUID(), actor: TEST_ACTOR });

/** A process of the service: its own command handling over the shared store, provider and database; it dies at `crashAt`. */
function processOf(crashAt?: PaymentFaultPoint, through: PaymentProvider = provider) {
  const workflow = crashingWorkflow(testApp, crashAt, through);
  return {
    workflow,
    expiry: new PaymentExpiryJob(testApp.database.pool, workflow),
    reconciliation: new PaymentReconciliationJob(testApp.database.pool, workflow, { lookbackMs: LOOKBACK_MS }),
  };
}

async function eventTypes(userId: string): Promise<string[]> {
  const result = await testApp.database.pool.query<{ event_type: string }>('SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_revision', [`token-account-${userId}`]);
  return result.rows.map((row) => row.event_type);
}

type EndState = { balance: number; status: string; order: string; transactions: readonly [string, number][] };

/** Balance, payment row, provider order and history, as the read models and the provider show them. */
async function endState(userId: string, paymentId: string): Promise<EndState> {
  const balance = (await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body.balance as number;
  const status = (await http().get(`/v1/payments/${paymentId}`).expect(200)).body.status as string;
  const order = (await provider.getOrder({ orderId: `MOCK-ORDER-${paymentId}` })).status;
  const history = (await http().get(`/v1/accounts/${userId}/transactions?limit=100`).expect(200)).body.data as { transactionType: string; amount: number }[];
  return { balance, status, order, transactions: history.reverse().map((row) => [row.transactionType, row.amount]) };
}

const CREDITED: EndState = { balance: 100, status: 'COMPLETED', order: 'captured', transactions: [['purchase', 100]] };
const REFUNDED: EndState = { balance: 0, status: 'REFUNDED', order: 'refunded', transactions: [['purchase', 100], ['refund', -100]] };

async function bought(userId: string): Promise<{ paymentId: string; orderId: string }> {
  const response = await http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201);
  return response.body as { paymentId: string; orderId: string };
}

async function captured(userId: string): Promise<{ paymentId: string; orderId: string }> {
  const payment = await bought(userId);
  await http().post(`/v1/payments/${payment.paymentId}/capture`).send().expect(200);
  return payment;
}

describe('a crash between each provider call and the append after it', () => {
  it('initiate:after-create-order: the retry with the same Idempotency-Key opens the same payment and order, and it captures once', async () => {
    const userId = randomUUID();
    const idempotency = { key: randomUUID(), requestId: randomUUID(), notBefore: new Date(Date.now() - 60_000) };
    await expect(processOf('initiate:after-create-order').workflow.initiate(userId, 'starter', { ...context(), idempotency })).rejects.toThrow(SimulatedCrash);
    expect(await eventTypes(userId)).toEqual([]);

    const after = processOf();
    const opened = await after.workflow.initiate(userId, 'starter', { ...context(), idempotency });
    expect(await provider.getOrder({ orderId: opened.orderId })).toMatchObject({ status: 'created' });
    await after.reconciliation.runOnce(new Date());
    await after.workflow.capture(opened.paymentId, context());
    expect(await endState(userId, opened.paymentId)).toEqual(CREDITED);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
  });

  it('capture:after-provider-capture: the reconciliation run credits the money the provider took, once', async () => {
    const userId = randomUUID();
    const { paymentId } = await bought(userId);
    await expect(processOf('capture:after-provider-capture').workflow.capture(paymentId, context())).rejects.toThrow(SimulatedCrash);
    expect(await endState(userId, paymentId)).toEqual({ balance: 0, status: 'PENDING', order: 'captured', transactions: [] });

    const after = processOf();
    expect(await after.reconciliation.runOnce(new Date())).toMatchObject({ failed: 0, unresolved: 0 });
    expect(await endState(userId, paymentId)).toEqual(CREDITED);
    await after.reconciliation.runOnce(new Date());
    await after.workflow.capture(paymentId, context());
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
  });

  it('refund:after-intent: the tokens stay reserved, and the reconciliation run refunds at the provider and debits, once', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await captured(userId);
    await expect(processOf('refund:after-intent').workflow.refund(paymentId, context())).rejects.toThrow(SimulatedCrash);
    expect(await endState(userId, paymentId)).toEqual({ ...CREDITED, status: 'REFUND_PENDING' });
    // Nothing spends the tokens being refunded while the refund is unfinished.
    const refused = await http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1 }).expect(409);
    expect(refused.body).toMatchObject({ code: 'INSUFFICIENT_BALANCE', balance: 100, available: 0 });
    // The balance and write responses say so: available leaves the reserved tokens out.
    expect((await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toMatchObject({ balance: 100, held: 0, available: 0, reservedForRefunds: 100 });
    await http().post(`/v1/accounts/${userId}/purchases`).send({ paymentId: randomUUID(), amount: 50 }).expect(201);
    const held = await http().post(`/v1/accounts/${userId}/holds`).send({ amount: 10 }).expect(201);
    expect(held.body).toMatchObject({ balance: 150, held: 10, available: 40 });
    await http().post(`/v1/accounts/${userId}/holds/${held.body.holdId as string}/release`).send({}).expect(200);
    await http().post(`/v1/accounts/${userId}/usage`).send({ amount: 50 }).expect(201);

    const after = processOf();
    expect(await after.reconciliation.runOnce(new Date())).toMatchObject({ failed: 0, unresolved: 0 });
    expect(await endState(userId, paymentId)).toEqual({ ...REFUNDED, transactions: [['purchase', 100], ['purchase', 50], ['usage', -50], ['refund', -100]] });
    expect((await http().get(`/v1/accounts/${userId}/balance`).expect(200)).body).toEqual({ userId, balance: 0, held: 0, available: 0, nextExpiry: null });
    expect(await provider.keysOf(orderId)).toEqual({ capture: `capture-${paymentId}`, refund: `refund-${paymentId}` });
    await after.reconciliation.runOnce(new Date());
    expect(await eventTypes(userId)).toEqual([
      'PaymentInitiated', 'PaymentCaptured', 'TokensPurchased', 'PaymentRefundRequested',
      'TokensPurchased', 'TokensHeld', 'HoldReleased', 'TokensUsed', 'PaymentRefunded', 'TokensRefunded',
    ]);
  });

  it('refund:after-provider-refund: the reconciliation run debits the refund the provider made, once', async () => {
    const userId = randomUUID();
    const { paymentId } = await captured(userId);
    await expect(processOf('refund:after-provider-refund').workflow.refund(paymentId, context())).rejects.toThrow(SimulatedCrash);
    expect(await endState(userId, paymentId)).toEqual({ ...CREDITED, status: 'REFUND_PENDING', order: 'refunded' });

    const after = processOf();
    await after.reconciliation.runOnce(new Date());
    expect(await endState(userId, paymentId)).toEqual(REFUNDED);
    // The client's retry of the refund answers the refunded payment and changes nothing.
    const retried = await http().post(`/v1/payments/${paymentId}/refund`).send().expect(200);
    expect(retried.body).toMatchObject({ balance: 0, payment: { status: 'REFUNDED' } });
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased', 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded']);
  });

  it('refund:after-provider-refund: the client retrying the refund finishes it instead, once', async () => {
    const userId = randomUUID();
    const { paymentId } = await captured(userId);
    await expect(processOf('refund:after-provider-refund').workflow.refund(paymentId, context())).rejects.toThrow(SimulatedCrash);
    const retried = await processOf().workflow.refund(paymentId, context());
    expect(retried).toMatchObject({ balance: 0, payment: { status: 'REFUNDED', metadata: { tokensDebited: 100 } } });
    expect(await endState(userId, paymentId)).toEqual(REFUNDED);
  });

  it('a provider outage during the refund answers 502 and leaves the refund pending with its tokens reserved; the retry finishes it once', async () => {
    const userId = randomUUID();
    const { paymentId } = await captured(userId);
    const unavailable: PaymentProvider = {
      name: provider.name,
      createOrder: (request) => provider.createOrder(request),
      clientSecretOf: () => provider.clientSecretOf(),
      capture: (order, key) => provider.capture(order, key),
      getOrder: (order) => provider.getOrder(order),
      cancel: (order) => provider.cancel(order),
      refund: () => Promise.reject(new PaymentProviderError('mock provider unavailable', 'unavailable')),
      findRefund: (order) => provider.findRefund(order),
    };
    await expect(processOf(undefined, unavailable).workflow.refund(paymentId, context())).rejects.toMatchObject({ code: 'PROVIDER_UNAVAILABLE' });
    expect(await endState(userId, paymentId)).toEqual({ ...CREDITED, status: 'REFUND_PENDING' });
    expect((await http().post(`/v1/accounts/${userId}/usage`).send({ amount: 1 }).expect(409)).body).toMatchObject({ code: 'INSUFFICIENT_BALANCE', available: 0 });

    const retried = await http().post(`/v1/payments/${paymentId}/refund`).send().expect(200);
    expect(retried.body).toMatchObject({ balance: 0, payment: { status: 'REFUNDED', metadata: { tokensDebited: 100 } } });
    expect(await endState(userId, paymentId)).toEqual(REFUNDED);
  });

  it('reconcile:after-provider-order: an expiry run that dies after asking the provider is finished by the next run', async () => {
    const userId = randomUUID();
    const { paymentId } = await bought(userId);
    await expect(processOf('capture:after-provider-capture').workflow.capture(paymentId, context())).rejects.toThrow(SimulatedCrash);
    const due = new Date(Date.now() + 2 * HOUR_MS);
    const dying = await processOf('reconcile:after-provider-order').expiry.runOnce(due);
    expect(dying.failed).toBeGreaterThanOrEqual(1);
    expect(await endState(userId, paymentId)).toEqual({ balance: 0, status: 'PENDING', order: 'captured', transactions: [] });

    await processOf().expiry.runOnce(due);
    expect(await endState(userId, paymentId)).toEqual(CREDITED);
  });

  it('reconcile:after-provider-refund: a reconciliation run that dies after refunding at the provider is finished by the next run', async () => {
    const userId = randomUUID();
    const { paymentId } = await captured(userId);
    await expect(processOf('refund:after-intent').workflow.refund(paymentId, context())).rejects.toThrow(SimulatedCrash);
    const dying = await processOf('reconcile:after-provider-refund').reconciliation.runOnce(new Date());
    expect(dying.failed).toBeGreaterThanOrEqual(1);
    expect(await endState(userId, paymentId)).toEqual({ ...CREDITED, status: 'REFUND_PENDING', order: 'refunded' });

    await processOf().reconciliation.runOnce(new Date());
    expect(await endState(userId, paymentId)).toEqual(REFUNDED);
  });
});

describe('the reconciliation job', () => {
  it('asks the provider to refund only while a request still reserves the tokens: a payment read REFUND_PENDING whose request ended since is not refunded', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await captured(userId);
    // The payment as the job read it, a request pending; since, the request ended (its failure recorded through another process), the tokens the account's.
    const { state } = await testApp.app.get(CommandHandling).load(tokenAccountStreamId(userId), tokenAccountDecider);
    const read = state.payments.get(paymentId);
    expect(read).toMatchObject({ status: 'COMPLETED' });
    const stale = { ...(read as Payment), status: 'REFUND_PENDING' as const };
    const reconciled = await processOf().workflow.reconcile(stale, context());
    expect(reconciled).toMatchObject({ appended: 0, orderStatus: 'captured' });
    expect((await provider.getOrder({ orderId })).status).toBe('captured');
    expect(await endState(userId, paymentId)).toEqual(CREDITED);
  });

  it('credits, not expires, a payment whose capture lands at the provider while the expiry cancels it', async () => {
    const userId = randomUUID();
    const { paymentId } = await bought(userId);
    const racing: PaymentProvider = {
      name: provider.name,
      createOrder: (request) => provider.createOrder(request),
      clientSecretOf: () => provider.clientSecretOf(),
      capture: (id, key) => provider.capture(id, key),
      getOrder: (id) => provider.getOrder(id),
      refund: (id, key) => provider.refund(id, key),
      findRefund: (id) => provider.findRefund(id),
      // The capture in flight lands just before the expiry's cancel reaches the provider.
      cancel: async (id) => {
        await provider.capture(id, `capture-${paymentId}`);
        return provider.cancel(id);
      },
    };
    await processOf(undefined, racing).expiry.runOnce(new Date(Date.now() + 2 * HOUR_MS));
    expect(await endState(userId, paymentId)).toEqual(CREDITED);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
  });

  it('does not expire a payment whose order the provider cannot cancel, and credits it once the capture that was landing is there (then a crash)', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await bought(userId);
    const uncancellable: PaymentProvider = {
      name: provider.name,
      createOrder: (request) => provider.createOrder(request),
      clientSecretOf: () => provider.clientSecretOf(),
      capture: (id, key) => provider.capture(id, key),
      getOrder: (id) => provider.getOrder(id),
      refund: (id, key) => provider.refund(id, key),
      findRefund: (id) => provider.findRefund(id),
      cancel: (id) => provider.getOrder(id),
    };
    const node = processOf(undefined, uncancellable);
    // Due, but still open at the provider: expiring it would leave an order the buyer may yet pay.
    await node.expiry.runOnce(new Date(Date.now() + 2 * HOUR_MS));
    expect(await endState(userId, paymentId)).toEqual({ balance: 0, status: 'PENDING', order: 'created', transactions: [] });
    // The capture that was in flight lands at the provider; its process died before recording it.
    await provider.capture({ orderId }, `capture-${paymentId}`);

    expect(await node.reconciliation.runOnce(new Date())).toMatchObject({ failed: 0 });
    expect(await endState(userId, paymentId)).toEqual(CREDITED);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
  });

  it('debits a payment refunded at the provider without a request of ours', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await captured(userId);
    await provider.refund({ orderId }, 'operator-refund');
    await processOf().reconciliation.runOnce(new Date());
    expect(await endState(userId, paymentId)).toEqual(REFUNDED);
  });

  it('credits once when two overlapping runs (two processes) race ten captures of a payment the provider captured after a crash', async () => {
    const userId = randomUUID();
    const { paymentId } = await bought(userId);
    await expect(processOf('capture:after-provider-capture').workflow.capture(paymentId, context())).rejects.toThrow(SimulatedCrash);
    const [runs, captures] = await Promise.all([
      Promise.all([processOf().reconciliation.runOnce(new Date()), processOf().reconciliation.runOnce(new Date())]),
      Promise.all(Array.from({ length: 10 }, () => http().post(`/v1/payments/${paymentId}/capture`).send())),
    ]);
    expect(runs.map((run) => [run.failed, run.unresolved])).toEqual([[0, 0], [0, 0]]);
    expect(captures.map((answer) => [answer.status, answer.body.payment?.status])).toEqual(Array.from({ length: 10 }, () => [200, 'COMPLETED']));
    expect(await endState(userId, paymentId)).toEqual(CREDITED);
    expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
  });

  it('debits once when two overlapping runs race five usages of 10 on a payment refunded at the provider without a request of ours', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await captured(userId);
    await provider.refund({ orderId }, 'operator-refund');
    const [runs, usages] = await Promise.all([
      Promise.all([processOf().reconciliation.runOnce(new Date()), processOf().reconciliation.runOnce(new Date())]),
      Promise.all(Array.from({ length: 5 }, () => http().post(`/v1/accounts/${userId}/usage`).send({ amount: 10 }))),
    ]);
    expect(runs.map((run) => run.failed)).toEqual([0, 0]);
    // A usage that lands after the refund finds nothing left: refused, not spent.
    expect(usages.filter((answer) => answer.status !== 201).map((answer) => [answer.status, answer.body.code])).toEqual(
      usages.filter((answer) => answer.status !== 201).map(() => [409, 'INSUFFICIENT_BALANCE']),
    );
    const spent = usages.filter((answer) => answer.status === 201).length * 10;
    const state = await endState(userId, paymentId);
    // The refund takes what the usages left of the purchase, once: every token spent or refunded, once.
    const refunded = -(state.transactions.find(([type]) => type === 'refund')?.[1] ?? 0);
    expect({ status: state.status, order: state.order, balance: state.balance, refunded }).toEqual({ status: 'REFUNDED', order: 'refunded', balance: 0, refunded: 100 - spent });
    const types = await eventTypes(userId);
    expect([types.filter((type) => type === 'PaymentRefunded').length, types.filter((type) => type === 'TokensRefunded').length]).toEqual([1, 1]);
  });

  it('reports, and leaves alone, a disagreement no rule settles', async () => {
    const userId = randomUUID();
    const { paymentId, orderId } = await captured(userId);
    // The provider lost the capture (it cannot happen with a real one): tokens without money.
    await testApp.database.pool.query(`UPDATE mock_provider_orders SET status = 'created' WHERE order_id = $1`, [orderId]);
    const problems: string[] = [];
    const job = new PaymentReconciliationJob(testApp.database.pool, processOf().workflow, { lookbackMs: LOOKBACK_MS }, (id, problem) => problems.push(`${id}: ${problem.kind === 'unresolved' ? problem.why : String(problem.error)}`));
    const run = await job.runOnce(new Date());
    expect(run.unresolved).toBeGreaterThanOrEqual(1);
    expect(problems).toContain(`${paymentId}: payment ${paymentId} is COMPLETED but its order is created at the provider`);
    expect(await endState(userId, paymentId)).toEqual({ ...CREDITED, order: 'created' });
    await testApp.database.pool.query(`UPDATE mock_provider_orders SET status = 'captured' WHERE order_id = $1`, [orderId]);
  });

  it(`pages through every payment to settle, more than one page (${RECONCILIATION_PAGE_SIZE}) of them`, async () => {
    const node = processOf();
    const users = Array.from({ length: RECONCILIATION_PAGE_SIZE + 5 }, () => randomUUID());
    const payments: string[] = [];
    for (const userId of users) {
      const { paymentId, orderId } = await node.workflow.initiate(userId, 'starter', context());
      await provider.capture({ orderId }, `capture-${paymentId}`);
      payments.push(paymentId);
    }
    const run = await node.reconciliation.runOnce(new Date());
    expect(run.examined).toBeGreaterThan(RECONCILIATION_PAGE_SIZE);
    expect(run.settled).toBeGreaterThanOrEqual(users.length);
    const balances = await testApp.database.pool.query<{ balance: string }>('SELECT balance::text FROM user_tokens WHERE user_id = ANY($1::uuid[])', [users]);
    expect(balances.rows.map((row) => Number(row.balance))).toEqual(users.map(() => 100));
    const statuses = await testApp.database.pool.query<{ status: string }>('SELECT DISTINCT status FROM payments WHERE id = ANY($1::uuid[])', [payments]);
    expect(statuses.rows).toEqual([{ status: 'COMPLETED' }]);
  });
});

describe('the expiry job', () => {
  it(`pages through every due payment, more than one page (${EXPIRY_PAGE_SIZE}) of them`, async () => {
    const node = processOf();
    const payments: string[] = [];
    for (let index = 0; index < EXPIRY_PAGE_SIZE + 5; index += 1) payments.push((await node.workflow.initiate(randomUUID(), 'starter', context())).paymentId);
    const run = await node.expiry.runOnce(new Date(Date.now() + 2 * HOUR_MS));
    expect(run.examined).toBeGreaterThan(EXPIRY_PAGE_SIZE);
    expect(run.failed).toBe(0);
    const statuses = await testApp.database.pool.query<{ status: string; error: string }>(`SELECT DISTINCT status, metadata->>'error' AS error FROM payments WHERE id = ANY($1::uuid[])`, [payments]);
    expect(statuses.rows).toEqual([{ status: 'FAILED', error: 'Payment timed out' }]);
  });

  it('pages by expiry then id, so payments sharing one expiry instant are all examined', async () => {
    const node = processOf();
    const payments: string[] = [];
    for (let index = 0; index < 7; index += 1) payments.push((await node.workflow.initiate(randomUUID(), 'starter', context())).paymentId);
    // The same instant for all: a keyset on the expiry alone would skip the rest of a page boundary.
    await testApp.database.pool.query(`UPDATE payments SET expires_at = '2026-01-01T00:00:00Z' WHERE id = ANY($1::uuid[])`, [payments]);
    const job = new PaymentExpiryJob(testApp.database.pool, node.workflow, () => undefined, 3);
    await job.runOnce(new Date(Date.now() + 2 * HOUR_MS));
    const pending = await testApp.database.pool.query('SELECT 1 FROM payments WHERE id = ANY($1::uuid[]) AND status = $2', [payments, 'PENDING']);
    expect(pending.rowCount).toBe(0);
  });
});
