import { AsyncLocalStorage } from 'node:async_hooks';
import { Logger, type LoggerService } from '@nestjs/common';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import { createPool } from './database.module.js';

/**
 * A pool's connection opened while a request ran keeps that request's async context in its socket's
 * events; its loss, later, is no part of the request. The service's logger reads the request id from
 * such a context (AsyncLocalStorage), so the pool's warnings must run outside it.
 */
describe('createPool', () => {
  let database: TestDatabase;
  const request = new AsyncLocalStorage<{ readonly requestId: string }>();
  const warnings: { readonly message: string; readonly requestId: string | undefined }[] = [];
  const recorder: LoggerService = {
    log: () => undefined,
    error: () => undefined,
    warn: (message: unknown) => warnings.push({ message: String(message), requestId: request.getStore()?.requestId }),
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    Logger.overrideLogger(recorder);
  });

  afterAll(async () => {
    Logger.overrideLogger(false);
    await database.drop();
  });

  it.each([
    ['an idle connection', false],
    ['a checked-out connection', true],
  ])('logs the loss of %s opened during a request outside that request', async (_name, checkedOut) => {
    const pool = createPool({ url: database.url, poolSizeMax: 2 });
    warnings.length = 0;
    const client = await request.run({ requestId: 'request-1' }, async () => {
      const opened = await pool.connect();
      await opened.query('SELECT 1');
      return opened;
    });
    try {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      if (!checkedOut) client.release();
      const killer = new pg.Client({ connectionString: database.url });
      await killer.connect();
      await killer.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]).finally(() => killer.end());
      for (const deadline = Date.now() + 5_000; warnings.length === 0 && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(warnings.length).toBeGreaterThan(0);
      expect(warnings).toEqual(warnings.map(() => ({ message: expect.stringContaining('connection lost'), requestId: undefined })));
    } finally {
      if (checkedOut) client.release(true);
      await pool.end();
    }
  });
});
