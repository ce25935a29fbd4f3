import path from 'node:path';
import type { Pool } from 'pg';
import { freeLoopbackPort, spawnNode, stopChild, waitForLogLine, type LoggedChild } from './child-processes.js';
import type { Cleanup } from './cleanup.js';
import { createCrudTables, CRUD_SERVICE_LISTENING, seedCrudAccounts } from './crud-schema.js';

export type CrudReference = { readonly origin: string; readonly child: LoggedChild };

/** The service's default DATABASE_POOL_SIZE, so both hold the same number of connections. */
const POOL_SIZE = 20;

/**
 * Creates the CRUD tables in the service's database, gives every account `balance`, and starts
 * crud-service.main.js on a free loopback port against the same database.
 */
export async function startCrudReference(options: {
  readonly pool: Pool;
  readonly postgresUrl: string;
  readonly userIds: readonly string[];
  readonly balance: number;
  readonly parentDirectory: string;
  readonly cleanup: Cleanup;
}): Promise<CrudReference> {
  await createCrudTables(options.pool);
  await seedCrudAccounts(options.pool, options.userIds, options.balance);
  const port = await freeLoopbackPort();
  const env = { PATH: process.env.PATH, DATABASE_URL: options.postgresUrl, PORT: String(port), DATABASE_POOL_SIZE: String(POOL_SIZE) };
  const main = path.join(import.meta.dirname, 'crud-service.main.js');
  const child = spawnNode([main], { cwd: options.parentDirectory, env, logFile: path.join(options.parentDirectory, 'crud-service.log') });
  options.cleanup.add('stop the CRUD service', async () => void (await stopChild(child)));
  await waitForLogLine(child, CRUD_SERVICE_LISTENING);
  return { origin: `http://127.0.0.1:${port}`, child };
}
