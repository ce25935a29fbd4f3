import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CommandActor } from '@app/event-sourcing';
import { loadAuthConfig, mintToken, resolveAuthSettings, type Role } from '@app/auth';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { pino } from 'pino';
import request from 'supertest';
import { createApp } from '../../apps/api/src/create-app.js';
import { loadConfig } from '../../apps/api/src/config/app.config.js';
import { createTestDatabase, type TestDatabase } from './test-database.js';

/** The HS256 secret the test applications verify with (the service's own verifier, not a stub). */
export const TEST_JWT_SECRET = 'token-ledger-test-secret-0123456789abcdef';
/** The actor of commands a test issues directly (not through HTTP). */
export const TEST_ACTOR: CommandActor = { subject: 'test', role: 'system', kind: 'test' };
/** The admin `http()` speaks as: one subject for every instance, as a client retrying on another instance is still itself. */
/**
 * DATA_DIR of test apps: the development secrets (the audit signing key) are created there once and
 * reused, outside the worktree. Tests that check a bundle offline read the key from here.
 */
export const TEST_DATA_DIR = path.join(tmpdir(), 'token-ledger-test-data');
export const TEST_ADMIN_SUBJECT = '00000000-0000-4000-8000-00000000ad01';
const ROLES_CLAIM = 'app_metadata.roles';

type Agent = ReturnType<typeof request.agent>;

export type TestApp = {
  readonly app: NestFastifyApplication;
  readonly database: TestDatabase;
  /** Requests as an admin (every endpoint allowed): for tests about something other than access. */
  readonly http: () => Agent;
  /** Requests with no credentials. */
  readonly anonymous: () => ReturnType<typeof request>;
  /** Requests with a token for `role` and subject `sub` (a fresh UUID by default). */
  as(role: Role, sub?: string): Promise<Agent>;
  close(): Promise<void>;
};

/** A token the test applications accept. */
export function testToken(role: Role, sub: string = randomUUID(), ttl: number | string = '1h'): Promise<string> {
  return mintToken({ role, sub, ttl, secret: TEST_JWT_SECRET, rolesClaim: ROLES_CLAIM });
}

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
 * closing it stops the app only; the database stays for the next instance. `clock`: the time its
 * token-account commands are decided at (the system's when not given), for races at an exact instant.
 */
export async function startTestAppOn(database: TestDatabase, environment: NodeJS.ProcessEnv = {}, options: { readonly clock?: () => Date } = {}): Promise<TestApp> {
  // Rate limits off unless a test turns them on: suites send many requests from one address.
  const settings = { LOG_LEVEL: 'silent', NODE_ENV: 'test', AUTH_JWT_SECRET: TEST_JWT_SECRET, DATA_DIR: path.join(tmpdir(), 'token-ledger-test-data'), RATE_LIMIT_ENABLED: 'false', ...environment };
  const config = loadConfig(settings);
  const auth = await resolveAuthSettings(loadAuthConfig(settings));
  const app = await createApp({ config, databaseUrl: database.url, logger: pino({ level: 'silent' }), openApiUi: false, auth, ...(options.clock === undefined ? {} : { clock: options.clock }) });
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  const adminToken = await testToken('admin', TEST_ADMIN_SUBJECT);
  const as = async (role: Role, sub?: string): Promise<Agent> => request.agent(app.getHttpServer()).set('authorization', `Bearer ${await testToken(role, sub)}`);
  return {
    app,
    database,
    http: () => request.agent(app.getHttpServer()).set('authorization', `Bearer ${adminToken}`),
    anonymous: () => request(app.getHttpServer()),
    as,
    async close() {
      await app.close();
    },
  };
}
