import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import { databaseUnavailableErrorOf, DatabaseUnavailableError } from './database-availability.js';

/**
 * Which failures are the database being unavailable (503 with Retry-After to the caller) and which
 * stay what they are (a bug is a 500): the session refusals are PostgreSQL's own, met by connecting.
 */
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database.drop();
});

async function connectionErrorOf(url: string): Promise<unknown> {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
  } catch (error) {
    return error;
  } finally {
    await client.end().catch(() => undefined);
  }
  throw new Error(`connecting to ${url} did not fail`);
}

describe('databaseUnavailableErrorOf', () => {
  it('takes a database that does not exist (3D000) for unavailable', async () => {
    const url = new URL(database.url);
    url.pathname = '/token_ledger_no_such_database';
    const error = await connectionErrorOf(url.toString());
    expect(error).toMatchObject({ code: '3D000' });
    expect(databaseUnavailableErrorOf(error)).toBeInstanceOf(DatabaseUnavailableError);
  });

  it('takes a database that does not accept connections (55000, ALLOW_CONNECTIONS false) for unavailable', async () => {
    const name = new URL(database.url).pathname.slice(1);
    // A database's own sessions may not disallow connections to it: another database's session does.
    const admin = new pg.Client({ connectionString: process.env.TOKEN_LEDGER_TEST_ADMIN_URL });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
      const error = await connectionErrorOf(database.url);
      expect(error).toMatchObject({ code: '55000', message: `database "${name}" is not currently accepting connections` });
      expect(databaseUnavailableErrorOf(error)).toBeInstanceOf(DatabaseUnavailableError);
    } finally {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
      await admin.end();
    }
  });

  it.each(['28000', '28P01', '57P04', '57P05', '57P01', '53300', '08006'])('takes SQLSTATE %s for unavailable, wrapped or not', (code) => {
    const error = Object.assign(new Error('refused'), { code });
    expect(databaseUnavailableErrorOf(error)).toBeInstanceOf(DatabaseUnavailableError);
    expect(databaseUnavailableErrorOf(new Error('the query failed', { cause: error }))).toBeInstanceOf(DatabaseUnavailableError);
  });

  it('leaves errors of the statement itself as they are, 55000 of another kind among them', async () => {
    const violation = await database.pool.query('SELECT 1 / 0').catch((error: unknown) => error);
    expect(violation).toMatchObject({ code: '22012' });
    expect(databaseUnavailableErrorOf(violation)).toBeUndefined();
    const syntax = await database.pool.query('SELEC 1').catch((error: unknown) => error);
    expect(databaseUnavailableErrorOf(syntax)).toBeUndefined();
    expect(databaseUnavailableErrorOf(Object.assign(new Error('cannot refresh materialized view "v" concurrently'), { code: '55000' }))).toBeUndefined();
    expect(databaseUnavailableErrorOf(Object.assign(new Error('could not obtain lock on row in relation "t"'), { code: '55P03' }))).toBeUndefined();
  });
});
