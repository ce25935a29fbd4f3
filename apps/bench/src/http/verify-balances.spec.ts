import { createTestDatabase, type TestDatabase } from '../../../../test/support/test-database.js';
import { createCrudTables, CRUD_ACCOUNTS_TABLE, seedCrudAccounts } from './crud-schema.js';
import { verifyBalancesBySql, type ExpectedBalances } from './verify-balances.js';

const userIds = ['00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000003'];
const spends = [0, 2, 1];
const expected: ExpectedBalances = { userIds, balanceOf: (index) => 100 - (spends[index] ?? 0) };

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database.drop();
});

beforeEach(async () => {
  await database.pool.query(`DROP TABLE IF EXISTS bench_crud_history, ${CRUD_ACCOUNTS_TABLE}`);
  await createCrudTables(database.pool);
  await seedCrudAccounts(database.pool, userIds, 100);
});

async function spend(userId: string, amount: number): Promise<void> {
  await database.pool.query(`UPDATE ${CRUD_ACCOUNTS_TABLE} SET balance = balance - $2 WHERE user_id = $1`, [userId, amount]);
}

describe('verifyBalancesBySql', () => {
  it('passes when every balance is the initial one minus the counted spends', async () => {
    await spend(userIds[1] as string, 2);
    await spend(userIds[2] as string, 1);
    await expect(verifyBalancesBySql(database.pool, CRUD_ACCOUNTS_TABLE, expected, 0)).resolves.toEqual({ reads: 1 });
  });

  it('fails naming each account whose balance differs, with what it has and what it should have', async () => {
    await spend(userIds[1] as string, 3);
    await expect(verifyBalancesBySql(database.pool, CRUD_ACCOUNTS_TABLE, expected, 0)).rejects.toThrow(
      `2 balance(s) in ${CRUD_ACCOUNTS_TABLE} differ from the initial balance minus the spends counted by the client, for example:\n  ${userIds[1]}: 97, expected 98\n  ${userIds[2]}: 100, expected 99`,
    );
  });

  it('fails when an account has no row', async () => {
    await spend(userIds[1] as string, 2);
    await spend(userIds[2] as string, 1);
    await database.pool.query(`DELETE FROM ${CRUD_ACCOUNTS_TABLE} WHERE user_id = $1`, [userIds[0]]);
    await expect(verifyBalancesBySql(database.pool, CRUD_ACCOUNTS_TABLE, expected, 0)).rejects.toThrow(`  ${userIds[0]}: no row, expected 100`);
  });

  it('waits for a balance that is behind to catch up, as a read model may be', async () => {
    await spend(userIds[1] as string, 2);
    setTimeout(() => void spend(userIds[2] as string, 1), 300);
    const { reads } = await verifyBalancesBySql(database.pool, CRUD_ACCOUNTS_TABLE, expected, 5_000);
    expect(reads).toBeGreaterThan(1);
  });
});
