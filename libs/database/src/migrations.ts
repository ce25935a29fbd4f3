import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';

/**
 * The SQL migrations of every table (event store and read models), applied in order with
 * node-pg-migrate. It takes an advisory lock, so several instances may start at once.
 */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

export async function migrateDatabase(databaseUrl: string, log: (message: string) => void = () => undefined): Promise<void> {
  await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    checkOrder: true,
    log,
    logger: { debug: log, info: log, warn: log, error: log },
  });
}
