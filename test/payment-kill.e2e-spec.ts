import { randomUUID } from 'node:crypto';
import type { PaymentFaultPoint } from '@app/payments';
import { DEVELOPMENT_WEBHOOK_SECRET } from '../apps/api/src/config/app.config.js';
import { signWebhook } from '../apps/api/src/payments/webhook-signature.guard.js';
import { killableService } from './support/killable-service.js';
import { stopServices, type ServiceProcess } from './support/service-process.js';
import { FakeStripeServer } from './support/fake-stripe/fake-stripe-server.js';
import { testToken } from './support/test-app.js';

/**
 * The built service killed with SIGKILL at a point of a payment flow (`PAYMENT_CRASH_AT`, accepted
 * only with NODE_ENV=test) between a provider call and the append after it: no handler runs, nothing
 * is flushed. The restarted service's reconciliation job (its own leader, every 200 ms here) then
 * ends the payment exactly: balance, payment row, the provider's order, the history, and the
 * auditor's verify (a job's first run is at its process's lead: the first test's restart waits an
 * hour between runs and is still mended at once).
 */
const killed = killableService('payment-kill', { PAYMENT_RECONCILIATION_INTERVAL_MS: '200' });
const start = (environment: Record<string, string>): Promise<ServiceProcess> => killed.start(environment);
let service: string;
let admin: string;
let auditor: string;

beforeAll(async () => {
  [service, admin, auditor] = await Promise.all([testToken('service'), testToken('admin'), testToken('auditor')]).then((tokens) => tokens.map((token) => `Bearer ${token}`));
});

async function call(child: ServiceProcess, method: string, route: string, authorization: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${child.url}${route}`, {
    method,
    headers: { authorization, ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** Sends the request the process dies in: it gets no answer, and the process ends by SIGKILL. */
async function dieDuring(child: ServiceProcess, route: string, authorization: string, body?: unknown, headers: Record<string, string> = {}): Promise<void> {
  await expect(call(child, 'POST', route, authorization, body, headers)).rejects.toThrow();
  await child.exited;
  expect(child.process.signalCode).toBe('SIGKILL');
}

async function providerOrder(paymentId: string): Promise<{ status: string; capture_idempotency_key: string | null; refund_idempotency_key: string | null }> {
  const result = await killed.database().pool.query<{ status: string; capture_idempotency_key: string | null; refund_idempotency_key: string | null }>(
    'SELECT status, capture_idempotency_key, refund_idempotency_key FROM mock_provider_orders WHERE payment_id = $1',
    [paymentId],
  );
  return result.rows[0] ?? { status: 'absent', capture_idempotency_key: null, refund_idempotency_key: null };
}

async function paymentSettled(child: ServiceProcess, paymentId: string, status: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const payment = await call(child, 'GET', `/v1/payments/${paymentId}`, service);
    if (payment.body.status === status || Date.now() > deadline) return payment.body;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function history(child: ServiceProcess, userId: string): Promise<[string, number][]> {
  const page = await call(child, 'GET', `/v1/accounts/${userId}/transactions?limit=100`, service);
  return (page.body.data as { transactionType: string; amount: number }[]).reverse().map((row) => [row.transactionType, row.amount]);
}

async function verified(child: ServiceProcess, userId: string): Promise<void> {
  const verify = await call(child, 'GET', `/v1/audit/accounts/${userId}/verify`, auditor);
  expect(verify.body).toMatchObject({ ok: true, readModels: { differences: [], replayError: null } });
}

/** The types of a user's events, in stream order. */
/** Runs `test` against a fake Stripe of its own, with the service's settings for it and `settings`; the fake stopped after. */
async function withFakeStripe(settings: Record<string, string>, test: (fake: FakeStripeServer, stripe: Record<string, string>) => Promise<void>): Promise<void> {
  const fake = new FakeStripeServer();
  await fake.start();
  try {
    await test(fake, { PAYMENT_PROVIDER: 'stripe', STRIPE_SECRET_KEY: fake.secretKey, STRIPE_WEBHOOK_SECRET: fake.webhookSecret, STRIPE_API_URL: fake.url, ...settings });
  } finally {
    await fake.stop();
  }
}

/** The account as the restarted service ends it: its balance answer and history exactly these, its read models verified; then the service stopped. */
async function endsAs(child: ServiceProcess, userId: string, balance: Record<string, unknown>, rows: [string, number][]): Promise<void> {
  expect((await call(child, 'GET', `/v1/accounts/${userId}/balance`, service)).body).toEqual({ userId, ...balance });
  expect(await history(child, userId)).toEqual(rows);
  await verified(child, userId);
  await stopServices([child]);
}

async function eventTypesOf(userId: string): Promise<string[]> {
  const events = await killed.database().pool.query<{ event_type: string }>('SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_revision', [`token-account-${userId}`]);
  return events.rows.map((row) => row.event_type);
}

/** The provider's orders of a user's payments (through the payment index the flow writes before it asks for one), and the user's events. */
async function ordersAndEvents(userId: string): Promise<{ orders: { payment_id: string; status: string }[]; events: string[] }> {
  const orders = await killed.database().pool.query<{ payment_id: string; status: string }>(
    'SELECT orders.payment_id, orders.status FROM payment_streams JOIN mock_provider_orders AS orders USING (payment_id) WHERE payment_streams.user_id = $1 ORDER BY orders.created_at',
    [userId],
  );
  return { orders: orders.rows, events: await eventTypesOf(userId) };
}

describe('SIGKILL inside a payment flow, then a restart', () => {
  it('initiate:after-create-order with an Idempotency-Key: the retries after the restart open the payment of the order the dead process asked for, once, and it captures once', async () => {
    const userId = randomUUID();
    const key = { 'idempotency-key': randomUUID() };
    let child = await start({ PAYMENT_CRASH_AT: 'initiate:after-create-order' satisfies PaymentFaultPoint });
    await dieDuring(child, '/v1/payments', service, { userId, packageId: 'starter' }, key);
    const orphan = await ordersAndEvents(userId);
    expect(orphan).toEqual({ orders: [{ payment_id: expect.any(String) as unknown, status: 'created' }], events: [] });

    child = await start({});
    // The retry sent five times at once: one opens the payment, the others answer as it did (or are told it is in progress).
    const retries = await Promise.all(Array.from({ length: 5 }, () => call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' }, key)));
    for (const retry of retries) {
      if (retry.status === 201) expect(retry.body).toMatchObject({ paymentId: orphan.orders[0]?.payment_id, status: 'PENDING' });
      else expect({ status: retry.status, code: retry.body.code }).toEqual({ status: 409, code: 'IDEMPOTENCY_KEY_IN_PROGRESS' });
    }
    const opened = await call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' }, key);
    expect(opened).toMatchObject({ status: 201, body: { paymentId: orphan.orders[0]?.payment_id, status: 'PENDING' } });
    const paymentId = opened.body.paymentId as string;
    expect(await ordersAndEvents(userId)).toEqual({ orders: [{ payment_id: paymentId, status: 'created' }], events: ['PaymentInitiated'] });

    expect((await call(child, 'POST', `/v1/payments/${paymentId}/capture`, service)).status).toBe(200);
    expect(await ordersAndEvents(userId)).toEqual({ orders: [{ payment_id: paymentId, status: 'captured' }], events: ['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased'] });
    await endsAs(child, userId, { balance: 100, held: 0, available: 100, nextExpiry: null }, [['purchase', 100]]);
  }, 120_000);

  it('initiate:after-create-order without an Idempotency-Key: the order the dead process asked for is left unopened, and counts against nothing', async () => {
    const userId = randomUUID();
    let child = await start({ PAYMENT_CRASH_AT: 'initiate:after-create-order' satisfies PaymentFaultPoint });
    await dieDuring(child, '/v1/payments', service, { userId, packageId: 'starter' });
    const orphan = await ordersAndEvents(userId);
    expect(orphan).toEqual({ orders: [{ payment_id: expect.any(String) as unknown, status: 'created' }], events: [] });
    const orphanId = orphan.orders[0]?.payment_id ?? '';

    child = await start({});
    // No payment was opened: the order cannot be captured, and the user may open as many payments as anyone.
    expect(await call(child, 'POST', `/v1/payments/${orphanId}/capture`, service)).toMatchObject({ status: 404, body: { code: 'PAYMENT_NOT_FOUND' } });
    const opened = await Promise.all(Array.from({ length: 10 }, () => call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' })));
    expect(opened.map((each) => each.status)).toEqual(Array.from({ length: 10 }, () => 201));
    const after = await ordersAndEvents(userId);
    expect(after.orders).toHaveLength(11);
    expect(after.orders.find((order) => order.payment_id === orphanId)).toEqual({ payment_id: orphanId, status: 'created' });
    expect(after.events).toEqual(Array.from({ length: 10 }, () => 'PaymentInitiated'));
    expect((await call(child, 'GET', `/v1/accounts/${userId}/balance`, service)).body).toEqual({ userId, balance: 0, held: 0, available: 0, nextExpiry: null });
    await verified(child, userId);
    await stopServices([child]);
  }, 120_000);

  it('capture:after-provider-capture: the money the provider took is credited once by the restarted service', async () => {
    const userId = randomUUID();
    let child = await start({ PAYMENT_CRASH_AT: 'capture:after-provider-capture' satisfies PaymentFaultPoint });
    const created = await call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' });
    const paymentId = created.body.paymentId as string;
    await dieDuring(child, `/v1/payments/${paymentId}/capture`, service);
    expect(await providerOrder(paymentId)).toMatchObject({ status: 'captured', capture_idempotency_key: `capture-${paymentId}` });

    // An hour between reconciliation runs: the run at the restarted process's lead credits it, at once.
    child = await start({ PAYMENT_RECONCILIATION_INTERVAL_MS: '3600000' });
    expect(await paymentSettled(child, paymentId, 'COMPLETED')).toMatchObject({ status: 'COMPLETED', providerTransactionId: `MOCK-CAPTURE-${paymentId}` });
    await endsAs(child, userId, { balance: 100, held: 0, available: 100, nextExpiry: null }, [['purchase', 100]]);
  }, 120_000);

  it.each(['refund:after-intent', 'refund:after-provider-refund'] satisfies PaymentFaultPoint[])('%s: the refund is finished once by the restarted service', async (point) => {
    const userId = randomUUID();
    let child = await start({ PAYMENT_CRASH_AT: point });
    const created = await call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' });
    const paymentId = created.body.paymentId as string;
    expect((await call(child, 'POST', `/v1/payments/${paymentId}/capture`, service)).status).toBe(200);
    await dieDuring(child, `/v1/payments/${paymentId}/refund`, admin);
    expect((await providerOrder(paymentId)).status).toBe(point === 'refund:after-intent' ? 'captured' : 'refunded');

    child = await start({});
    expect(await paymentSettled(child, paymentId, 'REFUNDED')).toMatchObject({ status: 'REFUNDED', metadata: { providerRefundId: `MOCK-REFUND-${paymentId}`, tokensDebited: 100 } });
    expect((await call(child, 'GET', `/v1/accounts/${userId}/balance`, service)).body).toEqual({ userId, balance: 0, held: 0, available: 0, nextExpiry: null });
    expect(await history(child, userId)).toEqual([
      ['purchase', 100],
      ['refund', -100],
    ]);
    expect(await providerOrder(paymentId)).toEqual({ status: 'refunded', capture_idempotency_key: `capture-${paymentId}`, refund_idempotency_key: `refund-${paymentId}` });
    await verified(child, userId);
    await stopServices([child]);
  }, 120_000);

  it('refund:after-intent, then reconcile:after-provider-refund in the restarted service: the refund the reconciliation made at the provider before dying is recorded once by the next restart, racing refund retries and spends', async () => {
    const userId = randomUUID();
    let child = await start({ PAYMENT_CRASH_AT: 'refund:after-intent' satisfies PaymentFaultPoint });
    const created = await call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' });
    const paymentId = created.body.paymentId as string;
    expect((await call(child, 'POST', `/v1/payments/${paymentId}/capture`, service)).status).toBe(200);
    await dieDuring(child, `/v1/payments/${paymentId}/refund`, admin);
    expect((await providerOrder(paymentId)).status).toBe('captured');

    // The restarted service's reconciliation refunds at the provider and dies before recording it.
    // Under load the kill may come before the process logs that it listens: start() then reports it exited early.
    const crashing = await start({ PAYMENT_CRASH_AT: 'reconcile:after-provider-refund' satisfies PaymentFaultPoint }).catch((error: unknown) => {
      expect(String(error)).toContain('the service exited early (SIGKILL)');
      return undefined;
    });
    if (crashing !== undefined) {
      await crashing.exited;
      expect(crashing.process.signalCode).toBe('SIGKILL');
    }
    expect(await providerOrder(paymentId)).toEqual({ status: 'refunded', capture_idempotency_key: `capture-${paymentId}`, refund_idempotency_key: `refund-${paymentId}` });
    expect(await eventTypesOf(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased', 'PaymentRefundRequested']);

    // The next restart records it once, while the admin asks again and the client spends (the tokens are reserved: refused).
    child = await start({});
    const [retries, spends] = await Promise.all([
      Promise.all(Array.from({ length: 5 }, async () => (await call(child, 'POST', `/v1/payments/${paymentId}/refund`, admin)).status)),
      Promise.all(Array.from({ length: 5 }, async () => (await call(child, 'POST', `/v1/accounts/${userId}/usage`, service, { amount: 1 })).status)),
    ]);
    expect(spends).toEqual([409, 409, 409, 409, 409]);
    expect(retries).toEqual([200, 200, 200, 200, 200]);
    expect(await paymentSettled(child, paymentId, 'REFUNDED')).toMatchObject({ status: 'REFUNDED', metadata: { providerRefundId: `MOCK-REFUND-${paymentId}`, tokensDebited: 100 } });
    expect(await eventTypesOf(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased', 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded']);
    await endsAs(child, userId, { balance: 0, held: 0, available: 0, nextExpiry: null }, [
      ['purchase', 100],
      ['refund', -100],
    ]);
  }, 120_000);

  it('reconcile:after-provider-order in a mock webhook delivery: the delivery sent again, racing itself and captures, credits once', async () => {
    // No reconciliation job: the provider's notification alone must end the payment.
    const noJobs = { PAYMENT_JOBS_ENABLED: 'false' };
    const userId = randomUUID();
    let child = await start({ ...noJobs, PAYMENT_CRASH_AT: 'capture:after-provider-capture' satisfies PaymentFaultPoint });
    const created = await call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' });
    const paymentId = created.body.paymentId as string;
    const orderId = created.body.orderId as string;
    await dieDuring(child, `/v1/payments/${paymentId}/capture`, service);
    expect((await providerOrder(paymentId)).status).toBe('captured');

    // The provider's notification reaches a service that dies handling it, after reading the order, before recording anything.
    child = await start({ ...noJobs, PAYMENT_CRASH_AT: 'reconcile:after-provider-order' satisfies PaymentFaultPoint });
    const body = JSON.stringify({ id: `evt_${randomUUID()}`, type: 'order.captured', orderId, paymentId });
    const deliver = (to: ServiceProcess) =>
      fetch(`${to.url}/v1/payments/webhooks/mock`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-signature': signWebhook(DEVELOPMENT_WEBHOOK_SECRET, body) }, body });
    await expect(deliver(child)).rejects.toThrow();
    await child.exited;
    expect(child.process.signalCode).toBe('SIGKILL');

    child = await start(noJobs);
    expect((await call(child, 'GET', `/v1/payments/${paymentId}`, service)).body).toMatchObject({ status: 'PENDING' });
    const [deliveries, captures] = await Promise.all([
      Promise.all(Array.from({ length: 10 }, async () => (await deliver(child)).status)),
      Promise.all(Array.from({ length: 10 }, async () => {
        const captured = await call(child, 'POST', `/v1/payments/${paymentId}/capture`, service);
        return [captured.status, (captured.body.payment as { status?: string } | undefined)?.status];
      })),
    ]);
    expect(deliveries).toEqual(Array.from({ length: 10 }, () => 200));
    expect(captures).toEqual(Array.from({ length: 10 }, () => [200, 'COMPLETED']));
    expect((await call(child, 'GET', `/v1/accounts/${userId}/balance`, service)).body).toEqual({ userId, balance: 100, held: 0, available: 100, nextExpiry: null });
    expect(await history(child, userId)).toEqual([['purchase', 100]]);
    expect(await eventTypesOf(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
    const recorded = await killed.database().pool.query<{ count: string }>("SELECT count(*)::text AS count FROM payment_webhook_deliveries WHERE provider = 'mock' AND payment_id = $1", [paymentId]);
    expect(recorded.rows).toEqual([{ count: '1' }]);
    await verified(child, userId);
    await stopServices([child]);
  }, 120_000);

  it('the payment jobs killed mid-run (reconcile:after-provider-order): every payment past its time expires once after the restart, its order canceled, while captures race the run', async () => {
    const count = 20;
    // Opened with a one-second time to live by a process that runs no jobs.
    let child = await start({ PAYMENT_JOBS_ENABLED: 'false', PAYMENT_PENDING_TTL: '1s' });
    const opened = await Promise.all(
      Array.from({ length: count }, async () => {
        const userId = randomUUID();
        const created = await call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' });
        expect(created.status).toBe(201);
        return { userId, paymentId: created.body.paymentId as string };
      }),
    );
    await stopServices([child]);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    // The expiry job asks the provider about the first of them and the process dies there (the reconciliation job, hourly here, does not run first);
    // its first run a second after the start, so the process is listening first, as start() waits for.
    // Under load the kill may come before the process logs that it listens: start() then reports it exited early.
    const crashing = await start({ PAYMENT_JOB_INTERVAL_MS: '1000', PAYMENT_RECONCILIATION_INTERVAL_MS: '3600000', PAYMENT_CRASH_AT: 'reconcile:after-provider-order' satisfies PaymentFaultPoint }).catch(
      (error: unknown) => {
        expect(String(error)).toContain('the service exited early (SIGKILL)');
        return undefined;
      },
    );
    if (crashing !== undefined) {
      await crashing.exited;
      expect(crashing.process.signalCode).toBe('SIGKILL');
    }
    const expiredBefore = await killed.database().pool.query<{ count: string }>("SELECT count(*)::text AS count FROM payments WHERE id = ANY($1) AND status = 'FAILED'", [opened.map((each) => each.paymentId)]);
    // The run handles one payment at a time and died asking the provider about the first: nothing was recorded.
    expect(Number(expiredBefore.rows[0]?.count)).toBe(0);

    child = await start({ PAYMENT_JOB_INTERVAL_MS: '100' });
    const captures = await Promise.all(opened.map(async ({ paymentId }) => (await call(child, 'POST', `/v1/payments/${paymentId}/capture`, service)).body.code));
    expect(new Set(captures)).toEqual(new Set(['PAYMENT_EXPIRED']));
    for (const { userId, paymentId } of opened) {
      expect(await paymentSettled(child, paymentId, 'FAILED')).toMatchObject({ status: 'FAILED', metadata: expect.objectContaining({ error: 'Payment timed out' }) });
      expect(await providerOrder(paymentId)).toMatchObject({ status: 'canceled' });
      expect(await eventTypesOf(userId)).toEqual(['PaymentInitiated', 'PaymentExpired']);
      expect((await call(child, 'GET', `/v1/accounts/${userId}/balance`, service)).body).toEqual({ userId, balance: 0, held: 0, available: 0, nextExpiry: null });
      await verified(child, userId);
    }
    await stopServices([child]);
  }, 120_000);

  it('the payment expiry job killed by SIGKILL part-way through its pages, twice: every payment past its time expires exactly once after the last restart, 10 to an account, while captures race the run', async () => {
    const accounts = Array.from({ length: 15 }, () => randomUUID());
    const perAccount = 10;
    const count = accounts.length * perAccount;
    let child = await start({ PAYMENT_JOBS_ENABLED: 'false', PAYMENT_PENDING_TTL: '1s' });
    const opened = (
      await Promise.all(
        accounts.map(async (userId) => {
          const ids: string[] = [];
          for (let index = 0; index < perAccount; index += 1) {
            const created = await call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' });
            expect(created.status).toBe(201);
            ids.push(created.body.paymentId as string);
          }
          return ids.map((paymentId) => ({ userId, paymentId }));
        }),
      )
    ).flat();
    await stopServices([child]);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const pool = killed.database().pool;
    const expired = async () => Number((await pool.query<{ count: string }>("SELECT count(*)::text AS count FROM events WHERE event_type = 'PaymentExpired' AND stream_id = ANY($1)", [accounts.map((userId) => `token-account-${userId}`)])).rows[0]?.count);
    // Killed once a third, then two thirds, are recorded (polled every 5 ms): inside the run, some recorded and not all.
    for (const share of [1 / 3, 2 / 3]) {
      child = await start({ PAYMENT_JOB_INTERVAL_MS: '100', PAYMENT_RECONCILIATION_INTERVAL_MS: '3600000' });
      const deadline = Date.now() + 60_000;
      while ((await expired()) < Math.ceil(count * share) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      child.process.kill('SIGKILL');
      await child.exited;
      const reached = await expired();
      expect(reached).toBeGreaterThanOrEqual(Math.ceil(count * share));
      expect(reached).toBeLessThan(count);
    }

    child = await start({ PAYMENT_JOB_INTERVAL_MS: '100' });
    const captures = await Promise.all(opened.map(async ({ paymentId }) => (await call(child, 'POST', `/v1/payments/${paymentId}/capture`, service)).body.code));
    expect(new Set(captures)).toEqual(new Set(['PAYMENT_EXPIRED']));
    const deadline = Date.now() + 60_000;
    while ((await expired()) < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const perStream = await pool.query<{ event_type: string; count: string }>(
      'SELECT event_type, count(*)::text AS count FROM events WHERE stream_id = ANY($1) GROUP BY stream_id, event_type ORDER BY event_type',
      [accounts.map((userId) => `token-account-${userId}`)],
    );
    expect(perStream.rows).toEqual([...Array.from({ length: accounts.length }, () => ({ event_type: 'PaymentExpired', count: String(perAccount) })), ...Array.from({ length: accounts.length }, () => ({ event_type: 'PaymentInitiated', count: String(perAccount) }))]);
    const payments = await pool.query<{ status: string; count: string }>('SELECT status, count(*)::text AS count FROM payments WHERE id = ANY($1) GROUP BY status', [opened.map((each) => each.paymentId)]);
    expect(payments.rows).toEqual([{ status: 'FAILED', count: String(count) }]);
    const orders = await pool.query<{ status: string; count: string }>('SELECT status, count(*)::text AS count FROM mock_provider_orders WHERE payment_id = ANY($1) GROUP BY status', [opened.map((each) => each.paymentId)]);
    expect(orders.rows).toEqual([{ status: 'canceled', count: String(count) }]);
    for (const userId of accounts.slice(0, 3)) {
      expect((await call(child, 'GET', `/v1/accounts/${userId}/balance`, service)).body).toEqual({ userId, balance: 0, held: 0, available: 0, nextExpiry: null });
      await verified(child, userId);
    }
    await stopServices([child]);
  }, 180_000);

  it('webhook:before-delivery-record with Stripe: an auto-capture and a dashboard refund whose webhooks died after their work are applied once when Stripe sends them again, racing themselves and the client', async () => {
    await withFakeStripe({ STRIPE_AUTO_CAPTURE: 'true', PAYMENT_JOBS_ENABLED: 'false' }, async (fake, stripe) => {
    const crashing = { ...stripe, PAYMENT_CRASH_AT: 'webhook:before-delivery-record' satisfies PaymentFaultPoint };
    const eventOf = (type: string, orderId: string) => {
      const found = fake.eventsOf(type, orderId).at(-1);
      if (found === undefined) throw new Error(`no ${type} event for ${orderId}`);
      return fake.signed(found);
    };
    const deliver = (to: ServiceProcess, signed: { body: string; signature: string }) =>
      fetch(`${to.url}/v1/payments/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': signed.signature }, body: signed.body });
    const dieDelivering = async (to: ServiceProcess, signed: { body: string; signature: string }) => {
      await expect(deliver(to, signed)).rejects.toThrow();
      await to.exited;
      expect(to.process.signalCode).toBe('SIGKILL');
    };
    const deliveries = async (paymentId: string) =>
      (await killed.database().pool.query<{ count: string }>("SELECT count(*)::text AS count FROM payment_webhook_deliveries WHERE provider = 'stripe' AND payment_id = $1", [paymentId])).rows[0]?.count;

    // The buyer authorises; the auto-capture webhook captures and credits, and the process dies before recording the delivery.
    const userId = randomUUID();
    let child = await start(crashing);
    const created = await call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' });
    const paymentId = created.body.paymentId as string;
    const orderId = created.body.orderId as string;
    expect(fake.confirmAsCustomer(orderId).status).toBe(200);
    const authorised = eventOf('payment_intent.amount_capturable_updated', orderId);
    await dieDelivering(child, authorised);
    expect(fake.paymentIntents.get(orderId)?.status).toBe('succeeded');
    expect(await eventTypesOf(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);

    // Stripe got no 2xx and sends the event again (here five times), while the client captures five times.
    child = await start(stripe);
    const [webhooks, captures] = await Promise.all([
      Promise.all(Array.from({ length: 5 }, async () => (await deliver(child, authorised)).status)),
      Promise.all(Array.from({ length: 5 }, async () => (await call(child, 'POST', `/v1/payments/${paymentId}/capture`, service)).status)),
    ]);
    expect({ webhooks, captures }).toEqual({ webhooks: [200, 200, 200, 200, 200], captures: [200, 200, 200, 200, 200] });
    expect(await eventTypesOf(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
    expect(await deliveries(paymentId)).toBe('1');
    await stopServices([child]);

    // An operator refunds in the dashboard; its charge.refunded webhook records the refund, and the process dies before recording the delivery.
    const refund = fake.dashboardRefund(orderId);
    const refunded = eventOf('charge.refunded', orderId);
    child = await start(crashing);
    await dieDelivering(child, refunded);
    const afterRefund = ['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased', 'PaymentRefunded', 'TokensRefunded'];
    expect(await eventTypesOf(userId)).toEqual(afterRefund);

    child = await start(stripe);
    const again = await Promise.all(Array.from({ length: 5 }, async () => (await deliver(child, refunded)).status));
    expect(again).toEqual([200, 200, 200, 200, 200]);
    expect(await eventTypesOf(userId)).toEqual(afterRefund);
    expect(await deliveries(paymentId)).toBe('2');
    expect((await call(child, 'GET', `/v1/payments/${paymentId}`, service)).body).toMatchObject({ status: 'REFUNDED', metadata: expect.objectContaining({ providerRefundId: refund.id }) });
    await endsAs(child, userId, { balance: 0, held: 0, available: 0, nextExpiry: null }, [
      ['purchase', 100],
      ['refund', -100],
    ]);
    });
  }, 120_000);

  it('dispute:after-append with Stripe: a lost dispute whose webhook died after its append is applied once when Stripe sends it again, racing spends: balance 0, the shortfall what was spent', async () => {
    await withFakeStripe({ STRIPE_AUTO_CAPTURE: 'false', PAYMENT_JOBS_ENABLED: 'false' }, async (fake, stripe) => {
    const userId = randomUUID();
    let child = await start(stripe);
    const created = await call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' });
    const paymentId = created.body.paymentId as string;
    const orderId = created.body.orderId as string;
    expect(fake.confirmAsCustomer(orderId).status).toBe(200);
    expect((await call(child, 'POST', `/v1/payments/${paymentId}/capture`, service)).status).toBe(200);
    expect((await call(child, 'POST', `/v1/accounts/${userId}/usage`, service, { amount: 70 })).status).toBe(201);
    await stopServices([child]);

    // The buyer's bank wins the dispute; its webhook records it, and the process dies before recording the delivery.
    const dispute = fake.openDispute(orderId);
    fake.closeDispute(dispute.id, 'lost');
    const found = fake.eventsOf('charge.dispute.closed', dispute.id).at(-1);
    if (found === undefined) throw new Error('no charge.dispute.closed event');
    const closed = fake.signed(found);
    const deliver = (to: ServiceProcess) =>
      fetch(`${to.url}/v1/payments/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': closed.signature }, body: closed.body });
    child = await start({ ...stripe, PAYMENT_CRASH_AT: 'dispute:after-append' satisfies PaymentFaultPoint });
    await expect(deliver(child)).rejects.toThrow();
    await child.exited;
    expect(child.process.signalCode).toBe('SIGKILL');
    const disputed = ['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased', 'TokensUsed', 'PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack'];
    expect(await eventTypesOf(userId)).toEqual(disputed);

    // Stripe got no 2xx and sends it again (five times), while the client spends ten times.
    child = await start(stripe);
    const [webhooks, spends] = await Promise.all([
      Promise.all(Array.from({ length: 5 }, async () => (await deliver(child)).status)),
      Promise.all(Array.from({ length: 10 }, async () => (await call(child, 'POST', `/v1/accounts/${userId}/usage`, service, { amount: 1 })).body.code)),
    ]);
    expect(webhooks).toEqual([200, 200, 200, 200, 200]);
    expect(new Set(spends)).toEqual(new Set(['ACCOUNT_IN_SHORTFALL']));
    expect(await eventTypesOf(userId)).toEqual(disputed);
    const deliveries = await killed.database().pool.query<{ count: string }>("SELECT count(*)::text AS count FROM payment_webhook_deliveries WHERE provider = 'stripe' AND payment_id = $1", [paymentId]);
    expect(deliveries.rows[0]?.count).toBe('1');
    await endsAs(child, userId, { balance: 0, held: 0, available: 0, nextExpiry: null, shortfall: 70 }, [
      ['purchase', 100],
      ['usage', -70],
      ['chargeback', -30],
    ]);
    });
  }, 120_000);

  it('capture:after-provider-capture with Stripe: the PaymentIntent Stripe captured is credited once by the restarted service', async () => {
    await withFakeStripe({ STRIPE_AUTO_CAPTURE: 'false' }, async (fake, stripe) => {
    const userId = randomUUID();
    let child = await start({ ...stripe, PAYMENT_CRASH_AT: 'capture:after-provider-capture' satisfies PaymentFaultPoint });
    const created = await call(child, 'POST', '/v1/payments', service, { userId, packageId: 'starter' });
    const paymentId = created.body.paymentId as string;
    const orderId = created.body.orderId as string;
    expect(fake.confirmAsCustomer(orderId).status).toBe(200);
    await dieDuring(child, `/v1/payments/${paymentId}/capture`, service);
    expect(fake.paymentIntents.get(orderId)?.status).toBe('succeeded');

    child = await start(stripe);
    expect(await paymentSettled(child, paymentId, 'COMPLETED')).toMatchObject({ status: 'COMPLETED', provider: 'stripe', providerTransactionId: fake.paymentIntents.get(orderId)?.latest_charge });
    expect(fake.eventsOf('payment_intent.succeeded', orderId)).toHaveLength(1);
    await endsAs(child, userId, { balance: 100, held: 0, available: 100, nextExpiry: null }, [['purchase', 100]]);
    });
  }, 120_000);
});
