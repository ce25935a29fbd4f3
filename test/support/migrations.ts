import { readdir } from 'node:fs/promises';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import { MIGRATIONS_DIR } from '@app/database';

/**
 * Runs `count` of this build's migrations up or down on the database at `url` (Infinity: all), on a
 * client this function ends before it returns. node-pg-migrate's own client is ended without being
 * awaited (`client.end()` in its `close`), so a test database dropped right after (`WITH (FORCE)`)
 * could terminate it mid-close: an unhandled error that failed a spec under load.
 */
export async function migrate(url: string, direction: 'up' | 'down', count = 1): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await runner({ dbClient: client, dir: MIGRATIONS_DIR, direction, count, migrationsTable: 'pgmigrations', log: () => undefined });
  } finally {
    await client.end();
  }
}

/**
 * Migrates down to just before the migration whose file name starts with `number` (its timestamp),
 * through every later one, so a spec can run that migration up and down on rows of its own; call
 * `migrate(url, 'up', Infinity)` after, to leave the database as the build's.
 */
export async function migrateDownThrough(url: string, number: string): Promise<void> {
  const later = (await readdir(MIGRATIONS_DIR)).filter((file) => file.endsWith('.sql') && file > `${number}_` && !file.startsWith(`${number}_`)).length;
  await migrate(url, 'down', later + 1);
}
