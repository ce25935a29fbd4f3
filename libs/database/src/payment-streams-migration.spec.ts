import { randomUUID } from 'node:crypto';
import { migrate, migrateDownThrough } from '../../../test/support/migrations.js';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';

/** Migration 129: purchases credited before direct purchases claimed their paymentId claim it, for the account first credited. */
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database.drop();
});

let revision = 0;

async function purchaseRow(userId: string, paymentId: string, createdAt: string): Promise<void> {
  revision += 1;
  await database.pool.query(
    `INSERT INTO token_transactions (id, user_id, amount, transaction_type, payment_id, balance_after, created_at, event_id, stream_revision)
     VALUES ($1, $2, 10, 'purchase', $3, 10, $4, $5, $6)`,
    [randomUUID(), userId, paymentId, createdAt, randomUUID(), revision],
  );
}

it('claims each credited paymentId for the account first credited, and leaves a provider payment claim as it is', async () => {
  await migrateDownThrough(database.url, '1764000000129');
  const [first, second, buyer] = [randomUUID(), randomUUID(), randomUUID()];
  const [twice, once, provider] = [randomUUID(), randomUUID(), randomUUID()];
  await purchaseRow(second, twice, '2026-11-02T00:00:00Z');
  await purchaseRow(first, twice, '2026-11-01T00:00:00Z');
  await purchaseRow(second, once, '2026-11-03T00:00:00Z');
  await database.pool.query('INSERT INTO payment_streams (payment_id, user_id) VALUES ($1, $2)', [provider, buyer]);
  await purchaseRow(buyer, provider, '2026-11-04T00:00:00Z');
  await migrate(database.url, 'up');
  const claims = await database.pool.query<{ payment_id: string; user_id: string }>('SELECT payment_id, user_id FROM payment_streams WHERE payment_id = ANY($1) ORDER BY user_id', [[twice, once, provider]]);
  expect(new Map(claims.rows.map((row) => [row.payment_id, row.user_id]))).toEqual(
    new Map([
      [twice, first],
      [once, second],
      [provider, buyer],
    ]),
  );
  await migrate(database.url, 'up', Infinity);
});
