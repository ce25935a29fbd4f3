import { runCli } from './run-cli.js';
import { createTestDatabase, type TestDatabase } from './test-database.js';

/**
 * For a spec that runs the admin CLI in-process on databases of its own: `database()` makes one,
 * dropped after the test that made it (the hook is registered here, so call this at the top of the
 * spec file).
 */
export function cliDatabases(): { database(): Promise<TestDatabase> } {
  let databases: TestDatabase[] = [];
  afterEach(async () => {
    await Promise.all(databases.map((database) => database.drop()));
    databases = [];
  });
  return {
    async database() {
      const created = await createTestDatabase();
      databases.push(created);
      return created;
    },
  };
}

/** Runs one command of the CLI on `on` (through DATABASE_URL); returns what it printed on stdout and its exit code. */
export function cli(on: TestDatabase, ...args: string[]): Promise<{ output: string; exitCode: number }> {
  return runCli({ DATABASE_URL: on.url }, ...args);
}

/** Transaction ids are cluster-wide: other test files' open transactions delay $all visibility, so wait for every event. */
export async function allVisible(on: TestDatabase): Promise<void> {
  for (;;) {
    const result = await on.pool.query<{ hidden: boolean }>('SELECT EXISTS (SELECT 1 FROM events WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())) AS hidden');
    if (result.rows[0]?.hidden === false) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
