import { LeaderElection } from '@app/database';
import { createTestDatabase, type TestDatabase } from '../../../../../test/support/test-database.js';
import { IdempotencyPurgeJob } from './idempotency-purge.job.js';
import type { IdempotencyStore } from './idempotency.store.js';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database.drop();
});

describe('IdempotencyPurgeJob', () => {
  it('purges as soon as its process leads, not an hour later: a leader replaced more often than hourly still purges', async () => {
    let purges = 0;
    const store = { purge: () => Promise.resolve(void (purges += 1)).then(() => 0) } as unknown as IdempotencyStore;
    const job = new IdempotencyPurgeJob(new LeaderElection(database.url), store, true);
    await job.onApplicationBootstrap();
    try {
      const deadline = Date.now() + 10_000;
      while (purges === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(purges).toBe(1);
    } finally {
      await job.beforeApplicationShutdown();
    }
  });
});
