import { readdir } from 'node:fs/promises';
import { runner } from 'node-pg-migrate';
import { MIGRATIONS_DIR } from '@app/database';

/** Runs `count` of this build's migrations up or down on the database at `url` (all of them up: `migrateDatabase`). */
export async function migrate(url: string, direction: 'up' | 'down', count = 1): Promise<void> {
  await runner({ databaseUrl: url, dir: MIGRATIONS_DIR, direction, count, migrationsTable: 'pgmigrations', log: () => undefined });
}

/**
 * Migrates down to just before the migration whose file name starts with `number` (its timestamp),
 * through every later one, so a spec can run that migration up and down on rows of its own; call
 * `migrateDatabase(url)` after, to leave the database as the build's.
 */
export async function migrateDownThrough(url: string, number: string): Promise<void> {
  const later = (await readdir(MIGRATIONS_DIR)).filter((file) => file.endsWith('.sql') && file > `${number}_` && !file.startsWith(`${number}_`)).length;
  await migrate(url, 'down', later + 1);
}
