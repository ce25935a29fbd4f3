import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { BuiltService } from './built-service.js';
import { Cleanup } from './cleanup.js';
import type { StatementRow } from './versus-report.js';

/**
 * A built service whose PostgreSQL counts every statement, those inside functions too
 * (pg_stat_statements, `track = all`), with a superuser connection that reads and resets the counts.
 * The library must be preloaded: `start` runs the service once to set it, stops it, and runs it again
 * on the same data directory.
 */
export async function startWithStatementStatistics(
  start: (stopWith: Cleanup) => Promise<BuiltService>,
  dataDirectory: string,
  cleanup: Cleanup,
  name: string,
): Promise<{ readonly service: BuiltService; readonly statements: pg.Client }> {
  const first = new Cleanup();
  const configured = await start(first);
  const superuser = await superuserClient(configured, dataDirectory, 'postgres');
  await superuser.query(`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`);
  await superuser.query(`ALTER SYSTEM SET pg_stat_statements.track = 'all'`);
  await superuser.end();
  await first.runAll();
  const service = await start(cleanup);
  const statements = await superuserClient(service, dataDirectory, 'token_ledger');
  cleanup.add(`close the ${name} statistics connection`, () => statements.end());
  await statements.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  return { service, statements };
}

/** The counts since the last reset, of the service database's statements, by normalized text. */
export async function readStatementRows(client: pg.Client): Promise<readonly StatementRow[]> {
  const result = await client.query<StatementRow>(
    `SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, calls::text, total_exec_time AS time_ms, wal_records::text AS wal FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  return result.rows;
}

export async function resetStatementStatistics(client: pg.Client): Promise<void> {
  await client.query('SELECT pg_stat_statements_reset()');
}

/** The embedded server's superuser (its password is kept in the data directory's secrets), on `database`. */
async function superuserClient(service: BuiltService, dataDirectory: string, database: string): Promise<pg.Client> {
  const password = (await readFile(path.join(dataDirectory, 'secrets', 'postgres-superuser-password'), 'utf8')).trim();
  const url = new URL(service.postgresUrl);
  const client = new pg.Client({ host: url.hostname, port: Number(url.port), user: 'postgres', password, database });
  await client.connect();
  return client;
}
