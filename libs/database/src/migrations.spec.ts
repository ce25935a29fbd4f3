import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { migrate } from '../../../test/support/migrations.js';
import { adminQuery, createTestDatabase, testAdminUrl } from '../../../test/support/test-database.js';
import { migrateDatabase, pendingMigrations } from './migrations.js';

/** What a database's schema is: tables and columns, constraints, indexes, functions and triggers of `public`, and the migrations recorded. */
async function schemaOf(pool: pg.Pool): Promise<string[]> {
  const result = await pool.query<{ line: string }>(
    `SELECT format('column %s.%s %s %s %s', table_name, column_name, data_type, is_nullable, column_default) AS line FROM information_schema.columns WHERE table_schema = 'public'
     UNION ALL SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint WHERE connamespace = 'public'::regnamespace
     UNION ALL SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = 'public'
     UNION ALL SELECT format('function %s %s', proname, md5(pg_get_functiondef(oid))) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND prokind = 'f'
     UNION ALL SELECT format('trigger %s', pg_get_triggerdef(oid)) FROM pg_trigger WHERE NOT tgisinternal
     UNION ALL SELECT format('migration %s', name) FROM pgmigrations
     ORDER BY 1`,
  );
  return result.rows.map((row) => row.line);
}

describe('migrateDatabase', () => {
  it('finishes exactly the schema of an uninterrupted run when runs die mid-migration (their sessions ended as a killed process ends them)', async () => {
    const name = `token_ledger_test_killed_${randomBytes(6).toString('hex')}`;
    await adminQuery(testAdminUrl(), `CREATE DATABASE ${name}`);
    const url = new URL(testAdminUrl());
    url.pathname = `/${name}`;
    const observer = new pg.Pool({ connectionString: url.toString(), max: 2, application_name: 'observer' });
    const reference = await createTestDatabase();
    try {
      await migrate(url.toString(), 'up', 5);
      // Twice: a run is stopped inside a migration (its statements run, its record held back by a lock
      // on the migrations table), then its session is terminated, as the death of its process ends it.
      for (const appliedBefore of [5, 6]) {
        const blocker = await observer.connect();
        try {
          await blocker.query('BEGIN');
          await blocker.query('LOCK TABLE pgmigrations IN EXCLUSIVE MODE');
          const outcome = migrateDatabase(url.toString()).then(
            () => 'finished',
            (error: unknown) => `died: ${String(error)}`,
          );
          const waiting = async () =>
            (await observer.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name <> 'observer' AND wait_event_type = 'Lock'")).rows.length === 1;
          while (!(await waiting())) await new Promise((resolve) => setTimeout(resolve, 10));
          await observer.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name <> 'observer'");
          expect(await outcome).toMatch(/^died: .*terminat/);
        } finally {
          await blocker.query('ROLLBACK');
          blocker.release();
        }
        // The migration it died in left nothing: neither its changes nor its record.
        expect(Number((await observer.query<{ count: string }>('SELECT count(*)::text AS count FROM pgmigrations')).rows[0]?.count)).toBe(appliedBefore);
        await migrate(url.toString(), 'up', 1);
      }
      await migrateDatabase(url.toString());
      expect(await pendingMigrations(observer)).toEqual([]);
      expect(await schemaOf(observer)).toEqual(await schemaOf(reference.pool));
    } finally {
      await observer.end();
      await reference.drop();
      await adminQuery(testAdminUrl(), `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  }, 120_000);

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
