import { randomUUID } from 'node:crypto';
import { MockPaymentProvider, PAYMENT_PROVIDER, PaymentExpiryJob } from '@app/payments';
import { createTestDatabase, type TestDatabase } from './support/test-database.js';
import { startTestAppOn, type TestApp } from './support/test-app.js';

// Each test restarts the service: one instance stops (the process "died"), a new one starts on the
// same database. The mock provider's orders are in that database, as a real provider's are elsewhere.
const ENVIRONMENT = { PAYMENT_JOBS_ENABLED: 'false' };
const HOUR_MS = 3_600_000;

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database.drop();
});

const providerOf = (instance: TestApp) => instance.app.get<MockPaymentProvider>(PAYMENT_PROVIDER, { strict: false });

async function eventTypes(userId: string): Promise<string[]> {
  const result = await database.pool.query<{ event_type: string }>('SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_revision', [`token-account-${userId}`]);
  return result.rows.map((row) => row.event_type);
}

/** Buys the starter package on `instance` and lets the provider capture it, failing the call afterwards. */
async function capturedAtProviderOnly(instance: TestApp, userId: string): Promise<string> {
  const bought = await instance.http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201);
  const { paymentId, orderId } = bought.body as { paymentId: string; orderId: string };
  await providerOf(instance).behave('error_after_capture', orderId);
  await instance.http().post(`/v1/payments/${paymentId}/capture`).send().expect(502);
  expect(await eventTypes(userId)).toEqual(['PaymentInitiated']);
  return paymentId;
}

describe('a restart between the capture at the provider and recording it', () => {
  it('credits exactly once when the client retries the capture on the restarted service', async () => {
    const userId = randomUUID();
    const before = await startTestAppOn(database, ENVIRONMENT);
    const paymentId = await capturedAtProviderOnly(before, userId);
    await before.close();

    const after = await startTestAppOn(database, ENVIRONMENT);
    try {
      expect((await providerOf(after).getOrder({ orderId: `MOCK-ORDER-${paymentId}` })).status).toBe('captured');
      const retries = await Promise.all(Array.from({ length: 10 }, () => after.http().post(`/v1/payments/${paymentId}/capture`).send()));
      for (const retry of retries) expect(retry.body).toMatchObject({ balance: 100, payment: { status: 'COMPLETED', providerTransactionId: `MOCK-CAPTURE-${paymentId}` } });
      expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
      expect((await after.http().get(`/v1/accounts/${userId}/balance`).expect(200)).body.balance).toBe(100);
    } finally {
      await after.close();
    }
  });

  it('lets the restarted service reconcile the payment (expiry job) instead of expiring money that was taken', async () => {
    const userId = randomUUID();
    const before = await startTestAppOn(database, ENVIRONMENT);
    const paymentId = await capturedAtProviderOnly(before, userId);
    await before.close();

    const after = await startTestAppOn(database, ENVIRONMENT);
    try {
      const run = await after.app.get(PaymentExpiryJob, { strict: false }).runOnce(new Date(Date.now() + 2 * HOUR_MS));
      expect(run).toEqual({ examined: 1, failed: 0 });
      expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased']);
      const captured = await after.http().post(`/v1/payments/${paymentId}/capture`).send().expect(200);
      expect(captured.body).toMatchObject({ balance: 100, payment: { status: 'COMPLETED' } });
    } finally {
      await after.close();
    }
  });

  it('captures after a restart a payment that was still PENDING at the provider', async () => {
    const userId = randomUUID();
    const before = await startTestAppOn(database, ENVIRONMENT);
    const bought = await before.http().post('/v1/payments').send({ userId, packageId: 'starter' }).expect(201);
    await before.close();

    const after = await startTestAppOn(database, ENVIRONMENT);
    try {
      const captured = await after.http().post(`/v1/payments/${bought.body.paymentId as string}/capture`).send().expect(200);
      expect(captured.body).toMatchObject({ balance: 100, payment: { status: 'COMPLETED' } });
      // And it can be refunded there, once.
      await after.http().post(`/v1/payments/${bought.body.paymentId as string}/refund`).send().expect(200);
      await after.http().post(`/v1/payments/${bought.body.paymentId as string}/refund`).send().expect(200);
      expect(await eventTypes(userId)).toEqual(['PaymentInitiated', 'PaymentCaptured', 'TokensPurchased', 'PaymentRefundRequested', 'PaymentRefunded', 'TokensRefunded']);
    } finally {
      await after.close();
    }
  });
});
