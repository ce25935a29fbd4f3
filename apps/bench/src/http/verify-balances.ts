import { Client } from 'undici';
import type { Pool } from 'pg';

export type ExpectedBalances = { readonly userIds: readonly string[]; readonly balanceOf: (accountIndex: number) => number };

const ROWS_PER_QUERY_MAX = 10_000;
const MISMATCHES_SHOWN_MAX = 10;
/** How long a read model may take to show the last spends before a difference counts. */
export const SETTLE_MS_MAX = 10_000;

/**
 * Reads every account's balance from `table` and compares it with the expected one. A difference is
 * read again for up to `settleMsMax` (a read model may be a moment behind its events), then fails
 * the run. Returns how many times the rows were read (1: they matched at once).
 */
export async function verifyBalancesBySql(
  pool: Pool,
  table: 'user_tokens' | 'bench_crud_accounts',
  expected: ExpectedBalances,
  settleMsMax: number = SETTLE_MS_MAX,
): Promise<{ readonly reads: number }> {
  const started = performance.now();
  for (let reads = 1; ; reads += 1) {
    const mismatches = await differences(pool, table, expected);
    if (mismatches.length === 0) return { reads };
    if (performance.now() - started > settleMsMax) {
      throw new Error(`${mismatches.length} balance(s) in ${table} differ from the initial balance minus the spends counted by the client, for example:\n${mismatches.slice(0, MISMATCHES_SHOWN_MAX).join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function differences(pool: Pool, table: string, expected: ExpectedBalances): Promise<string[]> {
  const mismatches: string[] = [];
  for (let start = 0; start < expected.userIds.length; start += ROWS_PER_QUERY_MAX) {
    const userIds = expected.userIds.slice(start, start + ROWS_PER_QUERY_MAX);
    const result = await pool.query<{ user_id: string; balance: string }>(`SELECT user_id::text AS user_id, balance::text AS balance FROM ${table} WHERE user_id = ANY($1::uuid[])`, [userIds]);
    const found = new Map(result.rows.map((row) => [row.user_id, row.balance]));
    userIds.forEach((userId, offset) => {
      const want = String(expected.balanceOf(start + offset));
      const got = found.get(userId);
      if (got !== want) mismatches.push(`  ${userId}: ${got === undefined ? 'no row' : got}, expected ${want}`);
    });
  }
  return mismatches;
}

/**
 * `GET /v1/accounts/{id}/balance` for `sampleSize` accounts spread evenly over all of them; the first
 * difference fails the run. Returns how many accounts were checked.
 */
export async function verifyBalancesOverHttp(target: { readonly origin: string; readonly authorization: string }, expected: ExpectedBalances, sampleSize: number): Promise<number> {
  const connection = new Client(target.origin);
  const count = Math.min(sampleSize, expected.userIds.length);
  try {
    for (let sample = 0; sample < count; sample += 1) {
      const accountIndex = Math.floor((sample * expected.userIds.length) / count);
      const path = `/v1/accounts/${expected.userIds[accountIndex] as string}/balance`;
      const response = await connection.request({ method: 'GET', path, headers: { authorization: target.authorization } });
      const text = await response.body.text();
      const balance = response.statusCode === 200 ? (JSON.parse(text) as { balance?: unknown }).balance : undefined;
      if (balance !== expected.balanceOf(accountIndex)) throw new Error(`GET ${path} answered ${response.statusCode} ${text.slice(0, 500)}; expected the balance ${expected.balanceOf(accountIndex)}`);
    }
  } finally {
    await connection.close();
  }
  return count;
}
