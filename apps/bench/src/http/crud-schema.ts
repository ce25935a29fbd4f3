import type { Pool } from 'pg';

/** The CRUD reference's own tables, created by the bench in the service's (fresh, temporary) database. */
export const CRUD_ACCOUNTS_TABLE = 'bench_crud_accounts';
export const CRUD_HISTORY_TABLE = 'bench_crud_history';
export const CRUD_SERVICE_LISTENING = 'CRUD reference service is listening';

const SEED_ROWS_PER_STATEMENT_MAX = 10_000;

/**
 * A balance row per account and a history table as a plain application would have them: the history
 * references the account and is indexed by account, newest last.
 */
export async function createCrudTables(pool: Pool): Promise<void> {
  await pool.query(`CREATE TABLE ${CRUD_ACCOUNTS_TABLE} (
    user_id uuid PRIMARY KEY,
    balance bigint NOT NULL CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
  )`);
  await pool.query(`CREATE TABLE ${CRUD_HISTORY_TABLE} (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES ${CRUD_ACCOUNTS_TABLE} (user_id),
    amount bigint NOT NULL,
    balance_after bigint NOT NULL CHECK (balance_after >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
  )`);
  await pool.query(`CREATE INDEX ${CRUD_HISTORY_TABLE}_user_id ON ${CRUD_HISTORY_TABLE} (user_id, id)`);
}

/** Every account with `balance`, by SQL in statements of 10,000 rows (the CRUD service has no purchase route). */
export async function seedCrudAccounts(pool: Pool, userIds: readonly string[], balance: number): Promise<void> {
  for (let start = 0; start < userIds.length; start += SEED_ROWS_PER_STATEMENT_MAX) {
    const chunk = userIds.slice(start, start + SEED_ROWS_PER_STATEMENT_MAX);
    await pool.query(`INSERT INTO ${CRUD_ACCOUNTS_TABLE} (user_id, balance) SELECT unnest($1::uuid[]), $2`, [chunk, balance]);
  }
  await pool.query(`ANALYZE ${CRUD_ACCOUNTS_TABLE}`);
}
