import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Client, type QueryResult, type QueryResultRow } from 'pg';
import { runner } from 'node-pg-migrate';

/**
 * The SQL migrations of every table (event store and read models), applied in order with
 * node-pg-migrate. It waits for an advisory lock, so several instances may start at once: the first
 * applies what is pending, the others find nothing left to apply.
 *
 * node-pg-migrate runs on a client of ours, ended (and awaited) before this returns: its own client
 * is ended without being awaited and has no error listener, so a server stopped right after the
 * migrations (a test's, or a restart) could terminate that connection mid-close, an unhandled error
 * that ends the process.
 */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

export async function migrateDatabase(databaseUrl: string, log: (message: string) => void = () => undefined): Promise<void> {
  const client = new Client({ connectionString: databaseUrl });
  // A failed query rejects its own promise; this listener only keeps a dropped idle connection from crashing the process.
  client.on('error', () => undefined);
  await client.connect();
  try {
    await runner({
      dbClient: client,
      dir: MIGRATIONS_DIR,
      direction: 'up',
      migrationsTable: 'pgmigrations',
      checkOrder: true,
      // Instances started together wait for each other's migrations; node-pg-migrate 9's default
      // ('fail') ends every start but the first with "Another migration is already running".
      advisoryLockMode: 'wait',
      log,
      logger: { debug: log, info: log, warn: log, error: log },
    });
  } finally {
    await client.end();
  }
}

/**
 * The migrations shipped with this build that the database has not recorded as applied (readiness:
 * an instance of a newer version must not serve before its tables exist). Empty when up to date.
 */
export async function pendingMigrations(pool: Queryable): Promise<readonly string[]> {
  const shipped = (await readdir(MIGRATIONS_DIR)).filter((file) => file.endsWith('.sql')).map((file) => file.slice(0, -'.sql'.length));
  const applied = await pool.query<{ name: string }>('SELECT name FROM pgmigrations');
  const names = new Set(applied.rows.map((row) => row.name));
  return shipped.filter((name) => !names.has(name)).sort();
}

type Queryable = { query<R extends QueryResultRow>(text: string): Promise<QueryResult<R>> };
