import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { comparePositions, PostgresEventStore, type AppendTransactionHook, type EventToAppend } from '@app/event-store';
import { decideTokenAccount, fold, tokenAccountDecider, tokenAccountStreamId, type TokenAccountCommand, type TokenAccountState } from '@app/ledger';
import { migrate as migrateTo, migrateDownThrough } from '../../../test/support/migrations.js';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import { eventsInReadModel, rebuildAccount } from './account-rebuild.js';
import { readCheckpoint } from './checkpoints.js';
import { CURRENT_TRANSACTION, INLINE_FUNCTION_SETTINGS, InlineProjections } from './inline-projections.js';
import { ProjectionRunner } from './projection-runner.js';
import { TOKEN_ACCOUNTS_INLINE_COMMITS } from './read-models/token-accounts/token-accounts.bulk.js';
import { tokenAccountsProjection } from './read-models/token-accounts/token-accounts.projection.js';

let database: TestDatabase;
const stores: PostgresEventStore[] = [];
const runners: ProjectionRunner[] = [];
const inline = new InlineProjections([tokenAccountsProjection]);
const now = new Date('2026-11-24T12:00:00.000Z');

beforeEach(async () => {
  database = await createTestDatabase();
});

afterEach(async () => {
  await Promise.all(runners.splice(0).map((runner) => runner.stop()));
  await Promise.all(stores.splice(0).map((store) => store.close()));
  await database.drop();
});

function storeWith(hook: AppendTransactionHook): PostgresEventStore {
  const store = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20, appendHook: hook });
  stores.push(store);
  return store;
}

/** A decided account: its state and revision, so the next command appends where it must. */
type Account = { readonly userId: string; state: TokenAccountState; revision: bigint };

function account(): Account {
  return { userId: randomUUID(), state: tokenAccountDecider.initialState, revision: -1n };
}

function purchase(userId: string, amount: number): TokenAccountCommand {
  return { type: 'AddTokens', data: { userId, paymentId: randomUUID(), amount, description: null, transactionId: randomUUID(), now } };
}

function usage(userId: string, amount: number): TokenAccountCommand {
  return { type: 'UseTokens', data: { userId, amount, description: null, transactionId: randomUUID(), now } };
}

/** Decides `command` on the account's state and appends at its revision; the account moves on only if the append commits. */
async function run(store: PostgresEventStore, target: Account, command: TokenAccountCommand) {
  const events = decideTokenAccount(command, target.state);
  const toAppend: EventToAppend[] = events.map((event) => ({ id: randomUUID(), type: event.type, data: event.data }));
  const result = await store.append(tokenAccountStreamId(target.userId), toAppend, { expectedRevision: target.revision < 0n ? 'no_stream' : target.revision });
  target.state = fold(tokenAccountDecider, target.state, events);
  target.revision = result.nextRevision;
  return result;
}

async function rowsOf(userId: string): Promise<{ balance: string | null; transactions: number; events: number }> {
  const balance = await database.pool.query<{ balance: string }>('SELECT balance::text FROM user_tokens WHERE user_id = $1', [userId]);
  const transactions = await database.pool.query<{ count: string }>('SELECT count(*) FROM token_transactions WHERE user_id = $1', [userId]);
  const events = await database.pool.query<{ count: string }>('SELECT count(*) FROM events WHERE stream_id = $1', [tokenAccountStreamId(userId)]);
  return { balance: balance.rows[0]?.balance ?? null, transactions: Number(transactions.rows[0]?.count), events: Number(events.rows[0]?.count) };
}

async function appliedTransactions(): Promise<number> {
  const result = await database.pool.query<{ count: string }>(`SELECT count(*) FROM ${TOKEN_ACCOUNTS_INLINE_COMMITS}`);
  return Number(result.rows[0]?.count);
}

/**
 * Until the checkpoint has passed every committed event. Not `headPosition`: it shows only events
 * older than every running transaction in the cluster, so another test database's open transaction
 * would make it return before the last appends are visible.
 */
async function caughtUp(runner: ProjectionRunner): Promise<void> {
  const newest = await database.pool.query<{ commit: string; prepare: string }>(
    'SELECT transaction_id::text AS commit, global_position::text AS prepare FROM events ORDER BY transaction_id DESC, global_position DESC LIMIT 1',
  );
  const last = newest.rows[0];
  if (last === undefined) throw new Error('no events');
  const deadline = Date.now() + 20_000;
  for (;;) {
    const checkpoint = await readCheckpoint(database.pool, tokenAccountsProjection.name);
    if (checkpoint !== undefined && comparePositions(checkpoint, { commit: BigInt(last.commit), prepare: BigInt(last.prepare) }) >= 0) return;
    if (runner.failure !== undefined || Date.now() > deadline) throw new Error(`the runner did not catch up: ${JSON.stringify(runner.failure)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A hook whose statements run the first `statementsBefore` of the real application, then end their own session: the process died there. */
function dyingAfter(statementsBefore: number): AppendTransactionHook {
  return {
    statementsAfterAppend() {
      return [...inline.statements(CURRENT_TRANSACTION).slice(0, statementsBefore), 'SELECT pg_terminate_backend(pg_backend_pid())'].join(';\n');
    },
  };
}

describe('inline projections', () => {
  it('commits the rows with the events, and the catch-up runner neither applies them again nor skips a plain append', async () => {
    const store = storeWith(inline);
    const buyer = account();
    const first = await run(store, buyer, purchase(buyer.userId, 100));
    await run(store, buyer, usage(buyer.userId, 30));
    // The rows are there the moment the append returns: no runner has run.
    expect(first.hooksCommitted).toBe(true);
    expect(await rowsOf(buyer.userId)).toEqual({ balance: '70', transactions: 2, events: 2 });

    // An append without the hook (another process, an older version): only the runner applies it.
    const plain = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20 });
    stores.push(plain);
    const other = account();
    expect((await run(plain, other, purchase(other.userId, 5))).hooksCommitted).toBeUndefined();
    expect(await rowsOf(other.userId)).toEqual({ balance: null, transactions: 0, events: 1 });

    const runner = new ProjectionRunner(store, database.pool, tokenAccountsProjection, { batchSizeMax: 1, retryDelayMsMin: 10, retryDelayMsMax: 50 });
    runners.push(runner);
    runner.start();
    await caughtUp(runner);
    expect(await rowsOf(buyer.userId)).toEqual({ balance: '70', transactions: 2, events: 2 });
    expect(await rowsOf(other.userId)).toEqual({ balance: '5', transactions: 1, events: 1 });
    expect(runner.failure).toBeUndefined();
    // Records the checkpoint has passed are forgotten; at most the newest transaction's may remain.
    expect(await appliedTransactions()).toBeLessThanOrEqual(1);
  });

  it('applies the set-based way too: a runner batch of inline and plain events applies only the plain ones', async () => {
    const store = storeWith(inline);
    const plain = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20 });
    stores.push(plain);
    const accounts = Array.from({ length: 30 }, () => account());
    for (const [index, target] of accounts.entries()) await run(index % 3 === 0 ? plain : store, target, purchase(target.userId, index + 1));
    const runner = new ProjectionRunner(store, database.pool, tokenAccountsProjection, { batchSizeMax: 100, retryDelayMsMin: 10, retryDelayMsMax: 50, setBasedBatchMin: 5 });
    runners.push(runner);
    runner.start();
    await caughtUp(runner);
    expect(runner.batches.setBased).toBeGreaterThan(0);
    for (const [index, target] of accounts.entries()) expect(await rowsOf(target.userId)).toEqual({ balance: String(index + 1), transactions: 1, events: 1 });
  });

  // The statements of one inline application: LOCK, four row statements, the record; the session may die after any of them.
  const statementCount = inline.statements(CURRENT_TRANSACTION).length;
  it.each(Array.from({ length: statementCount + 1 }, (_, index) => index))(
    'leaves neither events nor rows when the session dies after %i statements of the application',
    async (statementsBefore) => {
      const buyer = account();
      await run(storeWith(inline), buyer, purchase(buyer.userId, 50));
      const dying = storeWith(dyingAfter(statementsBefore));
      await expect(run(dying, { ...buyer }, usage(buyer.userId, 20))).rejects.toThrow();
      expect(await rowsOf(buyer.userId)).toEqual({ balance: '50', transactions: 1, events: 1 });

      // The process restarts: the same command goes through once, and the runner adds nothing.
      const restarted = storeWith(inline);
      await run(restarted, buyer, usage(buyer.userId, 20));
      expect(await rowsOf(buyer.userId)).toEqual({ balance: '30', transactions: 2, events: 2 });
      const runner = new ProjectionRunner(restarted, database.pool, tokenAccountsProjection, { batchSizeMax: 10, retryDelayMsMin: 10, retryDelayMsMax: 50 });
      runners.push(runner);
      runner.start();
      await caughtUp(runner);
      expect(await rowsOf(buyer.userId)).toEqual({ balance: '30', transactions: 2, events: 2 });
    },
  );

  it('fails only the append whose rows cannot be written, and writes nothing of it', async () => {
    const store = storeWith(inline);
    const accounts = Array.from({ length: 10 }, () => account());
    for (const target of accounts) await run(store, target, purchase(target.userId, 10));
    // A row already holds the transaction id the fifth account's usage will write: its insert fails.
    const command = usage(accounts[4]?.userId ?? '', 1);
    const clashing = command.type === 'UseTokens' ? command.data.transactionId : '';
    await database.pool.query(
      `INSERT INTO token_transactions (id, user_id, amount, transaction_type, description, payment_id, balance_after, created_at, event_id, stream_revision)
       VALUES ($1, $2, 1, 'purchase', NULL, NULL, 1, now(), $3, 99)`,
      [clashing, randomUUID(), randomUUID()],
    );
    const results = await Promise.allSettled(accounts.map((target, index) => run(store, target, index === 4 ? command : usage(target.userId, 1))));
    expect(results.map((result) => result.status)).toEqual(accounts.map((_, index) => (index === 4 ? 'rejected' : 'fulfilled')));
    for (const [index, target] of accounts.entries()) {
      expect(await rowsOf(target.userId)).toEqual(index === 4 ? { balance: '10', transactions: 1, events: 1 } : { balance: '9', transactions: 2, events: 2 });
    }
  });

  it('refuses a projection applied inline without the set-based statements a swap carries its transactions over with, or without its record table', () => {
    const bulk = tokenAccountsProjection.bulkLoad;
    if (bulk === undefined) throw new Error('token_accounts has a bulk load');
    const { ofEvents: _ofEvents, ...withoutOfEvents } = bulk;
    expect(() => new InlineProjections([{ ...tokenAccountsProjection, bulkLoad: withoutOfEvents }])).toThrow('projection token_accounts applies inline but has no ofEvents');
    expect(() => new InlineProjections([{ ...tokenAccountsProjection, tables: ['user_tokens'] }])).toThrow(`does not declare ${TOKEN_ACCOUNTS_INLINE_COMMITS} among its tables`);
  });

  it('keeps the installed function identical to the statements it stands for', async () => {
    const result = await database.pool.query<{ body: string }>("SELECT prosrc AS body FROM pg_proc WHERE proname = 'token_accounts_apply_inline'");
    const normalized = (sql: string) => sql.replace(/\s+/g, ' ').trim();
    expect(normalized(result.rows[0]?.body ?? '')).toBe(normalized(`BEGIN ${inline.statements(CURRENT_TRANSACTION).join(';\n')}; END;`));
    expect(inline.statementsAfterAppend()).toBe('SELECT token_accounts_apply_inline()');
    const settings = await database.pool.query<{ config: string[] | null }>("SELECT proconfig AS config FROM pg_proc WHERE proname = 'token_accounts_apply_inline'");
    expect(settings.rows[0]?.config ?? []).toEqual(Object.entries(INLINE_FUNCTION_SETTINGS).map(([name, value]) => `${name}=${value}`));
  });

  /** 3,000 accounts with a payment, a settled hold, a lot and a balance each. */
  async function seedAccounts(): Promise<void> {
    await database.pool.query(`
      WITH accounts AS (SELECT gen_random_uuid() AS user_id, n FROM generate_series(1, 3000) AS n)
      , balances AS (INSERT INTO user_tokens (user_id, balance, transaction_count, created_at, updated_at, last_event_revision, last_event_position, held)
                     SELECT user_id, 10, 1, now(), now(), 0, '0/' || n, 0 FROM accounts)
      , held AS (INSERT INTO token_holds (hold_id, user_id, amount, description, status, expires_at, draws, created_at, event_id, stream_revision, settled_amount, ended_at)
                 SELECT gen_random_uuid(), user_id, 1, NULL, 'settled', now(), '[]', now(), gen_random_uuid(), 1, 1, now() FROM accounts)
      , paid AS (INSERT INTO payments (id, user_id, status, package_id, tokens_purchased, amount, currency, provider, order_id, metadata, created_at, updated_at, expires_at, last_event_id, last_event_revision)
                 SELECT gen_random_uuid(), user_id, 'COMPLETED', 'starter', 10, 500, 'USD', 'mock', 'order-' || n, '{}', now(), now(), now(), gen_random_uuid(), 0 FROM accounts)
      INSERT INTO token_lots (user_id, lot_id, source, payment_id, transaction_id, original, remaining, priority, expires_at, status, created_at, stream_revision)
      SELECT user_id, gen_random_uuid()::text, 'purchase', NULL, NULL, 10, 10, 100, NULL, 'active', now(), 0 FROM accounts`);
  }

  /** A session whose every statement, the function's nested ones included, is explained to it (auto_explain). */
  async function explainedSession(): Promise<{ readonly client: pg.Client; readonly plans: string[] }> {
    const name = new URL(database.url).pathname.slice(1);
    for (const setting of ["session_preload_libraries = 'auto_explain'", 'auto_explain.log_min_duration = 0', 'auto_explain.log_nested_statements = on', 'auto_explain.log_level = notice']) {
      await database.pool.query(`ALTER DATABASE ${name} SET ${setting}`);
    }
    const client = new pg.Client({ connectionString: database.url });
    const plans: string[] = [];
    client.on('notice', (notice) => plans.push(notice.message ?? ''));
    await client.connect();
    return { client, plans };
  }

  /**
   * One batch as a group commit appends it, on a lot of `userId`'s (a new account and lot when none
   * is given): a usage from the lot, and a hold settled in one event. Applied by the function in
   * `session`, then rolled back; returns the plans of the function's statements.
   */
  async function applyOneBatch(session: { readonly client: pg.Client; readonly plans: string[] }, seeded?: { readonly userId: string; readonly lotId: string }): Promise<string[]> {
    const { client, plans } = session;
    const userId = seeded?.userId ?? randomUUID();
    const lotId = seeded?.lotId ?? randomUUID();
    const [at, holdId, draws] = [now.toISOString(), randomUUID(), [{ lotId, amount: 1 }]];
    const batch = [
      { type: 'TokensUsed', data: { userId, transactionId: randomUUID(), amount: 1, description: null, balanceAfter: 9, occurredAt: at, draws, heldAfter: 0 } },
      { type: 'TokensHeld', data: { userId, holdId, amount: 2, description: null, expiresAt: new Date(now.getTime() + 60_000).toISOString(), draws: [{ lotId, amount: 2 }], balanceAfter: 9, heldAfter: 2, occurredAt: at } },
      { type: 'HoldSettled', data: { userId, holdId, amount: 2, settledAmount: 1, releasedAmount: 1, transactionId: randomUUID(), description: null, draws, balanceAfter: 8, heldAfter: 0, occurredAt: at } },
    ];
    const applied: string[] = [];
    try {
      await client.query('BEGIN');
      if (seeded === undefined) {
        await client.query(
          "INSERT INTO token_lots (user_id, lot_id, source, payment_id, transaction_id, original, remaining, priority, expires_at, status, created_at, stream_revision) VALUES ($1, $2, 'purchase', NULL, NULL, 10, 10, 100, NULL, 'active', now(), 0)",
          [userId, lotId],
        );
      }
      await client.query('INSERT INTO event_streams (stream_id, revision) VALUES ($1, 2)', [tokenAccountStreamId(userId)]);
      for (const [revision, event] of batch.entries()) {
        await client.query('INSERT INTO events (stream_id, stream_revision, event_id, event_type, data) VALUES ($1, $2, $3, $4, $5)', [tokenAccountStreamId(userId), revision, randomUUID(), event.type, event.data]);
      }
      plans.length = 0;
      await client.query('SELECT token_accounts_apply_inline()');
      applied.push(...plans);
      const lot = await client.query<{ remaining: string }>('SELECT remaining::text FROM token_lots WHERE user_id = $1 AND lot_id = $2', [userId, lotId]);
      expect(lot.rows).toEqual([{ remaining: '8' }]);
    } finally {
      await client.query('ROLLBACK');
    }
    // Every statement of the function, each explained once.
    const nested = applied.filter((plan) => plan.includes('Query Text:') && !plan.includes('Query Text: SELECT token_accounts_apply_inline()'));
    expect(nested.length).toBe(inline.statements(CURRENT_TRANSACTION).length - 1);
    return nested;
  }

  async function aSeededLot(): Promise<{ readonly userId: string; readonly lotId: string }> {
    const [seeded] = (await database.pool.query<{ userId: string; lotId: string }>('SELECT user_id AS "userId", lot_id AS "lotId" FROM token_lots LIMIT 1')).rows;
    if (seeded === undefined) throw new Error('no lot');
    return seeded;
  }

  const WRITTEN_TABLES = ['token_lots', 'user_tokens', 'payments', 'token_holds', 'token_transactions'];
  const seqScans = (plans: readonly string[]) => WRITTEN_TABLES.flatMap((table) => plans.filter((plan) => plan.includes(`Seq Scan on ${table}`)));

  it('finds the rows a batch changes by their keys, not by reading whole tables, however large they grow', async () => {
    await seedAccounts();
    await database.pool.query('ANALYZE user_tokens, token_lots, payments, token_holds, token_transactions');
    const session = await explainedSession();
    try {
      expect(seqScans(await applyOneBatch(session, await aSeededLot()))).toEqual([]);
    } finally {
      await session.client.end();
    }
  });

  it('keeps finding them by key when the statistics were taken while the tables were empty (a rebuild, a new deployment)', async () => {
    // Analyzed empty, as a rebuild leaves a table no account has used (holds, say), and a session's
    // plans made then: the function keeps its plans for the session, and nothing invalidates them
    // while the table fills until autovacuum analyzes it again.
    await database.pool.query('ANALYZE user_tokens, token_lots, payments, token_holds, token_transactions');
    const session = await explainedSession();
    try {
      expect(seqScans(await applyOneBatch(session))).toEqual([]);
      await seedAccounts();
      expect(seqScans(await applyOneBatch(session, await aSeededLot()))).toEqual([]);
    } finally {
      await session.client.end();
    }
  });

  /** The plans of the statements that merge events into the tables (not, say, the recompute's delete of the account's rows, which a 4-row table rightly scans). */
  const mergeStatements = (plans: readonly string[]) => plans.filter((plan) => plan.includes('FROM events'));

  /** A pool whose sessions explain every statement to it (auto_explain, set on the database first). */
  function explainedPool(plans: string[]): pg.Pool {
    const pool = new pg.Pool({ connectionString: database.url, max: 2 });
    pool.on('connect', (client) => client.on('notice', (notice) => plans.push(notice.message ?? '')));
    return pool;
  }

  it('merges a runner batch and one account recomputed set-based by key as well, with the same tables', async () => {
    await seedAccounts();
    await database.pool.query('ANALYZE user_tokens, token_lots, payments, token_holds, token_transactions');
    // The database's auto_explain settings; the runner's and the recompute's sessions are this pool's.
    await (await explainedSession()).client.end();
    const plain = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20 });
    stores.push(plain);
    const buyer = account();
    await run(plain, buyer, purchase(buyer.userId, 10));
    for (let index = 0; index < 3; index += 1) await run(plain, buyer, usage(buyer.userId, 1));
    const plans: string[] = [];
    const pool = explainedPool(plans);
    try {
      // Every batch set-based: at 3,000 lots (and 100 draws counted per debit) the planner reads whole tables unless told otherwise.
      const runner = new ProjectionRunner(plain, pool, tokenAccountsProjection, { batchSizeMax: 100, retryDelayMsMin: 10, retryDelayMsMax: 50, setBasedBatchMin: 1 });
      runners.push(runner);
      runner.start();
      await caughtUp(runner);
      expect(runner.batches.setBased).toBeGreaterThan(0);
      expect(plans.filter((plan) => plan.includes('UPDATE token_lots'))).not.toEqual([]);
      expect(seqScans(mergeStatements(plans))).toEqual([]);

      plans.length = 0;
      await rebuildAccount(plain, pool, [tokenAccountsProjection], buyer.userId);
      expect(plans.filter((plan) => plan.includes('UPDATE token_lots'))).not.toEqual([]);
      expect(seqScans(mergeStatements(plans))).toEqual([]);
      expect(await rowsOf(buyer.userId)).toEqual({ balance: '7', transactions: 4, events: 4 });
    } finally {
      await Promise.all(runners.splice(0).map((runner) => runner.stop()));
      await pool.end();
    }
  });

  it('counts inline-applied events past the checkpoint as held by the read model, and plain ones as not', async () => {
    const store = storeWith(inline);
    const plain = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20 });
    stores.push(plain);
    const buyer = account();
    await run(store, buyer, purchase(buyer.userId, 10));
    await run(plain, buyer, purchase(buyer.userId, 20));
    await run(store, buyer, usage(buyer.userId, 5));
    const events = await store.readStream(tokenAccountStreamId(buyer.userId));
    const client = await database.pool.connect();
    try {
      const held = await eventsInReadModel(client, tokenAccountsProjection, events, undefined);
      expect(held.map((event) => event.revision)).toEqual([0n, 2n]);
    } finally {
      client.release();
    }
  });

  it('updates a debited lot and the balance in place (HOT): no index names a column a debit changes', async () => {
    // A HOT update writes no index entries; PostgreSQL allows it only when no column an index names
    // (its predicate included) changes. Debits change token_lots.remaining (migration 127) and
    // user_tokens' totals.
    const indexes = await database.pool.query<{ definition: string }>(
      `SELECT pg_get_indexdef(indexrelid) AS definition FROM pg_index WHERE indrelid IN ('token_lots'::regclass, 'user_tokens'::regclass)`,
    );
    const debited = /\b(remaining|balance|held|transaction_count|updated_at|last_event_revision|last_event_position)\b/;
    expect(indexes.rows.map((row) => row.definition).filter((definition) => debited.test(definition))).toEqual([]);

    const store = storeWith(inline);
    const buyer = account();
    await run(store, buyer, purchase(buyer.userId, 100));
    const usages = 20;
    for (let index = 0; index < usages; index += 1) await run(store, buyer, usage(buyer.userId, 1));
    // The appends' sessions report their counts when they end: close them, then wait for the report.
    await store.close();
    const updateCounts = async () => {
      await database.pool.query('SELECT pg_stat_clear_snapshot()');
      const result = await database.pool.query<{ table: string; updates: string; hot: string }>(
        `SELECT relname AS table, n_tup_upd::text AS updates, n_tup_hot_upd::text AS hot FROM pg_stat_user_tables
          WHERE relname IN ('token_lots', 'user_tokens') ORDER BY relname`,
      );
      return result.rows.map((row) => ({ table: row.table, updates: Number(row.updates), hot: Number(row.hot) }));
    };
    const deadline = Date.now() + 20_000;
    let counts = await updateCounts();
    while (!counts.every((count) => count.updates >= usages) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      counts = await updateCounts();
    }
    // The purchase inserts both rows; each usage updates each once, every one of them in place.
    expect(counts).toEqual([
      { table: 'token_lots', updates: usages, hot: usages },
      { table: 'user_tokens', updates: usages, hot: usages },
    ]);
    expect(await rowsOf(buyer.userId)).toEqual({ balance: String(100 - usages), transactions: usages + 1, events: usages + 1 });
  });
});

describe('an expired hold ends at its expiresAt', () => {
  const expiresAt = new Date(now.getTime() + 60_000).toISOString();
  // The expiry recorded an hour after the hold stopped counting: the job ran late, or nothing touched the account.
  const late = new Date(now.getTime() + 3_600_000);

  function holdFor(userId: string): TokenAccountCommand {
    return { type: 'HoldTokens', data: { userId, holdId: randomUUID(), amount: 30, description: null, ttlSeconds: 60, ttlSecondsMax: 3600, transactionId: randomUUID(), now } };
  }

  function settledHoldFor(userId: string, holdId: string): TokenAccountCommand {
    return { type: 'SettleHold', data: { userId, holdId, amount: 10, description: null, transactionId: randomUUID(), now } };
  }

  /** A purchase, a hold settled at `now`, and a hold whose expiry is recorded late. */
  async function expiredLate(store: PostgresEventStore, target: Account): Promise<void> {
    await run(store, target, purchase(target.userId, 100));
    const settled = holdFor(target.userId);
    await run(store, target, settled);
    await run(store, target, settledHoldFor(target.userId, (settled.data as { holdId: string }).holdId));
    await run(store, target, holdFor(target.userId));
    const expired = await run(store, target, { type: 'ExpireCredits', data: { userId: target.userId, transactionId: randomUUID(), now: late } });
    expect(expired.nextRevision).toBe(4n);
  }

  const ISO = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
  async function holdEnds(userId: string): Promise<readonly { status: string; endedAt: string }[]> {
    const result = await database.pool.query<{ status: string; endedAt: string }>(
      `SELECT status, to_char(ended_at AT TIME ZONE 'UTC', ${ISO}) AS "endedAt" FROM token_holds WHERE user_id = $1 ORDER BY status`,
      [userId],
    );
    return result.rows;
  }
  const expected = [
    { status: 'expired', endedAt: expiresAt },
    { status: 'settled', endedAt: now.toISOString() },
  ];

  it('ends it there inline, event by event and set-based alike, though its expiry was recorded an hour late', async () => {
    const store = storeWith(inline);
    const inlineAccount = account();
    await expiredLate(store, inlineAccount);
    expect(await holdEnds(inlineAccount.userId)).toEqual(expected);

    // Appended without the inline hook: the runner projects it event by event.
    const plain = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20 });
    stores.push(plain);
    const runnerAccount = account();
    await expiredLate(plain, runnerAccount);
    const runner = new ProjectionRunner(store, database.pool, tokenAccountsProjection, { batchSizeMax: 1, retryDelayMsMin: 10, retryDelayMsMax: 50 });
    runners.push(runner);
    runner.start();
    await caughtUp(runner);
    expect(await holdEnds(runnerAccount.userId)).toEqual(expected);

    // Recomputed set-based from the stream, as a rebuild and verify do.
    await rebuildAccount(store, database.pool, [tokenAccountsProjection], inlineAccount.userId);
    expect(await holdEnds(inlineAccount.userId)).toEqual(expected);
  });

  it('moves the endedAt of expired holds already recorded to their expiresAt when migrated (migration 128), and back to the recording time down', async () => {
    const migrate = (direction: 'up' | 'down', count = 1) => migrateTo(database.url, direction, count);
    await migrateDownThrough(database.url, '1764000000128');
    const before = account();
    await expiredLate(storeWith(inline), before);
    expect(await holdEnds(before.userId)).toEqual([{ status: 'expired', endedAt: late.toISOString() }, expected[1]]);
    await migrate('up');
    expect(await holdEnds(before.userId)).toEqual(expected);
    await migrate('down');
    expect(await holdEnds(before.userId)).toEqual([{ status: 'expired', endedAt: late.toISOString() }, expected[1]]);
    // Replaced again, the function keeps the planner settings migrations 124 and 125 gave it.
    const settings = await database.pool.query<{ config: string[] | null }>("SELECT proconfig AS config FROM pg_proc WHERE proname = 'token_accounts_apply_inline'");
    expect(settings.rows[0]?.config ?? []).toEqual(Object.entries(INLINE_FUNCTION_SETTINGS).map(([name, value]) => `${name}=${value}`));
    await migrate('up', Infinity);
  });
});

describe('lots in stream order (migration 140)', () => {
  const lotRevisions = async (userId: string) =>
    (await database.pool.query<{ lot_id: string; stream_revision: string }>('SELECT lot_id, stream_revision::text FROM token_lots WHERE user_id = $1 ORDER BY lot_id', [userId])).rows;
  const lotRows = async (userId: string) => (await database.pool.query<{ row: string }>('SELECT token_lots::text AS row FROM token_lots WHERE user_id = $1 ORDER BY lot_id', [userId])).rows;

  it('gives the lots written before it the revision of the credit that created them, as a rebuild writes it, and takes the column away down', async () => {
    const migrate = (direction: 'up' | 'down', count = 1) => migrateTo(database.url, direction, count);
    await migrateDownThrough(database.url, '1764000000140');
    const store = storeWith(inline);
    const [userId, purchaseLot, grantLot] = [randomUUID(), randomUUID(), randomUUID()];
    const at = now.toISOString();
    // Credits written before lots (the opening lot: revisions 0 and 2), then a purchase's lot (4) and
    // a grant's (5) credited at a clock an hour behind the purchase's.
    const before = new Date(now.getTime() - 3_600_000).toISOString();
    await store.append(tokenAccountStreamId(userId), [
      { id: randomUUID(), type: 'TokensPurchased', data: { userId, transactionId: randomUUID(), paymentId: randomUUID(), amount: 80, description: null, balanceAfter: 80, occurredAt: at } },
      { id: randomUUID(), type: 'TokensUsed', data: { userId, transactionId: randomUUID(), amount: 30, description: null, balanceAfter: 50, occurredAt: at } },
      { id: randomUUID(), type: 'TokensAdjusted', data: { userId, transactionId: randomUUID(), amount: 5, reason: 'Goodwill', balanceAfter: 55, occurredAt: at } },
      { id: randomUUID(), type: 'TokensUsed', data: { userId, transactionId: randomUUID(), amount: 5, description: null, balanceAfter: 50, occurredAt: at } },
    ], { expectedRevision: 'no_stream' });
    await store.append(tokenAccountStreamId(userId), [
      { id: randomUUID(), type: 'TokensPurchased', data: { userId, transactionId: purchaseLot, paymentId: randomUUID(), amount: 100, description: null, balanceAfter: 150, occurredAt: at, lot: { lotId: purchaseLot, priority: 100, expiresAt: null }, heldAfter: 0 } },
      { id: randomUUID(), type: 'TokensGranted', data: { userId, transactionId: grantLot, amount: 10, reason: 'Promotion', lot: { lotId: grantLot, priority: 100, expiresAt: null }, balanceAfter: 160, heldAfter: 0, occurredAt: before } },
    ], { expectedRevision: 3n });
    // A lot whose credit has no history row (a read model written by hand): revision 0, which a cursor can name.
    const orphan = randomUUID();
    await database.pool.query(
      "INSERT INTO token_lots (user_id, lot_id, source, payment_id, transaction_id, original, remaining, priority, expires_at, status, created_at) VALUES ($1, $2::text, 'grant', NULL, $2::uuid, 10, 10, 100, NULL, 'active', now())",
      [orphan, randomUUID()],
    );

    await migrate('up');
    expect((await lotRevisions(orphan)).map((row) => row.stream_revision)).toEqual(['0']);
    const expected = [
      { lot_id: 'opening', stream_revision: '0' },
      { lot_id: purchaseLot, stream_revision: '4' },
      { lot_id: grantLot, stream_revision: '5' },
    ].sort((left, right) => (left.lot_id < right.lot_id ? -1 : 1));
    expect(await lotRevisions(userId)).toEqual(expected);
    const migrated = await lotRows(userId);
    await rebuildAccount(store, database.pool, [tokenAccountsProjection], userId);
    expect(await lotRows(userId)).toEqual(migrated);

    await migrate('down');
    const column = await database.pool.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'token_lots' AND column_name = 'stream_revision'");
    expect(column.rowCount).toBe(0);
    const settings = await database.pool.query<{ config: string[] | null }>("SELECT proconfig AS config FROM pg_proc WHERE proname = 'token_accounts_apply_inline'");
    expect(settings.rows[0]?.config ?? []).toEqual(Object.entries(INLINE_FUNCTION_SETTINGS).map(([name, value]) => `${name}=${value}`));
    await migrate('up', Infinity);
    // A process of an older version (a rolling deploy) writes lots without the column: they get 0 (migration 143).
    const older = randomUUID();
    await database.pool.query(
      "INSERT INTO token_lots (user_id, lot_id, source, payment_id, transaction_id, original, remaining, priority, expires_at, status, created_at) VALUES ($1, 'opening', 'opening', NULL, NULL, 5, 5, 100, NULL, 'active', now())",
      [older],
    );
    expect(await lotRevisions(older)).toEqual([{ lot_id: 'opening', stream_revision: '0' }]);
  });
});

describe('a lot emptied after its expiry is expired (migration 142)', () => {
  const statuses = async (userId: string) => (await database.pool.query<{ status: string }>('SELECT status FROM token_lots WHERE user_id = $1', [userId])).rows.map((row) => row.status);
  const lotRows = async (userId: string) => (await database.pool.query<{ row: string }>('SELECT token_lots::text AS row FROM token_lots WHERE user_id = $1 ORDER BY lot_id', [userId])).rows;

  /** A grant of 50 expiring a minute after `now`, held whole at `now`, and the hold settled whole an hour later. */
  async function heldWholeThenSettled(store: PostgresEventStore, target: Account): Promise<void> {
    const holdId = randomUUID();
    await run(store, target, { type: 'GrantTokens', data: { userId: target.userId, amount: 50, reason: 'Promotion', priority: 10, expiresAt: new Date(now.getTime() + 60_000), transactionId: randomUUID(), now } });
    await run(store, target, { type: 'HoldTokens', data: { userId: target.userId, holdId, amount: 50, description: null, ttlSeconds: 7200, ttlSecondsMax: 7200, transactionId: randomUUID(), now } });
    const later = new Date(now.getTime() + 3_600_000);
    await run(store, target, { type: 'SettleHold', data: { userId: target.userId, holdId, amount: 50, description: null, transactionId: randomUUID(), now: later } });
  }

  it('records it expired inline, event by event and set-based alike', async () => {
    const store = storeWith(inline);
    const inlineAccount = account();
    await heldWholeThenSettled(store, inlineAccount);
    expect(await statuses(inlineAccount.userId)).toEqual(['expired']);
    const inlineRows = await lotRows(inlineAccount.userId);
    await rebuildAccount(store, database.pool, [tokenAccountsProjection], inlineAccount.userId);
    expect(await lotRows(inlineAccount.userId)).toEqual(inlineRows);

    // Appended without the inline hook: the runner projects it event by event.
    const plain = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20 });
    stores.push(plain);
    const runnerAccount = account();
    await heldWholeThenSettled(plain, runnerAccount);
    const runner = new ProjectionRunner(store, database.pool, tokenAccountsProjection, { batchSizeMax: 1, retryDelayMsMin: 10, retryDelayMsMax: 50 });
    runners.push(runner);
    runner.start();
    await caughtUp(runner);
    expect(await statuses(runnerAccount.userId)).toEqual(['expired']);
  });

  it('moves such lots recorded spent to expired when migrated, and leaves them down', async () => {
    const migrate = (direction: 'up' | 'down', count = 1) => migrateTo(database.url, direction, count);
    await migrateDownThrough(database.url, '1764000000142');
    const store = storeWith(inline);
    const before = account();
    await heldWholeThenSettled(store, before);
    // A grant spent whole before its expiry stays spent.
    const spentInTime = account();
    await run(store, spentInTime, { type: 'GrantTokens', data: { userId: spentInTime.userId, amount: 5, reason: 'Promotion', priority: 10, expiresAt: new Date(now.getTime() + 60_000), transactionId: randomUUID(), now } });
    await run(store, spentInTime, usage(spentInTime.userId, 5));
    expect([await statuses(before.userId), await statuses(spentInTime.userId)]).toEqual([['spent'], ['spent']]);
    await migrate('up');
    expect([await statuses(before.userId), await statuses(spentInTime.userId)]).toEqual([['expired'], ['spent']]);
    const migrated = await lotRows(before.userId);
    await rebuildAccount(store, database.pool, [tokenAccountsProjection], before.userId);
    expect(await lotRows(before.userId)).toEqual(migrated);
    await migrate('down');
    expect(await statuses(before.userId)).toEqual(['expired']);
    const settings = await database.pool.query<{ config: string[] | null }>("SELECT proconfig AS config FROM pg_proc WHERE proname = 'token_accounts_apply_inline'");
    expect(settings.rows[0]?.config ?? []).toEqual(Object.entries(INLINE_FUNCTION_SETTINGS).map(([name, value]) => `${name}=${value}`));
    await migrate('up', Infinity);
  });
});

describe('lot times as the event-by-event projection takes them (migration 146)', () => {
  const lotRows = async (userId: string) =>
    (await database.pool.query<{ lot_id: string; status: string; remaining: string; created_at: Date }>('SELECT lot_id, status, remaining::text, created_at FROM token_lots WHERE user_id = $1 ORDER BY lot_id', [userId])).rows;

  /**
   * Decides `commands` in turn on the account's state, and appends all their events at once (one
   * transaction, as a group of commands is). Each is decided as before decisions kept to the
   * stream's latest time, on its own clock, as the streams these histories stand for were written.
   */
  async function runTogether(store: PostgresEventStore, target: Account, commands: readonly TokenAccountCommand[]): Promise<void> {
    const toAppend: EventToAppend[] = [];
    for (const command of commands) {
      const events = decideTokenAccount(command, { ...target.state, lastOccurredAtMs: 0 });
      target.state = fold(tokenAccountDecider, target.state, events);
      toAppend.push(...events.map((event) => ({ id: randomUUID(), type: event.type, data: event.data })));
    }
    const result = await store.append(tokenAccountStreamId(target.userId), toAppend, { expectedRevision: target.revision < 0n ? 'no_stream' : target.revision });
    target.revision = result.nextRevision;
  }

  /**
   * Two histories the set-based statements judged otherwise: an opening lot whose second credit
   * (before lots) occurred, by its writer's clock, before the first; and a grant expiring a minute
   * after `now`, held in two holds, settled in one append, the later-appended settle keeping a time
   * before the expiry (decided again after a conflict, as a decision was before it kept to the
   * stream's latest time) and the other an hour after it.
   */
  async function histories(store: PostgresEventStore, opening: Account, grant: Account): Promise<void> {
    const at = (ms: number) => new Date(now.getTime() + ms).toISOString();
    const credits: EventToAppend[] = [
      { id: randomUUID(), type: 'TokensPurchased', data: { userId: opening.userId, transactionId: randomUUID(), paymentId: randomUUID(), amount: 80, description: null, balanceAfter: 80, occurredAt: at(5_000) } },
      { id: randomUUID(), type: 'TokensAdjusted', data: { userId: opening.userId, transactionId: randomUUID(), amount: 5, reason: 'Goodwill', balanceAfter: 85, occurredAt: at(1_000) } },
    ];
    await store.append(tokenAccountStreamId(opening.userId), credits, { expectedRevision: 'no_stream' });
    const [first, second] = [randomUUID(), randomUUID()];
    const userId = grant.userId;
    await run(store, grant, { type: 'GrantTokens', data: { userId, amount: 10, reason: 'Promotion', priority: 10, expiresAt: new Date(now.getTime() + 60_000), transactionId: randomUUID(), now } });
    for (const holdId of [first, second]) await run(store, grant, { type: 'HoldTokens', data: { userId, holdId, amount: 5, description: null, ttlSeconds: 7200, ttlSecondsMax: 7200, transactionId: randomUUID(), now } });
    await runTogether(store, grant, [
      { type: 'SettleHold', data: { userId, holdId: second, amount: 5, description: null, transactionId: randomUUID(), now: new Date(now.getTime() + 3_600_000) } },
      { type: 'SettleHold', data: { userId, holdId: first, amount: 5, description: null, transactionId: randomUUID(), now: new Date(now.getTime() + 30_000) } },
    ]);
  }

  it('writes the same lots inline, event by event and set-based: the first credit\'s time, and the emptying debit\'s', async () => {
    const store = storeWith(inline);
    const [inlineOpening, inlineGrant] = [account(), account()];
    await histories(store, inlineOpening, inlineGrant);
    const plain = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20 });
    stores.push(plain);
    const [runnerOpening, runnerGrant] = [account(), account()];
    await histories(plain, runnerOpening, runnerGrant);
    const runner = new ProjectionRunner(store, database.pool, tokenAccountsProjection, { batchSizeMax: 1, retryDelayMsMin: 10, retryDelayMsMax: 50 });
    runners.push(runner);
    runner.start();
    await caughtUp(runner);

    const shape = (rows: Awaited<ReturnType<typeof lotRows>>) => rows.map(({ lot_id: lotId, ...row }) => ({ ...row, lotId: lotId === 'opening' ? lotId : 'grant' }));
    const firstCredit = new Date(now.getTime() + 5_000);
    expect(shape(await lotRows(inlineOpening.userId))).toEqual([{ lotId: 'opening', status: 'active', remaining: '85', created_at: firstCredit }]);
    expect(shape(await lotRows(runnerOpening.userId))).toEqual(shape(await lotRows(inlineOpening.userId)));
    expect((await lotRows(inlineGrant.userId)).map((row) => [row.status, row.remaining])).toEqual([['spent', '0']]);
    expect(shape(await lotRows(runnerGrant.userId))).toEqual(shape(await lotRows(inlineGrant.userId)));
    for (const target of [inlineOpening, inlineGrant]) {
      const written = await lotRows(target.userId);
      await rebuildAccount(store, database.pool, [tokenAccountsProjection], target.userId);
      expect(await lotRows(target.userId)).toEqual(written);
    }
  });
});
