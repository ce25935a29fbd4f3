import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { pino } from 'pino';
import request from 'supertest';
import { createApp } from '../../apps/api/src/create-app.js';
import { loadConfig } from '../../apps/api/src/config/app.config.js';
import { createTestDatabase, type TestDatabase } from './test-database.js';

/**
 * DATA_DIR of test apps: the development secrets (the audit signing key) are created there once and
 * reused, outside the worktree. Tests that check a bundle offline read the key from here.
 */
export const TEST_DATA_DIR = join(tmpdir(), 'token-ledger-test-data');

export type TestApp = {
  readonly app: NestFastifyApplication;
  readonly database: TestDatabase;
  readonly http: () => ReturnType<typeof request>;
  close(): Promise<void>;
};

/** The real application (same wiring as the service) on its own fresh database. */
export async function startTestApp(environment: NodeJS.ProcessEnv = {}): Promise<TestApp> {
  const database = await createTestDatabase();
  const instance = await startTestAppOn(database, environment);
  return {
    ...instance,
    async close() {
      await instance.close();
      await database.drop();
    },
  };
}

/**
 * Another instance of the application on an EXISTING database (a restart, or a second process):
 * closing it stops the app only; the database stays for the next instance.
 */
export async function startTestAppOn(database: TestDatabase, environment: NodeJS.ProcessEnv = {}): Promise<TestApp> {
  const config = loadConfig({ LOG_LEVEL: 'silent', DATA_DIR: TEST_DATA_DIR, ...environment });
  const app = await createApp({ config, databaseUrl: database.url, logger: pino({ level: 'silent' }), openApiUi: false });
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return {
    app,
    database,
    http: () => request(app.getHttpServer()),
    async close() {
      await app.close();
    },
  };
}
