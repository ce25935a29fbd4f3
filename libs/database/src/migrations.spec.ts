import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { adminQuery, testAdminUrl } from '../../../test/support/test-database.js';
import { migrateDatabase, pendingMigrations } from './migrations.js';

describe('migrateDatabase', () => {
  it('lets instances that start together all succeed on an empty database: each migration applied once', async () => {
    const name = `token_ledger_test_empty_${randomBytes(6).toString('hex')}`;
    await adminQuery(testAdminUrl(), `CREATE DATABASE ${name}`);
    const url = new URL(testAdminUrl());
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
      await adminQuery(testAdminUrl(), `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  }, 120_000);
});
