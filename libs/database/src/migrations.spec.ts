import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrateDatabase, pendingMigrations } from './migrations.js';

const ADMIN_URL_VARIABLE = 'TOKEN_LEDGER_TEST_ADMIN_URL';

async function adminQuery(sql: string): Promise<void> {
  const adminUrl = process.env[ADMIN_URL_VARIABLE];
  if (adminUrl === undefined) throw new Error('the Jest global setup did not run: no test PostgreSQL');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

describe('migrateDatabase', () => {
  it('lets instances that start together all succeed on an empty database: each migration applied once', async () => {
    const name = `token_ledger_test_empty_${randomBytes(6).toString('hex')}`;
    await adminQuery(`CREATE DATABASE ${name}`);
    const url = new URL(process.env[ADMIN_URL_VARIABLE] as string);
    url.pathname = `/${name}`;
    const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
    try {
      const starts = await Promise.allSettled([migrateDatabase(url.toString()), migrateDatabase(url.toString()), migrateDatabase(url.toString())]);
      expect(starts.map((start) => start.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
      expect(await pendingMigrations(pool)).toEqual([]);
      const repeated = await pool.query('SELECT name FROM pgmigrations GROUP BY name HAVING count(*) > 1');
      expect(repeated.rows).toEqual([]);
    } finally {
      await pool.end();
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  }, 120_000);
});
