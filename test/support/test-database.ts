import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createPool } from '@app/database';

// Set by test/support/global-setup.js.
const TEMPLATE_DATABASE = 'token_ledger_test_template';
const ADMIN_URL_VARIABLE = 'TOKEN_LEDGER_TEST_ADMIN_URL';

export type TestDatabase = {
  readonly url: string;
  readonly pool: pg.Pool;
  /** Drops the database; call in afterAll. */
  drop(): Promise<void>;
};

/** A fresh, migrated database for one test file, cloned from the run's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = testAdminUrl();
  const name = `token_ledger_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DATABASE}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const pool = createPool({ url: url.toString(), poolSizeMax: 20 });
  return {
    url: url.toString(),
    pool,
    async drop() {
      await pool.end();
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** The test PostgreSQL's administrator connection string, set by the Jest global setup. */
export function testAdminUrl(): string {
  const adminUrl = process.env[ADMIN_URL_VARIABLE];
  if (adminUrl === undefined) throw new Error('the Jest global setup did not run: no test PostgreSQL');
  return adminUrl;
}

/** Runs one statement as the test PostgreSQL's administrator (CREATE DATABASE, DROP DATABASE). */
export async function adminQuery(adminUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
