import { comparePositions, formatPosition, PostgresEventStore, type EventToAppend, type Position, type RecordedEvent } from '@app/event-store';
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import { rebuildAccount } from './account-rebuild.js';
import { applyEventByEvent } from './event-by-event.js';
import { readCheckpoint } from './checkpoints.js';
import { inlineTransactionsAfter, ProjectionRebuilds, shadowSchemaOf, type ProjectionRebuildsOptions, type RebuildView } from './projection-rebuild.js';
import { ProjectionRunner, type ProjectionRunnerOptions } from './projection-runner.js';
import { tableWrittenBy, type Projection } from './projection.js';
import { NOT_PROJECTION_TABLES, NotAProjectionTableError } from './shadow-tables.js';
import { appendDecided, nextCommand, nextCommandWithDisputes, nextCommandWithHoldsAndLots, nextCommandWithPayments, seededRandom, seededUuid, type CommandSource, type GeneratedAccount } from '@app/testing';
import { tokenAccountsProjection } from './read-models/token-accounts/token-accounts.projection.js';
import { InlineProjections } from './inline-projections.js';
import { fold, initialTokenAccountState, tokenAccountDecider, type TokenAccountCommand, type TokenAccountEvent } from '@app/ledger';

let database: TestDatabase;
let store: PostgresEventStore;
const runners: ProjectionRunner[] = [];
const rebuildServices: ProjectionRebuilds[] = [];
const inlineStores: PostgresEventStore[] = [];
const holders: (() => Promise<void>)[] = [];
const startAt = new Date('2026-11-24T12:00:00.000Z');

beforeEach(async () => {
  database = await createTestDatabase();
  store = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20 });
});

afterEach(async () => {
  await Promise.all(holders.splice(0).map((release) => release()));
  await Promise.all(rebuildServices.splice(0).map((service) => service.stop()));
  await Promise.all(inlineStores.splice(0).map((inline) => inline.close()));
  await Promise.all(runners.splice(0).map((runner) => runner.stop()));
  await store.close();
  await database.drop();
});

function newRunner(projection: Projection = tokenAccountsProjection, setBasedBatchMin?: number, onFallback?: ProjectionRunnerOptions['onFallback']): ProjectionRunner {
  const runner = new ProjectionRunner(store, database.pool, projection, { batchSizeMax: 200, retryDelayMsMin: 10, retryDelayMsMax: 50, setBasedBatchMin, onFallback });
  runners.push(runner);
  return runner;
}

function newRebuilds(overrides: Partial<ProjectionRebuildsOptions> = {}): ProjectionRebuilds {
  const service = new ProjectionRebuilds(store, database.pool, { connectionString: database.url, batchSizeMax: 100, chunkPositions: 250, ...overrides });
  rebuildServices.push(service);
  return service;
}

function accounts(random: () => number, count: number): GeneratedAccount[] {
  return Array.from({ length: count }, () => ({ userId: seededUuid(random), state: initialTokenAccountState, revision: -1n }));
}

/** Appends `rounds` rounds of up to `perRound` decided events per account, so streams interleave in $all. */
async function writeHistory(random: () => number, users: GeneratedAccount[], rounds: number, perRound: number, commands: CommandSource = nextCommand, target: PostgresEventStore = store): Promise<void> {
  for (let round = 0; round < rounds; round += 1) {
    for (const account of users) await appendDecided(target, random, account, 1 + Math.floor(random() * perRound), startAt, commands);
  }
}

/** A store whose appends apply the projection inline, in their own transaction, as the service's do. */
function inlineStore(): PostgresEventStore {
  const inline = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: 20, appendHook: new InlineProjections([tokenAccountsProjection]) });
  inlineStores.push(inline);
  return inline;
}

/**
 * A transaction with an id, left open on its own session: `$all` shows nothing of a transaction
 * younger than it until it ends, as a long write or a session idle after one would hold it back.
 */
async function holdAllBack(): Promise<{ readonly transactionId: string; readonly release: () => Promise<void> }> {
  const client = await database.pool.connect();
  await client.query('BEGIN');
  const result = await client.query<{ id: string }>('SELECT pg_current_xact_id()::text AS id');
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await client.query('COMMIT');
    client.release();
  };
  holders.push(release);
  return { transactionId: result.rows[0]?.id as string, release };
}

/** Inline transactions the live tables record after `transactionId`: committed, and hidden from `$all` while it is open. */
async function inlineTransactionsSince(transactionId: string): Promise<number> {
  const result = await database.pool.query<{ count: string }>('SELECT count(*) FROM token_accounts_inline_commits WHERE transaction_id > $1::text::xid8', [transactionId]);
  return Number(result.rows[0]?.count);
}

/**
 * `count` accounts with a history written inline (`rounds` rounds of up to `perRound` events), the live
 * runner caught up on it, then `$all` held back and `hiddenRounds` more rounds of up to `hiddenPerRound`
 * written inline: committed, recorded, and hidden from `$all` while the holder is open.
 */
async function writesBehindAHeldBackAll(seed: number, count: number, [rounds, perRound]: readonly [number, number], [hiddenRounds, hiddenPerRound]: readonly [number, number]) {
  const random = seededRandom(seed);
  const users = accounts(random, count);
  const inline = inlineStore();
  await writeHistory(random, users, rounds, perRound, nextCommandWithHoldsAndLots, inline);
  const runner = newRunner();
  runner.start();
  await caughtUp(runner);
  const holder = await holdAllBack();
  await writeHistory(random, users, hiddenRounds, hiddenPerRound, nextCommandWithHoldsAndLots, inline);
  return { random, users, inline, runner, holder, hidden: await inlineTransactionsSince(holder.transactionId) };
}

async function eventCount(): Promise<number> {
  const result = await database.pool.query<{ count: string }>('SELECT count(*) FROM events');
  return Number(result.rows[0]?.count);
}

/** Other databases' open transactions delay $all visibility (transaction ids are cluster-wide): wait until every event is readable. */
async function allVisible(): Promise<void> {
  const total = await eventCount();
  await waitUntil(async () => (await store.readAll({ maxCount: 10_000 })).length === total);
}

// Generous: on a loaded machine (tests of several branches at once) a live runner can lag far behind.
async function waitUntil(condition: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Writes a seeded history of `users` accounts, `rounds` rounds of up to `perRound` events, and builds the read models incrementally (the runner stopped after). */
async function builtHistory(seed: number, users: number, rounds: number, perRound: number): Promise<void> {
  const random = seededRandom(seed);
  await writeHistory(random, accounts(random, users), rounds, perRound);
  const runner = newRunner();
  runner.start();
  await caughtUp(runner);
  await runner.stop();
}

/**
 * Starts a rebuild of token_accounts and holds it inside its swap transaction (the live checkpoint
 * locked by another session) until `whileHeld` has run; the lock is released, always, after it.
 */
async function startHeldInItsSwap(rebuilds: ProjectionRebuilds, whileHeld: (started: RebuildView) => Promise<void>): Promise<RebuildView> {
  const holder = await database.pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query("SELECT * FROM projection_checkpoints WHERE name = 'token_accounts' FOR UPDATE");
    const started = await rebuilds.start(tokenAccountsProjection.name);
    await waitUntil(async () => (await rebuilds.get(started.id))?.phase === 'swapping');
    await whileHeld(started);
    return started;
  } finally {
    // An open transaction holds back $all visibility for every database of the server: never leave it open.
    await holder.query('ROLLBACK');
    holder.release();
  }
}

/** The last event written to this database, whether or not `$all` shows it yet. */
async function lastWritten(): Promise<Position | undefined> {
  const result = await database.pool.query<{ commit: string; prepare: string }>(
    'SELECT transaction_id::text AS commit, global_position::text AS prepare FROM events ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1',
  );
  const row = result.rows[0];
  return row === undefined ? undefined : { commit: BigInt(row.commit), prepare: BigInt(row.prepare) };
}

/**
 * Waits until the runner has applied every event written so far; call it once the writes are done.
 * It compares with the last event written, not with `store.headPosition()`: the head is only what
 * `$all` shows now, and a transaction open in another database of the server (test files run in
 * parallel, transaction ids are cluster-wide) holds it back, so a runner at that head may lack the
 * latest writes.
 */
async function caughtUp(runner: ProjectionRunner, options: { readonly afterSwap?: boolean } = {}): Promise<void> {
  await waitUntil(async () => {
    const last = await lastWritten();
    const checkpoint = await readCheckpoint(database.pool, tokenAccountsProjection.name);
    return last !== undefined && checkpoint !== undefined && comparePositions(last, checkpoint) === 0 && following(runner, last, options.afterSwap ?? false);
  });
}

/**
 * Whether the runner follows the store up to `last`: running; or, after a rebuild swapped under it
 * (`afterSwap`), back in `catching_up` from the moved checkpoint, which it has read: a swap that
 * moved the checkpoint to the head of a store that then gets no event leaves it there until the next
 * event (the status route reports it running).
 */
function following(runner: ProjectionRunner, last: Position, afterSwap: boolean): boolean {
  if (runner.state === 'running') return true;
  return afterSwap && runner.state === 'catching_up' && runner.position !== undefined && comparePositions(runner.position, last) === 0;
}

type Dump = { users: unknown[]; transactions: unknown[]; payments: unknown[]; holds: unknown[]; lots: unknown[] };

/** Every row of the projection's three tables, in a fixed order, as text: equal dumps mean identical read models. */
async function dump(pool: Pool): Promise<Dump> {
  const users = await pool.query('SELECT user_tokens::text AS row FROM user_tokens ORDER BY user_id');
  const transactions = await pool.query('SELECT token_transactions::text AS row FROM token_transactions ORDER BY event_id');
  const payments = await pool.query('SELECT payments::text AS row FROM payments ORDER BY id');
  const holds = await pool.query('SELECT token_holds::text AS row FROM token_holds ORDER BY hold_id');
  const lots = await pool.query('SELECT token_lots::text AS row FROM token_lots ORDER BY user_id, lot_id');
  return { users: users.rows, transactions: transactions.rows, payments: payments.rows, holds: holds.rows, lots: lots.rows };
}

/** The rows an incremental build gives: a fresh runner from position 0 on cleared tables (and no inline transactions to skip). */
async function incrementalDump(): Promise<Dump> {
  await database.pool.query('TRUNCATE user_tokens, token_transactions, payments, token_holds, token_lots, token_accounts_inline_commits');
  await database.pool.query('DELETE FROM projection_checkpoints');
  const runner = newRunner();
  runner.start();
  await caughtUp(runner);
  await runner.stop();
  return dump(database.pool);
}

/** Once the runner has applied every event written: the rows equal an incremental build of the same events. */
async function expectIncrementalOnceCaughtUp(runner: ProjectionRunner): Promise<void> {
  await caughtUp(runner);
  const rebuilt = await dump(database.pool);
  await runner.stop();
  expect(await incrementalDump()).toEqual(rebuilt);
}

/**
 * For the specs that write while a rebuild runs: the writers go on for as long as the rebuild does,
 * so a slower machine writes more events to rebuild and to build again incrementally (21 to 31 s
 * alone on a loaded 2-core host, past the default 30 s).
 */
const REBUILD_WHILE_WRITING_TIMEOUT_MS = 120_000;

/**
 * Starts the live runner and rebuilds while `write` keeps appending; returns the rows once the
 * writes have stopped and the runner has applied every event.
 */
async function rebuildWhileWriting(write: () => Promise<void>): Promise<Dump> {
  const runner = newRunner();
  runner.start();
  let writing = true;
  const writer = (async () => {
    while (writing) await write();
  })();
  const rebuilds = newRebuilds();
  const started = await rebuilds.start(tokenAccountsProjection.name);
  const finished = await rebuilds.settled(started.id);
  writing = false;
  await writer;
  expect(finished.phase).toBe('completed');
  await caughtUp(runner, { afterSwap: true });
  const rebuilt = await dump(database.pool);
  await runner.stop();
  return rebuilt;
}

async function indexNames(): Promise<string[]> {
  const result = await database.pool.query<{ name: string }>(
    "SELECT indexname AS name FROM pg_indexes WHERE schemaname = 'public' AND tablename IN ('user_tokens', 'token_transactions') ORDER BY indexname",
  );
  return result.rows.map((row) => row.name);
}

/**
 * The live tables' constraints (name, kind, definition) and indexes (definition, valid and ready):
 * the shadow's indexes are built concurrently and the constraints attached to them, so after a swap
 * these must be what they were, every index valid.
 */
async function schemaShape(): Promise<{ constraints: unknown[]; indexes: unknown[] }> {
  const tables = ['user_tokens', 'token_transactions', 'payments'];
  const constraints = await database.pool.query(
    `SELECT cl.relname AS table, c.conname AS name, c.contype AS type, pg_get_constraintdef(c.oid) AS definition
       FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
      WHERE n.nspname = 'public' AND cl.relname = ANY($1::text[]) ORDER BY 1, 2`,
    [tables],
  );
  const indexes = await database.pool.query(
    `SELECT pg_get_indexdef(i.indexrelid) AS definition, i.indisvalid AS valid, i.indisready AS ready
       FROM pg_index i JOIN pg_class cl ON cl.oid = i.indrelid JOIN pg_namespace n ON n.oid = cl.relnamespace
      WHERE n.nspname = 'public' AND cl.relname = ANY($1::text[]) ORDER BY 1`,
    [tables],
  );
  return { constraints: constraints.rows, indexes: indexes.rows };
}

describe('projection rebuild', () => {
  it('builds set-based rows identical to the incremental build, with the same index and constraint names, and swaps them in', async () => {
    const random = seededRandom(7);
    await writeHistory(random, accounts(random, 12), 6, 8);
    await allVisible();
    const runner = newRunner();
    runner.start();
    await caughtUp(runner);
    const before = await dump(database.pool);
    const indexesBefore = await indexNames();
    const shapeBefore = await schemaShape();
    expect(shapeBefore.indexes.length).toBeGreaterThan(8);

    const rebuilds = newRebuilds();
    const started = await rebuilds.start(tokenAccountsProjection.name);
    const finished = await rebuilds.settled(started.id);
    expect(finished).toMatchObject({ phase: 'completed', error: null, eventsDone: await eventCount(), eventsTotal: await eventCount() });
    expect(await dump(database.pool)).toEqual(before);
    expect(await indexNames()).toEqual(indexesBefore);
    expect(await schemaShape()).toEqual(shapeBefore);
    expect(shapeBefore.indexes).toEqual(shapeBefore.indexes.map((index) => ({ ...(index as object), valid: true, ready: true })));
    const schemas = await database.pool.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild_%'");
    expect(schemas.rows).toEqual([]);
    await runner.stop();
    expect(await incrementalDump()).toEqual(before);
  });

  it('merges a later range into bulk-loaded rows set-based (the delta), identically to the incremental build', async () => {
    const random = seededRandom(13);
    const users = accounts(random, 8);
    await writeHistory(random, users, 4, 6);
    await allVisible();
    const events = await store.readAll({ maxCount: 10_000 });
    const expected = await incrementalDump();
    const bulk = tokenAccountsProjection.bulkLoad;
    if (bulk === undefined) throw new Error('token_accounts has a bulk load');
    for (const cut of [0, 1, Math.floor(events.length / 3), events.length - 1]) {
      const middle = (events[cut] as RecordedEvent).position;
      const head = (events[events.length - 1] as RecordedEvent).position;
      const values = (position: Position) => [position.commit.toString(), position.prepare.toString()];
      await database.pool.query('TRUNCATE user_tokens, token_transactions, payments, token_holds, token_lots');
      for (const statement of bulk.chunked) await database.pool.query(statement, [...values(middle), '0', '9223372036854775807']);
      for (const statement of bulk.final.flat()) await database.pool.query(statement, values(middle));
      for (const statement of bulk.delta) await database.pool.query(statement, [...values(middle), ...values(head)]);
      expect(await dump(database.pool)).toEqual(expected);
    }
  });

  it('runs its final lists side by side only on tables no other list writes', () => {
    // Two lists updating the same rows in different orders could each wait on the other's row locks.
    const lists = tokenAccountsProjection.bulkLoad?.final.map((statements) => statements.map(tableWrittenBy)) ?? [];
    expect(lists.length).toBeGreaterThan(1);
    expect(lists.flat()).not.toContain(undefined);
    for (const [index, tables] of lists.entries()) {
      const others = new Set(lists.filter((_, other) => other !== index).flat());
      expect(tables.filter((table) => others.has(table))).toEqual([]);
    }
  });

  it('builds event by event, identically, for a projection without a bulk load', async () => {
    const random = seededRandom(8);
    await writeHistory(random, accounts(random, 5), 4, 5);
    await allVisible();
    const { bulkLoad: _bulk, ...eventByEvent } = tokenAccountsProjection;
    const rebuilds = newRebuilds({ projections: [eventByEvent], batchSizeMax: 7, swapLagEventsMax: 10 });
    const started = await rebuilds.start(tokenAccountsProjection.name);
    expect(await rebuilds.settled(started.id)).toMatchObject({ phase: 'completed', eventsDone: await eventCount() });
    const rebuilt = await dump(database.pool);
    expect(rebuilt.transactions).toHaveLength(await eventCount());
    expect(await incrementalDump()).toEqual(rebuilt);
  });

  it('fails at an event it cannot apply, records the error, drops the shadow and leaves the live tables alone', async () => {
    const random = seededRandom(14);
    await writeHistory(random, accounts(random, 4), 3, 4);
    await allVisible();
    const runner = newRunner();
    runner.start();
    await caughtUp(runner);
    const before = await dump(database.pool);
    const poison = (await store.readAll({ maxCount: 10_000 }))[5] as RecordedEvent;
    const { bulkLoad: _bulk, ...eventByEvent } = tokenAccountsProjection;
    const broken: Projection = {
      ...eventByEvent,
      project: (event) => {
        if (event.id === poison.id) throw new Error('handler bug');
        return tokenAccountsProjection.project(event);
      },
    };
    const rebuilds = newRebuilds({ projections: [broken], swapLagEventsMax: 0 });
    const started = await rebuilds.start(tokenAccountsProjection.name);
    expect(await rebuilds.settled(started.id)).toMatchObject({
      phase: 'failed',
      error: `event ${formatPosition(poison.position)} (${poison.type}): handler bug`,
      finishedAt: expect.any(String) as unknown,
    });
    expect(await dump(database.pool)).toEqual(before);
    expect((await database.pool.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild_%'")).rows).toEqual([]);
    expect(runner.state).toBe('running');
  });

  it('is marked failed with its shadow dropped when its process shuts down before it finishes', async () => {
    const random = seededRandom(15);
    await writeHistory(random, accounts(random, 3), 2, 4);
    const holder = await database.pool.connect();
    const rebuilds = newRebuilds({ swapLockTimeoutMs: 100 });
    let id: string;
    try {
      await holder.query('BEGIN');
      await holder.query("INSERT INTO projection_checkpoints (name, commit_position, prepare_position) VALUES ('token_accounts', 0, 0)");
      id = (await rebuilds.start(tokenAccountsProjection.name)).id;
      await waitUntil(async () => (await rebuilds.get(id))?.phase === 'swapping');
      await rebuilds.stop();
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await rebuilds.get(id)).toMatchObject({ phase: 'failed', error: 'stopped before it finished (process shutdown)' });
    expect((await database.pool.query('SELECT count(*)::int AS count FROM user_tokens')).rows).toEqual([{ count: 0 }]);
    expect((await database.pool.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild_%'")).rows).toEqual([]);
  });

  it('refuses a second rebuild of a projection while one runs, and allows one after', async () => {
    const random = seededRandom(9);
    await writeHistory(random, accounts(random, 3), 2, 3);
    // The swap waits on the live checkpoint while a transaction holds it, which keeps the first rebuild running.
    const holder = await database.pool.connect();
    const rebuilds = newRebuilds({ swapLockTimeoutMs: 60_000 });
    let racing: PromiseSettledResult<{ id: string }>[];
    try {
      await holder.query('BEGIN');
      await holder.query("INSERT INTO projection_checkpoints (name, commit_position, prepare_position) VALUES ('token_accounts', 0, 0)");
      racing = await Promise.allSettled(Array.from({ length: 5 }, () => rebuilds.start(tokenAccountsProjection.name)));
    } finally {
      // An open transaction holds back $all visibility for every database of the server: never leave it open.
      await holder.query('ROLLBACK');
      holder.release();
    }
    const started = racing.filter((outcome) => outcome.status === 'fulfilled');
    const refused = racing.filter((outcome) => outcome.status === 'rejected').map((outcome) => outcome.reason as unknown);
    expect(started).toHaveLength(1);
    expect(refused).toHaveLength(4);
    for (const reason of refused) expect(reason).toMatchObject({ name: 'RebuildInProgressError', rebuildId: (started[0] as PromiseFulfilledResult<{ id: string }>).value.id });
    const first = (started[0] as PromiseFulfilledResult<{ id: string }>).value;
    expect(await rebuilds.settled(first.id)).toMatchObject({ phase: 'completed' });
    const second = await rebuilds.start(tokenAccountsProjection.name);
    expect(await rebuilds.settled(second.id)).toMatchObject({ phase: 'completed' });
  });

  it('refuses to swap in shadow tables a migration left behind (a column added to a live table meanwhile), and leaves the live tables as they are', async () => {
    await builtHistory(12, 3, 2, 3);
    const before = await dump(database.pool);
    const rebuilds = newRebuilds({ swapLockTimeoutMs: 60_000 });
    // A migration of a live table while the swap waits.
    const started = await startHeldInItsSwap(rebuilds, async () => {
      await database.pool.query("ALTER TABLE token_lots ADD COLUMN note text NOT NULL DEFAULT ''");
    });
    const ended = await rebuilds.settled(started.id);
    expect(ended).toMatchObject({ phase: 'failed', error: expect.stringContaining('the live table token_lots changed while the rebuild ran (a migration?): the shadow lacks column note text not null default') as unknown });
    const columns = await database.pool.query("SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'token_lots' AND column_name = 'note'");
    expect(columns.rowCount).toBe(1);
    await database.pool.query('ALTER TABLE token_lots DROP COLUMN note');
    expect(await dump(database.pool)).toEqual(before);
    const again = await rebuilds.start(tokenAccountsProjection.name);
    expect(await rebuilds.settled(again.id)).toMatchObject({ phase: 'completed' });
    expect(await dump(database.pool)).toEqual(before);
  });

  it.each([
    [
      'an index recreated under its name with another definition',
      async () => {
        const { rows } = await database.pool.query<{ name: string }>(
          "SELECT indexname AS name FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'token_lots' AND indexname NOT IN (SELECT conname FROM pg_constraint) ORDER BY indexname LIMIT 1",
        );
        const name = rows[0]?.name ?? 'no index on token_lots';
        await database.pool.query(`DROP INDEX ${name}`);
        await database.pool.query(`CREATE INDEX ${name} ON token_lots (user_id, lot_id)`);
        return `index ${name}: CREATE INDEX ${name} ON token_lots USING btree (user_id, lot_id)`;
      },
    ],
    [
      'a CHECK constraint added',
      async () => {
        await database.pool.query('ALTER TABLE token_lots ADD CONSTRAINT token_lots_sane CHECK (remaining >= 0)');
        return 'check token_lots_sane: CHECK ((remaining >= 0))';
      },
    ],
  ])('refuses to swap in shadow tables a migration left behind (%s), naming it', async (_, migrate) => {
    await builtHistory(13, 3, 2, 3);
    const rebuilds = newRebuilds({ swapLockTimeoutMs: 60_000 });
    let changed = '';
    const started = await startHeldInItsSwap(rebuilds, async () => {
      changed = await migrate();
    });
    expect(await rebuilds.settled(started.id)).toMatchObject({ phase: 'failed', error: expect.stringContaining(`the live table token_lots changed while the rebuild ran (a migration?): the shadow lacks ${changed}`) as unknown });
  });

  it('moves the tables without a deadlock with a reader that locks them in another order (the lot list: token_lots, then payments): the reader waits briefly, the swap completes', async () => {
    await builtHistory(15, 3, 2, 3);
    const before = await dump(database.pool);
    const logs: string[] = [];
    const rebuilds = newRebuilds({ swapLockTimeoutMs: 10_000, onLog: (line) => logs.push(line) });
    const reader = await database.pool.connect();
    let startedId: string;
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM token_lots');
      // The swap, once it reaches the moves, waits for the reader's lock on token_lots.
      startedId = (await rebuilds.start(tokenAccountsProjection.name)).id;
      await waitUntil(async () => {
        const waiting = await database.pool.query(
          "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'token_lots' AND l.mode = 'AccessExclusiveLock' AND NOT l.granted",
        );
        return (waiting.rowCount ?? 0) > 0;
      }, 20_000);
      // The reader goes on to a table the swap moved before token_lots: it waits at most one try of the swap's, never in a cycle.
      await reader.query("SET LOCAL statement_timeout = '5s'");
      await reader.query('SELECT count(*) FROM payments');
      await reader.query('COMMIT');
    } finally {
      await reader.query('ROLLBACK').catch(() => undefined);
      reader.release();
    }
    expect(await rebuilds.settled(startedId)).toMatchObject({ phase: 'completed', error: null });
    // Not by the swap's retry after PostgreSQL ended a deadlock by failing it: there was none.
    expect(logs.filter((line) => /deadlock|trying again/.test(line))).toEqual([]);
    expect(await dump(database.pool)).toEqual(before);
  });

  it('leaves the live tables untouched when killed during the swap, and can be started again', async () => {
    await builtHistory(10, 6, 4, 6);
    const before = await dump(database.pool);
    const checkpointBefore = await readCheckpoint(database.pool, tokenAccountsProjection.name);

    // Hold the live checkpoint so the rebuild stops inside its swap transaction, then kill its session.
    const rebuilds = newRebuilds({ swapLockTimeoutMs: 60_000 });
    const started = await startHeldInItsSwap(rebuilds, async (held) => {
      await waitUntil(async () => {
        const waiting = await database.pool.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'token-ledger rebuild token_accounts' AND wait_event_type = 'Lock' AND datname = current_database()");
        return waiting.rowCount === 1;
      });
      expect(await rebuilds.running(tokenAccountsProjection.name)).toBe(true);
      expect(await rebuilds.get(held.id)).toMatchObject({ interrupted: false });
      await database.pool.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'token-ledger rebuild token_accounts' AND datname = current_database()");
      await rebuilds.settled(held.id);
      // The session died with its lock: the unfinished row is now known to be interrupted.
      await waitUntil(async () => !(await rebuilds.running(tokenAccountsProjection.name)));
    });

    // Read by id too, the unfinished row says it is interrupted, and promises no end.
    expect(await rebuilds.get(started.id)).toMatchObject({ phase: 'swapping', interrupted: true, etaSeconds: null });
    expect(await dump(database.pool)).toEqual(before);
    expect(await readCheckpoint(database.pool, tokenAccountsProjection.name)).toEqual(checkpointBefore);
    const shadow = await database.pool.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild_%'");
    expect(shadow.rows).toHaveLength(1);

    const again = await rebuilds.start(tokenAccountsProjection.name);
    expect(await rebuilds.settled(again.id)).toMatchObject({ phase: 'completed' });
    expect(await rebuilds.get(started.id)).toMatchObject({ phase: 'failed', interrupted: false, error: expect.stringContaining('interrupted during swapping') as unknown });
    expect(await dump(database.pool)).toEqual(before);
    const leftovers = await database.pool.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild_%'");
    expect(leftovers.rows).toEqual([]);
  });

  it('drops the schemas an ended rebuild left (its process died between the swap and the drop) when the next rebuild starts', async () => {
    const rebuilds = newRebuilds();
    const first = await rebuilds.start(tokenAccountsProjection.name);
    expect(await rebuilds.settled(first.id)).toMatchObject({ phase: 'completed' });
    const row = await database.pool.query<{ shadow_schema: string }>('SELECT shadow_schema FROM projection_rebuilds WHERE id = $1', [first.id]);
    const shadowSchema = row.rows[0]?.shadow_schema ?? '';
    // As the swap left them: the retired live tables, and the emptied shadow schema.
    await database.pool.query(`CREATE SCHEMA "${shadowSchema}_retired"; CREATE TABLE "${shadowSchema}_retired".user_tokens (user_id uuid); CREATE SCHEMA "${shadowSchema}"`);
    const again = await rebuilds.start(tokenAccountsProjection.name);
    expect(await rebuilds.settled(again.id)).toMatchObject({ phase: 'completed' });
    const leftovers = await database.pool.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild_%'");
    expect(leftovers.rows).toEqual([]);
  });

  it("names a rebuild's shadow schema by its whole id, and the database refuses a second rebuild naming the same schema", async () => {
    const rebuilds = newRebuilds();
    const first = await rebuilds.start(tokenAccountsProjection.name);
    expect(await rebuilds.settled(first.id)).toMatchObject({ phase: 'completed' });
    const row = await database.pool.query<{ shadow_schema: string }>('SELECT shadow_schema FROM projection_rebuilds WHERE id = $1', [first.id]);
    expect(row.rows[0]?.shadow_schema).toBe(`rebuild_${first.id.replaceAll('-', '')}`);
    expect(shadowSchemaOf(first.id)).toBe(row.rows[0]?.shadow_schema);
    await expect(
      database.pool.query("INSERT INTO projection_rebuilds (id, projection, phase, shadow_schema) VALUES ($1, 'token_accounts', 'failed', $2)", [randomUUID(), row.rows[0]?.shadow_schema]),
    ).rejects.toMatchObject({ code: '23505', constraint: 'projection_rebuilds_shadow_schema_unique' });
  });

  it('completes a rebuild whose schemas cannot be dropped after the swap, leaves them, and drops them at a later start once they can be', async () => {
    const random = seededRandom(43);
    await writeHistory(random, accounts(random, 3), 2, 3);
    // Another test's open transaction elsewhere on the server may hide the newest events from $all a while.
    await allVisible();
    // A DDL event trigger refuses every DROP SCHEMA in this database until it is dropped.
    await database.pool.query(`CREATE FUNCTION refuse_schema_drops() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'schema drops refused by the test'; END $$;
                               CREATE EVENT TRIGGER refuse_schema_drops ON ddl_command_start WHEN TAG IN ('DROP SCHEMA') EXECUTE FUNCTION refuse_schema_drops()`);
    const logs: string[] = [];
    const rebuilds = newRebuilds({ onLog: (line) => logs.push(line) });
    let rebuilt: Dump | undefined;
    const schemas = async () => (await database.pool.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rebuild_%' ORDER BY nspname")).rows.map((row) => row.nspname);
    try {
      const first = await rebuilds.start(tokenAccountsProjection.name);
      expect(await rebuilds.settled(first.id)).toMatchObject({ phase: 'completed', error: null });
      rebuilt = await dump(database.pool);
      const row = await database.pool.query<{ shadow_schema: string }>('SELECT shadow_schema FROM projection_rebuilds WHERE id = $1', [first.id]);
      const shadowSchema = row.rows[0]?.shadow_schema ?? '';
      expect(await schemas()).toEqual([shadowSchema, `${shadowSchema}_retired`]);
      expect(logs.filter((line) => line.includes('could not drop'))).toEqual([
        expect.stringContaining(`could not drop ${shadowSchema}_retired (error: schema drops refused by the test); the next rebuild drops it`),
        expect.stringContaining(`could not drop ${shadowSchema} (error: schema drops refused by the test); the next rebuild drops it`),
      ]);

      // A leftover that still cannot be dropped never stops the next rebuild.
      const second = await rebuilds.start(tokenAccountsProjection.name);
      expect(await rebuilds.settled(second.id)).toMatchObject({ phase: 'completed', error: null });
      expect(logs.filter((line) => line.includes('left by an ended rebuild, could not be dropped'))).toHaveLength(2);
      expect(await schemas()).toHaveLength(4);
      expect(await dump(database.pool)).toEqual(rebuilt);
    } finally {
      await database.pool.query('DROP EVENT TRIGGER refuse_schema_drops; DROP FUNCTION refuse_schema_drops()');
    }
    const third = await rebuilds.start(tokenAccountsProjection.name);
    expect(await rebuilds.settled(third.id)).toMatchObject({ phase: 'completed' });
    expect(await schemas()).toEqual([]);
    expect(await dump(database.pool)).toEqual(rebuilt);
    expect(await incrementalDump()).toEqual(rebuilt);
  });

  it('rebuilds while the live runner runs and writes go on: the result equals the incremental build', async () => {
    const random = seededRandom(11);
    const users = accounts(random, 10);
    await writeHistory(random, users, 5, 6);
    const rebuilt = await rebuildWhileWriting(() => writeHistory(random, users, 1, 3));
    expect(rebuilt.transactions).toHaveLength(await eventCount());
    expect(await incrementalDump()).toEqual(rebuilt);
  }, REBUILD_WHILE_WRITING_TIMEOUT_MS);

  // A transaction left open elsewhere hides every inline transaction committed since from `$all`; the
  // swap, with writes locked, once carried them all over (about 0.5 ms each). Passes ahead of it carry
  // them in short transactions while writes go on; with nothing written meanwhile, the swap carries none.
  it('carries the inline transactions a held-back $all hides over before the swap, in passes of at most carryOverStepMax, and the swap carries none', async () => {
    const { runner, holder, hidden } = await writesBehindAHeldBackAll(41, 8, [3, 4], [5, 3]);
    expect(hidden).toBeGreaterThanOrEqual(30);

    const logs: string[] = [];
    const rebuilds = newRebuilds({ carryOverStepMax: 7, swapCarryOverMax: 0, onLog: (message) => logs.push(message) });
    const finished = await rebuilds.settled((await rebuilds.start(tokenAccountsProjection.name)).id);
    expect(finished).toMatchObject({ phase: 'completed', error: null });
    // Passes of 7 until none is left (swapCarryOverMax 0).
    expect(logs).toContain(`rebuild of token_accounts: carried ${hidden} inline transactions over ahead of the swap, in ${Math.ceil(hidden / 7)} passes`);
    expect(logs.filter((line) => line.startsWith('rebuild of token_accounts: the swap carried 0 inline transactions over, holding writes for '))).toHaveLength(1);

    // Nothing written after the swap: every row is as the carry-over left it.
    await holder.release();
    await expectIncrementalOnceCaughtUp(runner);
  }, REBUILD_WHILE_WRITING_TIMEOUT_MS);

  // An append without the inline projection (a process of an older version) is recorded nowhere and
  // applied from `$all` once it shows: a pass must not carry a later transaction of its account first.
  it('carries ahead of the swap only the inline transactions before the first append made without the inline projection', async () => {
    const { random, users, inline, runner, holder, hidden: before } = await writesBehindAHeldBackAll(53, 4, [2, 3], [2, 2]);
    await writeHistory(random, users.slice(0, 1), 1, 1, nextCommandWithHoldsAndLots, store);
    await writeHistory(random, users, 2, 2, nextCommandWithHoldsAndLots, inline);
    const after = (await inlineTransactionsSince(holder.transactionId)) - before;
    expect(before).toBeGreaterThan(0);
    expect(after).toBeGreaterThan(0);

    const logs: string[] = [];
    const rebuilds = newRebuilds({ carryOverStepMax: 3, swapCarryOverMax: 0, onLog: (message) => logs.push(message) });
    const finished = await rebuilds.settled((await rebuilds.start(tokenAccountsProjection.name)).id);
    expect(finished).toMatchObject({ phase: 'completed', error: null });
    // Passes of 3 up to the append without it, and one more that finds only transactions past it.
    expect(logs).toContain(`rebuild of token_accounts: carried ${before} inline transactions over ahead of the swap, in ${Math.ceil(before / 3) + 1} passes`);
    expect(logs.filter((line) => line.startsWith(`rebuild of token_accounts: the swap carried ${after} inline transactions over, holding writes for `))).toHaveLength(1);
    await holder.release();
    await caughtUp(runner);
    await runner.stop();
  }, REBUILD_WHILE_WRITING_TIMEOUT_MS);

  it('refuses carry-over options under which passes could never carry more than the swap would', () => {
    expect(() => newRebuilds({ carryOverStepMax: 10, swapCarryOverMax: 10 })).toThrow('swapCarryOverMax must be a whole number below carryOverStepMax (10), not 10');
    expect(() => newRebuilds({ carryOverStepMax: 0 })).toThrow('carryOverStepMax must be a whole number of at least 1, not 0');
  });

  it('hands the carry-over to the swap when passes ahead of it find the live checkpoint held through five lock timeouts', async () => {
    const { runner, holder, hidden } = await writesBehindAHeldBackAll(47, 4, [2, 3], [3, 2]);
    // An operator's transaction on the checkpoint row: the passes give way after five lock timeouts, and the swap tries in turn.
    const checkpointHolder = await database.pool.connect();
    const logs: string[] = [];
    let finished: RebuildView;
    try {
      await checkpointHolder.query('BEGIN');
      await checkpointHolder.query("SELECT * FROM projection_checkpoints WHERE name = 'token_accounts' FOR UPDATE");
      const rebuilds = newRebuilds({ swapLockTimeoutMs: 100, onLog: (message) => logs.push(message) });
      const started = await rebuilds.start(tokenAccountsProjection.name);
      await waitUntil(() => logs.some((line) => line.includes('passes ahead of the swap waited too long for a lock 5 times')));
      await checkpointHolder.query('COMMIT');
      finished = await rebuilds.settled(started.id);
    } finally {
      await checkpointHolder.query('ROLLBACK').catch(() => undefined);
      checkpointHolder.release();
    }
    expect(finished).toMatchObject({ phase: 'completed', error: null });
    expect(logs.filter((line) => line.includes('ahead of the swap, in'))).toEqual([]);
    expect(logs.filter((line) => line.startsWith(`rebuild of token_accounts: the swap carried ${hidden} inline transactions over, holding writes for `))).toHaveLength(1);

    await holder.release();
    await expectIncrementalOnceCaughtUp(runner);
  }, REBUILD_WHILE_WRITING_TIMEOUT_MS);

  // Once the holder ends, `$all` shows the carried transactions: the passes still to come and the swap
  // reach a head past them and must skip them, set-based (the delta) or event by event (a projection
  // whose bulk load covers no event type), while writes and the runner go on.
  it.each([
    ['set-based', tokenAccountsProjection],
    ['event by event', { ...tokenAccountsProjection, bulkLoad: { ...tokenAccountsProjection.bulkLoad!, eventTypes: [] } }],
  ])('skips what it carried once $all shows it again, %s, while writes go on: the result equals the incremental build', async (_kind, projection: Projection) => {
    const { random, users, inline, runner, holder, hidden } = await writesBehindAHeldBackAll(43, 8, [2, 4], [40, 2]);

    const logs: string[] = [];
    const rebuilds = newRebuilds({ projections: [projection], carryOverStepMax: 20, swapCarryOverMax: 2, onLog: (message) => logs.push(message) });
    const started = await rebuilds.start(projection.name);
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await writeHistory(random, users.slice(0, 4), 1, 2, nextCommandWithHoldsAndLots, inline);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    // Ends the hold after the first pass and long before the last (about `hidden / 20` passes).
    const shadowSchema = (await database.pool.query<{ shadow_schema: string }>('SELECT shadow_schema FROM projection_rebuilds WHERE id = $1', [started.id])).rows[0]?.shadow_schema as string;
    const carriedTable = `${shadowSchema}.token_accounts_inline_commits`;
    await waitUntil(async () => {
      const exists = await database.pool.query<{ table: string | null }>('SELECT to_regclass($1)::text AS table', [carriedTable]);
      return exists.rows[0]?.table !== null && ((await database.pool.query(`SELECT 1 FROM ${carriedTable} LIMIT 1`)).rowCount ?? 0) > 0;
    });
    // The live checkpoint held stops the passes (they wait for it) until the hold has ended and `$all`
    // shows the first carried transaction, whatever else on the server holds it back meanwhile: the
    // passes after it and the swap then reach a head past what was carried, and must skip it.
    const checkpointHolder = await database.pool.connect();
    let firstCarried: bigint;
    let carriedAtRelease: number;
    try {
      await checkpointHolder.query('BEGIN');
      await checkpointHolder.query("SELECT * FROM projection_checkpoints WHERE name = 'token_accounts' FOR UPDATE");
      const carried = (await database.pool.query<{ first: string; count: string }>(`SELECT min(transaction_id)::text AS first, count(*)::text AS count FROM ${carriedTable}`)).rows[0];
      firstCarried = BigInt(carried?.first as string);
      carriedAtRelease = Number(carried?.count);
      await holder.release();
      await waitUntil(async () => ((await store.headPosition())?.commit ?? 0n) > firstCarried);
    } finally {
      await checkpointHolder.query('COMMIT');
      checkpointHolder.release();
    }
    const finished = await rebuilds.settled(started.id);
    writing = false;
    await writer;
    expect(finished).toMatchObject({ phase: 'completed', error: null });
    expect(carriedAtRelease).toBeLessThan(hidden);
    expect(BigInt((finished.position as string).split('/')[0] as string)).toBeGreaterThan(firstCarried);
    expect(logs.some((line) => line.startsWith('rebuild of token_accounts: carried '))).toBe(true);

    await expectIncrementalOnceCaughtUp(runner);
  }, REBUILD_WHILE_WRITING_TIMEOUT_MS);

  // The swap once applied the transactions it carries over one at a time in this list's order, sorted
  // as text (1000 before 981), and left balances behind their history. It merges them set-based now,
  // whatever the order; the list stays in id order, and this keeps the text-order slip from returning.
  it('lists the inline transactions to carry over in transaction id order, not in the order of their text', async () => {
    const ids = [9n, 10n, 99n, 100n, 981n, 1_000n, 99_999n, 100_000n, 4_294_967_296n];
    await database.pool.query('INSERT INTO token_accounts_inline_commits (transaction_id) SELECT unnest($1::text[]::xid8[])', [ids.map(String).reverse()]);
    const client = await database.pool.connect();
    try {
      expect(await inlineTransactionsAfter(client, 'public.token_accounts_inline_commits', 9n)).toEqual(ids.slice(1));
      expect(await inlineTransactionsAfter(client, 'public.token_accounts_inline_commits', 100_000n)).toEqual([4_294_967_296n]);
    } finally {
      client.release();
    }
  });
});

describe('per-account rebuild', () => {
  it("recomputes one account's rows from its stream, up to the checkpoint, while writes race on that account", async () => {
    const random = seededRandom(12);
    const users = accounts(random, 4);
    await writeHistory(random, users, 3, 5);
    const runner = newRunner();
    runner.start();
    await caughtUp(runner);
    const target = users[0] as GeneratedAccount;
    // Damage the account's rows the way a projection bug would.
    await database.pool.query('UPDATE user_tokens SET balance = balance + 5 WHERE user_id = $1', [target.userId]);
    await database.pool.query('DELETE FROM token_transactions WHERE user_id = $1 AND stream_revision = 0', [target.userId]);

    const writes = (async () => {
      for (let round = 0; round < 10; round += 1) await appendDecided(store, random, target, 2, startAt);
    })();
    const rebuilds = await Promise.all(Array.from({ length: 5 }, () => rebuildAccount(store, database.pool, [tokenAccountsProjection], target.userId)));
    await writes;
    for (const result of rebuilds) expect(result.projections.map((projection) => projection.name)).toEqual(['token_accounts']);
    await caughtUp(runner);
    await runner.stop();

    const rows = await database.pool.query<{ balance: string; transaction_count: string; revisions: string }>(
      `SELECT u.balance, u.transaction_count, (SELECT string_agg(stream_revision::text, ',' ORDER BY stream_revision) FROM token_transactions t WHERE t.user_id = u.user_id) AS revisions
         FROM user_tokens u WHERE u.user_id = $1`,
      [target.userId],
    );
    const streamLength = Number(target.revision) + 1;
    expect(rows.rows[0]).toEqual({
      balance: String(target.state.balance),
      transaction_count: String(streamLength),
      revisions: Array.from({ length: streamLength }, (_, revision) => revision).join(','),
    });
    const rebuilt = await dump(database.pool);
    expect(await incrementalDump()).toEqual(rebuilt);
  });
});

/** A refund the provider made while a hold held 40 of the purchase's 100: 60 taken then, 40 when the hold gave them back (a late refund). Returns the user. */
async function appendRefundWhileHeld(random: () => number): Promise<string> {
  const at = startAt.toISOString();
  const [userId, paymentId, lotId, holdId] = [seededUuid(random), seededUuid(random), seededUuid(random), seededUuid(random)];
  const ids = { userId, paymentId, orderId: `order-${paymentId}` };
  const refund = { paymentId, description: 'Refund of token package starter', occurredAt: at };
  const events: EventToAppend[] = [
    { id: seededUuid(random), type: 'PaymentInitiated', data: { ...ids, packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'mock', occurredAt: at, expiresAt: new Date(startAt.getTime() + 900_000).toISOString() } },
    { id: seededUuid(random), type: 'PaymentCaptured', data: { ...ids, providerTransactionId: 'txn-1', occurredAt: at } },
    { id: seededUuid(random), type: 'TokensPurchased', data: { userId, transactionId: lotId, paymentId, amount: 100, description: 'Token package starter', balanceAfter: 100, occurredAt: at, lot: { lotId, priority: 100, expiresAt: null }, heldAfter: 0 } },
    { id: seededUuid(random), type: 'TokensHeld', data: { userId, holdId, amount: 40, description: null, expiresAt: new Date(startAt.getTime() + 900_000).toISOString(), draws: [{ lotId, amount: 40 }], balanceAfter: 100, heldAfter: 40, occurredAt: at } },
    { id: seededUuid(random), type: 'PaymentRefunded', data: { ...ids, providerRefundId: 'refund-1', tokens: 100, tokensDebited: 60, heldBack: 40, occurredAt: at } },
    { id: seededUuid(random), type: 'TokensRefunded', data: { userId, transactionId: seededUuid(random), ...refund, amount: 60, balanceAfter: 40, draws: [{ lotId, amount: 60 }], heldAfter: 40 } },
    { id: seededUuid(random), type: 'HoldReleased', data: { userId, holdId, amount: 40, balanceAfter: 40, heldAfter: 0, occurredAt: at } },
    { id: seededUuid(random), type: 'TokensRefunded', data: { userId, transactionId: seededUuid(random), ...refund, amount: 40, balanceAfter: 0, draws: [{ lotId, amount: 40 }], heldAfter: 0, heldAtRefund: true } },
  ];
  // Replayable, so the stream is one the ledger could have written; then in three appends, as the three commands did.
  expect(fold(tokenAccountDecider, tokenAccountDecider.initialState, events as unknown as TokenAccountEvent[]).payments.get(paymentId)?.tokensDebited).toBe(100);
  await store.append(`token-account-${userId}`, events.slice(0, 4), { expectedRevision: 'no_stream' });
  await store.append(`token-account-${userId}`, events.slice(4, 6), { expectedRevision: 3n });
  await store.append(`token-account-${userId}`, events.slice(6), { expectedRevision: 5n });
  return userId;
}

describe('per-account rebuild, set-based', () => {
  it('recomputes accounts of every kind set-based from cleared tables, identically to the event-by-event build, streams written before lots included', async () => {
    const random = seededRandom(59);
    const users = [...accounts(random, 4), ...accounts(random, 4), ...accounts(random, 4)];
    // A stream written before lots and holds, and one with a settle written before ADR 0028.
    const [before, settledBefore] = [seededUuid(random), seededUuid(random)];
    const at = startAt.toISOString();
    await store.append(`token-account-${before}`, [
      { id: seededUuid(random), type: 'TokensPurchased', data: { userId: before, transactionId: seededUuid(random), paymentId: seededUuid(random), amount: 80, description: null, balanceAfter: 80, occurredAt: at } },
      { id: seededUuid(random), type: 'TokensUsed', data: { userId: before, transactionId: seededUuid(random), amount: 30, description: null, balanceAfter: 50, occurredAt: at } },
      { id: seededUuid(random), type: 'TokensAdjusted', data: { userId: before, transactionId: seededUuid(random), amount: 5, reason: 'Goodwill', balanceAfter: 55, occurredAt: at } },
    ], { expectedRevision: 'no_stream' });
    {
      const [userId, lotId, holdId, usageId] = [settledBefore, seededUuid(random), seededUuid(random), seededUuid(random)];
      await store.append(`token-account-${userId}`, [
        { id: seededUuid(random), type: 'TokensPurchased', data: { userId, transactionId: lotId, paymentId: seededUuid(random), amount: 100, description: null, balanceAfter: 100, occurredAt: at, lot: { lotId, priority: 100, expiresAt: null }, heldAfter: 0 } },
        { id: seededUuid(random), type: 'TokensHeld', data: { userId, holdId, amount: 40, description: 'Estimate', expiresAt: new Date(startAt.getTime() + 900_000).toISOString(), draws: [{ lotId, amount: 40 }], balanceAfter: 100, heldAfter: 40, occurredAt: at } },
        { id: seededUuid(random), type: 'HoldSettled', data: { userId, holdId, amount: 40, settledAmount: 30, releasedAmount: 10, transactionId: usageId, balanceAfter: 100, heldAfter: 0, occurredAt: at } },
        { id: seededUuid(random), type: 'TokensUsed', data: { userId, transactionId: usageId, amount: 30, description: 'Estimate', balanceAfter: 70, occurredAt: at, draws: [{ lotId, amount: 30 }], holdId, heldAfter: 0 } },
      ], { expectedRevision: 'no_stream' });
    }
    const refundedWhileHeld = await appendRefundWhileHeld(random);
    // Refunds that failed at the provider: one payment's request ended (COMPLETED again, why in refundError), another's asked again and made.
    const refundFailed = seededUuid(random);
    {
      const userId = refundFailed;
      const [failedId, retriedId, failedLot, retriedLot] = [seededUuid(random), seededUuid(random), seededUuid(random), seededUuid(random)];
      const payment = (paymentId: string, lotId: string, balanceAfter: number): EventToAppend[] => {
        const ids = { userId, paymentId, orderId: `order-${paymentId}` };
        return [
          { id: seededUuid(random), type: 'PaymentInitiated', data: { ...ids, packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'stripe', occurredAt: at, expiresAt: new Date(startAt.getTime() + 900_000).toISOString() } },
          { id: seededUuid(random), type: 'PaymentCaptured', data: { ...ids, providerTransactionId: `txn-${paymentId}`, occurredAt: at } },
          { id: seededUuid(random), type: 'TokensPurchased', data: { userId, transactionId: lotId, paymentId, amount: 100, description: 'Token package starter', balanceAfter, occurredAt: at, lot: { lotId, priority: 100, expiresAt: null }, heldAfter: 0 } },
        ];
      };
      const requested = (paymentId: string): EventToAppend => ({ id: seededUuid(random), type: 'PaymentRefundRequested', data: { userId, paymentId, orderId: `order-${paymentId}`, tokens: 100, occurredAt: at } });
      const failed = (paymentId: string, reason: string): EventToAppend => ({
        id: seededUuid(random),
        type: 'PaymentRefundFailed',
        data: { userId, paymentId, orderId: `order-${paymentId}`, tokens: 100, providerRefundId: `re-${paymentId}`, reason, occurredAt: at },
      });
      const appends: EventToAppend[][] = [
        [...payment(failedId, failedLot, 100), ...payment(retriedId, retriedLot, 200)],
        [requested(failedId)],
        [failed(failedId, 'failed: expired_or_canceled_card'), requested(retriedId)],
        [failed(retriedId, 'canceled: no reason given')],
        [requested(retriedId)],
        [
          { id: seededUuid(random), type: 'PaymentRefunded', data: { userId, paymentId: retriedId, orderId: `order-${retriedId}`, providerRefundId: 're-2', tokens: 100, tokensDebited: 100, occurredAt: at } },
          {
            id: seededUuid(random),
            type: 'TokensRefunded',
            data: { userId, transactionId: seededUuid(random), paymentId: retriedId, amount: 100, description: 'Refund of token package starter', balanceAfter: 100, occurredAt: at, draws: [{ lotId: retriedLot, amount: 100 }], heldAfter: 0 },
          },
        ],
      ];
      expect(fold(tokenAccountDecider, tokenAccountDecider.initialState, appends.flat() as unknown as TokenAccountEvent[]).reservedForRefunds).toBe(0);
      let revision = -1n;
      for (const events of appends) {
        await store.append(`token-account-${userId}`, events, { expectedRevision: revision < 0n ? 'no_stream' : revision });
        revision += BigInt(events.length);
      }
    }
    await writeHistory(random, users.slice(0, 4), 8, 6, nextCommandWithPayments);
    await writeHistory(random, users.slice(4, 8), 10, 6, nextCommandWithHoldsAndLots);
    await writeHistory(random, users.slice(8), 12, 6, nextCommandWithDisputes);
    const expected = await incrementalDump();
    const failedRefunds = await database.pool.query('SELECT status, metadata FROM payments WHERE user_id = $1 ORDER BY status', [refundFailed]);
    expect(failedRefunds.rows).toEqual([
      { status: 'COMPLETED', metadata: { refundError: 'failed: expired_or_canceled_card' } },
      { status: 'REFUNDED', metadata: { providerRefundId: 're-2', tokensDebited: 100 } },
    ]);
    const lateRefund = await database.pool.query('SELECT status, metadata FROM payments WHERE user_id = $1', [refundedWhileHeld]);
    expect(lateRefund.rows).toEqual([{ status: 'REFUNDED', metadata: { providerRefundId: 'refund-1', tokensDebited: 100 } }]);
    const kinds = await database.pool.query<{ kind: string }>(
      `SELECT DISTINCT 'hold:' || status AS kind FROM token_holds UNION SELECT DISTINCT 'lot:' || source || ':' || status FROM token_lots
        UNION SELECT DISTINCT 'row:' || transaction_type FROM token_transactions UNION SELECT DISTINCT 'payment:' || status FROM payments`,
    );
    expect(kinds.rows.map((row) => row.kind)).toEqual(
      expect.arrayContaining(['hold:settled', 'hold:released', 'hold:expired', 'lot:opening:active', 'lot:grant:voided', 'row:expiry', 'row:chargeback', 'payment:COMPLETED', 'payment:REFUNDED']),
    );

    // Every row gone; the checkpoint (the runner's, at the last event) stays.
    await database.pool.query('TRUNCATE user_tokens, token_transactions, payments, token_holds, token_lots');
    const userIds = [...users.map((user) => user.userId), before, settledBefore, refundedWhileHeld, refundFailed];
    const results = await Promise.all(userIds.map((userId) => rebuildAccount(store, database.pool, [tokenAccountsProjection], userId)));
    expect(results.reduce((sum, result) => sum + (result.projections[0]?.eventsApplied ?? 0), 0)).toBe(await eventCount());
    expect(await dump(database.pool)).toEqual(expected);
  });
});

describe('event by event in few round trips (applyEventByEvent)', () => {
  /** A purchase and a usage whose description and metadata SQL must escape: quotes, a backslash, a placeholder, a statement's end, a comment, a newline, non-ASCII. */
  async function appendAwkwardText(random: () => number): Promise<void> {
    const [userId, lotId] = [seededUuid(random), seededUuid(random)];
    const text = `it's a \\ "$1"; -- DEALLOCATE ALL;\nnaïve ☃`;
    const at = startAt.toISOString();
    await store.append(`token-account-${userId}`, [
      { id: seededUuid(random), type: 'TokensPurchased', data: { userId, transactionId: lotId, paymentId: seededUuid(random), amount: 100, description: text, balanceAfter: 100, occurredAt: at, lot: { lotId, priority: 100, expiresAt: null }, heldAfter: 0 } },
      { id: seededUuid(random), type: 'TokensUsed', data: { userId, transactionId: seededUuid(random), amount: 30, description: text, balanceAfter: 70, occurredAt: at, draws: [{ lotId, amount: 30 }], heldAfter: 0, metadata: { [text]: text } } },
    ], { expectedRevision: 'no_stream' });
  }

  /** The rows `events` give applying each statement alone, with its parameters, as the runner did before it batched them. */
  async function oneStatementAtATime(events: readonly RecordedEvent[]): Promise<Dump> {
    await database.pool.query('TRUNCATE user_tokens, token_transactions, payments, token_holds, token_lots');
    const client = await database.pool.connect();
    try {
      await client.query('BEGIN');
      for (const event of events) for (const change of tokenAccountsProjection.project(event)) await client.query(change.text, [...change.values]);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    return dump(database.pool);
  }

  async function preparedHere(client: { query: Pool['query'] }): Promise<number> {
    const result = await client.query<{ count: number }>("SELECT count(*)::int AS count FROM pg_prepared_statements WHERE name LIKE 'event\\_by\\_event\\_%'");
    return result.rows[0]?.count ?? -1;
  }

  it('gives the rows of the statements applied one at a time, for histories with payments, holds and lots, disputes, a late refund and text SQL must escape, over several round trips, and leaves nothing prepared', async () => {
    const random = seededRandom(61);
    const users = accounts(random, 9);
    await writeHistory(random, users.slice(0, 3), 20, 6, nextCommandWithPayments);
    await writeHistory(random, users.slice(3, 6), 25, 6, nextCommandWithHoldsAndLots);
    await writeHistory(random, users.slice(6), 30, 6, nextCommandWithDisputes);
    await appendAwkwardText(random);
    const lateRefund = await appendRefundWhileHeld(random);
    await allVisible();
    const events = await store.readAll({ maxCount: 10_000 });
    const expected = await oneStatementAtATime(events);
    // The refund's second part, taken when the hold gave the tokens back, added to the payment's row.
    const refunded = await database.pool.query("SELECT metadata->'tokensDebited' AS debited FROM payments WHERE user_id = $1", [lateRefund]);
    expect(refunded.rows).toEqual([{ debited: 100 }]);
    // More than one round trip's worth of statements (1,000 at most each).
    expect(events.reduce((sum, event) => sum + tokenAccountsProjection.project(event).length, 0)).toBeGreaterThan(2_000);
    const awkward = await database.pool.query<{ description: string }>("SELECT description FROM token_transactions WHERE description LIKE 'it''s a %' AND metadata ? description");
    expect(awkward.rows).toHaveLength(1);

    await database.pool.query('TRUNCATE user_tokens, token_transactions, payments, token_holds, token_lots');
    const client = await database.pool.connect();
    try {
      await client.query('BEGIN');
      await applyEventByEvent(client, tokenAccountsProjection, events);
      await client.query('COMMIT');
      expect(await preparedHere(client)).toBe(0);
    } finally {
      client.release();
    }
    expect(await dump(database.pool)).toEqual(expected);
  });

  it('refuses a change of two statements (PREPARE would run the second there and then) or a value pg sends in binary, before sending it', async () => {
    const random = seededRandom(63);
    await writeHistory(random, accounts(random, 2), 2, 3);
    await allVisible();
    const events = await store.readAll({ maxCount: 10_000 });
    const expected = await oneStatementAtATime(events);
    const changing = (text: string, values: unknown[]): Projection => ({ ...tokenAccountsProjection, project: () => [{ text, values }] });
    const client = await database.pool.connect();
    try {
      await client.query('BEGIN');
      await expect(applyEventByEvent(client, changing('UPDATE user_tokens SET held = held; DELETE FROM token_lots', []), events)).rejects.toThrow(/one statement per change/);
      await expect(applyEventByEvent(client, changing('UPDATE user_tokens SET held = held WHERE user_id = $1', [Buffer.from('ab')]), events)).rejects.toThrow(/not a binary value/);
      await client.query('COMMIT');
    } finally {
      client.release(true);
    }
    expect(await dump(database.pool)).toEqual(expected);
  });

  it("fails with PostgreSQL's error when a statement fails, and the same session applies the events after its rollback", async () => {
    const random = seededRandom(62);
    await writeHistory(random, accounts(random, 3), 6, 6, nextCommandWithHoldsAndLots);
    await allVisible();
    const events = await store.readAll({ maxCount: 10_000 });
    const expected = await oneStatementAtATime(events);
    await database.pool.query('TRUNCATE user_tokens, token_transactions, payments, token_holds, token_lots');
    const client = await database.pool.connect();
    try {
      // A row already there with the id of one event's transaction row: that event's insert fails.
      const taken = (expected.transactions as { row: string }[]).at(-1)?.row ?? '';
      const transactionId = /^\(([0-9a-f-]{36}),/.exec(taken)?.[1];
      expect(transactionId).toBeDefined();
      await client.query('BEGIN');
      await client.query(
        "INSERT INTO token_transactions (id, user_id, amount, transaction_type, balance_after, created_at, event_id, stream_revision) VALUES ($1, $2, 1, 'adjustment', 1, now(), $3, 0)",
        [transactionId, seededUuid(random), seededUuid(random)],
      );
      await expect(applyEventByEvent(client, tokenAccountsProjection, events)).rejects.toMatchObject({ code: '23505' });
      await client.query('ROLLBACK');
      // The failed call's statements are still prepared in the session, under names the next call does not use.
      expect(await preparedHere(client)).toBeGreaterThan(0);
      await client.query('BEGIN');
      await applyEventByEvent(client, tokenAccountsProjection, events);
      await client.query('COMMIT');
    } finally {
      client.release(true);
    }
    expect(await dump(database.pool)).toEqual(expected);
  });
});

/** Tables a rebuild must never move or drop, with their identity (oid) and content. */
async function untouchableTables(): Promise<Record<string, { oid: string; rows: unknown[] }>> {
  const tables: Record<string, { oid: string; rows: unknown[] }> = {};
  for (const table of ['events', 'event_streams', 'snapshots', 'payment_streams', 'idempotency_keys', 'mock_provider_orders', 'pgmigrations']) {
    const oid = await database.pool.query<{ oid: string }>('SELECT $1::regclass::oid::text AS oid', [table]);
    const rows = await database.pool.query(`SELECT ${table}::text AS row FROM ${table} ORDER BY 1`);
    tables[table] = { oid: oid.rows[0]?.oid ?? '', rows: rows.rows };
  }
  return tables;
}

async function tableOid(table: string): Promise<string | undefined> {
  return (await database.pool.query<{ oid: string }>('SELECT $1::regclass::oid::text AS oid', [table])).rows[0]?.oid;
}

/** Each payment path the workflow has, and adjustments either way, must be in the history, or the comparison proves less than it says. */
async function expectEveryPaymentState(): Promise<void> {
  const states = await database.pool.query<{ state: string; count: number }>(
    `SELECT state, count(*)::int AS count FROM (
       SELECT CASE
                WHEN status = 'FAILED' THEN 'FAILED:' || (metadata->>'error')
                WHEN status IN ('COMPLETED', 'REFUNDED') AND EXISTS (SELECT 1 FROM events WHERE event_type = 'PaymentExpired' AND (data->>'paymentId')::uuid = payments.id)
                  THEN 'captured after expiry'
                WHEN status = 'REFUNDED' AND (metadata->>'tokensDebited')::bigint < tokens_purchased THEN 'REFUNDED:in part'
                ELSE status
              END AS state
         FROM payments) AS states GROUP BY state`,
  );
  // GROUP BY gives only states that occur, so each one present has a count above zero.
  const required = ['PENDING', 'COMPLETED', 'captured after expiry', 'FAILED:Card declined', 'FAILED:Payment timed out', 'REFUNDED'];
  expect(Object.fromEntries(states.rows.map((row) => [row.state, row.count]))).toEqual(
    expect.objectContaining(Object.fromEntries(required.map((state) => [state, expect.any(Number) as unknown]))),
  );
  const refunds = await database.pool.query<{ count: number }>("SELECT count(*)::int AS count FROM token_transactions WHERE transaction_type = 'refund'");
  expect(refunds.rows[0]?.count).toBeGreaterThan(0);
  // Adjustments both ways, and at least one that took a balance to exactly zero.
  const adjustments = await database.pool.query<{ credits: number; debits: number; to_zero: number }>(
    `SELECT count(*) FILTER (WHERE amount > 0)::int AS credits, count(*) FILTER (WHERE amount < 0)::int AS debits,
            count(*) FILTER (WHERE amount < 0 AND balance_after = 0)::int AS to_zero
       FROM token_transactions WHERE transaction_type = 'adjustment'`,
  );
  const { credits = 0, debits = 0, to_zero: toZero = 0 } = adjustments.rows[0] ?? {};
  expect(Math.min(credits, debits, toZero)).toBeGreaterThan(0);
}

describe('projection rebuild with payments', () => {
  it('rebuilds payments in every state set-based, identically to the incremental build, and touches no other table', async () => {
    const random = seededRandom(21);
    await writeHistory(random, accounts(random, 10), 8, 6, nextCommandWithPayments);
    await database.pool.query("INSERT INTO payment_streams (payment_id, user_id) VALUES ('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002')");
    await database.pool.query(
      `INSERT INTO idempotency_keys (scope, key, request_hash, state, response_status, locked_until, expires_at)
       VALUES ('user:1', 'key-1', 'hash', 'completed', 201, now(), now() + interval '1 day')`,
    );
    await database.pool.query(
      `INSERT INTO mock_provider_orders (order_id, payment_id, amount, currency, description, status, behaviour)
       VALUES ('order-1', '00000000-0000-4000-8000-000000000001', 500, 'USD', 'Token package starter', 'captured', 'approve')`,
    );
    await allVisible();
    const runner = newRunner();
    runner.start();
    await caughtUp(runner);
    await expectEveryPaymentState();
    const before = await dump(database.pool);
    const untouchable = await untouchableTables();
    const paymentsTable = await tableOid('payments');

    const logs: string[] = [];
    const rebuilds = newRebuilds({ onLog: (message) => logs.push(message) });
    const started = await rebuilds.start(tokenAccountsProjection.name);
    expect(await rebuilds.settled(started.id)).toMatchObject({ phase: 'completed', error: null, eventsDone: await eventCount() });
    // The set-based path did the work: no event type made it fall back to projecting event by event.
    expect(logs.filter((message) => message.includes('not covered'))).toEqual([]);
    expect(await dump(database.pool)).toEqual(before);
    // payments was rebuilt and swapped in (a new table); the tables that are not read models are the same tables, rows and all.
    expect(await tableOid('payments')).not.toEqual(paymentsTable);
    expect(await untouchableTables()).toEqual(untouchable);
    await runner.stop();
    expect(await incrementalDump()).toEqual(before);
  });

  it('merges later ranges of payment events set-based (the delta) at many cut points, identically to the incremental build', async () => {
    const random = seededRandom(23);
    await writeHistory(random, accounts(random, 8), 8, 6, nextCommandWithPayments);
    await allVisible();
    const events = await store.readAll({ maxCount: 10_000 });
    const expected = await incrementalDump();
    await expectEveryPaymentState();
    const bulk = tokenAccountsProjection.bulkLoad;
    if (bulk === undefined) throw new Error('token_accounts has a bulk load');
    const at = (index: number) => (events[index] as RecordedEvent).position;
    const values = (position: Position) => [position.commit.toString(), position.prepare.toString()];
    const last = events.length - 1;
    // Cut just before and at the first event of each type (a payment opened before the cut and settled after it, and so on), and a few more.
    const cuts = new Set([0, 1, Math.floor(last / 3), Math.floor(last / 2), last - 1, last]);
    for (const type of new Set(events.map((event) => event.type))) {
      const first = events.findIndex((event) => event.type === type);
      for (const cut of [first - 1, first]) if (cut >= 0) cuts.add(cut);
    }
    const lastPosition = Number((await database.pool.query<{ max: string }>('SELECT max(global_position)::text AS max FROM events')).rows[0]?.max);
    for (const cut of [...cuts].sort((a, b) => a - b)) {
      await database.pool.query('TRUNCATE user_tokens, token_transactions, payments, token_holds, token_lots');
      // Small chunks, so a payment's initiation and its later events fall in different chunks.
      for (let from = 0; from <= lastPosition; from += 20) {
        for (const statement of bulk.chunked) await database.pool.query(statement, [...values(at(cut)), String(from), String(from + 19)]);
      }
      for (const statement of bulk.final.flat()) await database.pool.query(statement, values(at(cut)));
      // Two catch-up steps, as the rebuild takes them: to half way, then to the head.
      const middle = at(Math.floor((cut + last) / 2));
      for (const statement of bulk.delta) await database.pool.query(statement, [...values(at(cut)), ...values(middle)]);
      for (const statement of bulk.delta) await database.pool.query(statement, [...values(middle), ...values(at(last))]);
      expect([cut, await dump(database.pool)]).toEqual([cut, expected]);
    }
    expect(cuts.size).toBeGreaterThan(10);
  });

  it('builds holds and lots set-based (bulk and delta, at many cut points) identically to the incremental build, streams written before lots included', async () => {
    const random = seededRandom(31);
    // Two streams written before lots and holds: their credits fold into an opening lot.
    for (const userId of [seededUuid(random), seededUuid(random)]) {
      const at = startAt.toISOString();
      await store.append(`token-account-${userId}`, [
        { id: seededUuid(random), type: 'TokensPurchased', data: { userId, transactionId: seededUuid(random), paymentId: seededUuid(random), amount: 80, description: null, balanceAfter: 80, occurredAt: at } },
        { id: seededUuid(random), type: 'TokensUsed', data: { userId, transactionId: seededUuid(random), amount: 30, description: null, balanceAfter: 50, occurredAt: at } },
        { id: seededUuid(random), type: 'TokensAdjusted', data: { userId, transactionId: seededUuid(random), amount: 5, reason: 'Goodwill', balanceAfter: 55, occurredAt: at } },
      ], { expectedRevision: 'no_stream' });
    }
    // A stream with a settle written before ADR 0028: a HoldSettled without draws, then its TokensUsed.
    const settledBefore = seededUuid(random);
    {
      const [userId, at, lotId, holdId, usageId] = [settledBefore, startAt.toISOString(), seededUuid(random), seededUuid(random), seededUuid(random)];
      const draws = [{ lotId, amount: 30 }];
      await store.append(`token-account-${userId}`, [
        { id: seededUuid(random), type: 'TokensPurchased', data: { userId, transactionId: lotId, paymentId: seededUuid(random), amount: 100, description: null, balanceAfter: 100, occurredAt: at, lot: { lotId, priority: 100, expiresAt: null }, heldAfter: 0 } },
        { id: seededUuid(random), type: 'TokensHeld', data: { userId, holdId, amount: 40, description: 'Estimate', expiresAt: new Date(startAt.getTime() + 900_000).toISOString(), draws: [{ lotId, amount: 40 }], balanceAfter: 100, heldAfter: 40, occurredAt: at } },
        { id: seededUuid(random), type: 'HoldSettled', data: { userId, holdId, amount: 40, settledAmount: 30, releasedAmount: 10, transactionId: usageId, balanceAfter: 100, heldAfter: 0, occurredAt: at } },
        { id: seededUuid(random), type: 'TokensUsed', data: { userId, transactionId: usageId, amount: 30, description: 'Estimate', balanceAfter: 70, occurredAt: at, draws, holdId, heldAfter: 0 } },
      ], { expectedRevision: 'no_stream' });
    }
    await writeHistory(random, accounts(random, 8), 10, 6, nextCommandWithHoldsAndLots);
    await allVisible();
    const events = await store.readAll({ maxCount: 10_000 });
    const expected = await incrementalDump();
    // Both forms of a settle make one usage row linked to the hold, and leave the lot what the settle left.
    const settleRows = await database.pool.query<{ user_id: string; amount: string; balance_after: string; remaining: string }>(
      `SELECT t.user_id, t.amount::text, t.balance_after::text, l.remaining::text FROM token_transactions t JOIN token_holds h ON h.hold_id = t.hold_id
         JOIN token_lots l ON l.user_id = t.user_id WHERE t.transaction_type = 'usage' AND h.status = 'settled' AND h.transaction_id = t.id`,
    );
    expect(settleRows.rows.find((row) => row.user_id === settledBefore)).toEqual({ user_id: settledBefore, amount: '-30', balance_after: '70', remaining: '70' });
    expect(settleRows.rows.filter((row) => row.user_id !== settledBefore).length).toBeGreaterThan(0);
    const kinds = await database.pool.query<{ kind: string }>(
      `SELECT DISTINCT 'hold:' || status AS kind FROM token_holds UNION SELECT DISTINCT 'lot:' || source || ':' || status FROM token_lots
        UNION SELECT DISTINCT 'row:' || transaction_type FROM token_transactions`,
    );
    expect(kinds.rows.map((row) => row.kind)).toEqual(
      expect.arrayContaining(['hold:active', 'hold:settled', 'hold:released', 'hold:expired', 'lot:opening:active', 'lot:grant:expired', 'lot:grant:voided', 'lot:purchase:spent', 'row:expiry']),
    );
    const bulk = tokenAccountsProjection.bulkLoad;
    if (bulk === undefined) throw new Error('token_accounts has a bulk load');
    const at = (index: number) => (events[index] as RecordedEvent).position;
    const values = (position: Position) => [position.commit.toString(), position.prepare.toString()];
    const last = events.length - 1;
    const cuts = new Set([0, 1, 5, Math.floor(last / 3), Math.floor(last / 2), last - 1, last]);
    for (const type of new Set(events.map((event) => event.type))) {
      const first = events.findIndex((event) => event.type === type);
      for (const cut of [first - 1, first]) if (cut >= 0) cuts.add(cut);
    }
    const lastPosition = Number((await database.pool.query<{ max: string }>('SELECT max(global_position)::text AS max FROM events')).rows[0]?.max);
    for (const cut of [...cuts].sort((a, b) => a - b)) {
      await database.pool.query('TRUNCATE user_tokens, token_transactions, payments, token_holds, token_lots');
      for (let from = 0; from <= lastPosition; from += 20) {
        for (const statement of bulk.chunked) await database.pool.query(statement, [...values(at(cut)), String(from), String(from + 19)]);
      }
      for (const statement of bulk.final.flat()) await database.pool.query(statement, values(at(cut)));
      const middle = at(Math.floor((cut + last) / 2));
      for (const statement of bulk.delta) await database.pool.query(statement, [...values(at(cut)), ...values(middle)]);
      for (const statement of bulk.delta) await database.pool.query(statement, [...values(middle), ...values(at(last))]);
      expect([cut, await dump(database.pool)]).toEqual([cut, expected]);
    }
  });

  it('builds disputes, chargebacks and shortfalls set-based (bulk and delta, at many cut points) identically to the incremental build', async () => {
    const random = seededRandom(47);
    await writeHistory(random, accounts(random, 8), 16, 6, nextCommandWithDisputes);
    // And one account left owing: 60 of its 100 purchased tokens spent, then the dispute lost; a
    // purchase of 20 then pays off part of the shortfall (a chargeback row of no payment).
    const [debtor] = accounts(random, 1) as [GeneratedAccount];
    const paymentId = seededUuid(random);
    const payment = { userId: debtor.userId, paymentId };
    const script: TokenAccountCommand[] = [
      { type: 'InitiatePayment', data: { ...payment, orderId: 'pi_debtor', packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'stripe', now: startAt, expiresAt: new Date(startAt.getTime() + 3_600_000), pendingPaymentsMax: 5 } },
      { type: 'CapturePayment', data: { ...payment, outcome: { status: 'captured', providerTransactionId: 'ch_debtor' }, transactionId: seededUuid(random), now: startAt } },
      { type: 'UseTokens', data: { userId: debtor.userId, amount: 60, description: null, transactionId: seededUuid(random), now: startAt } },
      { type: 'RecordDispute', data: { ...payment, disputeId: 'dp_debtor', status: 'lost', amount: 500, currency: 'USD', reason: 'fraudulent', transactionId: seededUuid(random), now: startAt } },
      { type: 'AddTokens', data: { userId: debtor.userId, paymentId: seededUuid(random), amount: 20, description: null, transactionId: seededUuid(random), now: startAt } },
    ];
    await appendDecided(store, random, debtor, script.length, startAt, () => script.shift() as TokenAccountCommand);
    // And one whose refund was pending when a dispute of part of the price was lost: the request ended
    // as failed and the share charged back in one append (ADR 0024, addendum of 6 December, latest).
    const [refunder] = accounts(random, 1) as [GeneratedAccount];
    const refunded = { userId: refunder.userId, paymentId: seededUuid(random) };
    const refundScript: TokenAccountCommand[] = [
      { type: 'InitiatePayment', data: { ...refunded, orderId: 'pi_refunder', packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'stripe', now: startAt, expiresAt: new Date(startAt.getTime() + 3_600_000), pendingPaymentsMax: 5 } },
      { type: 'CapturePayment', data: { ...refunded, outcome: { status: 'captured', providerTransactionId: 'ch_refunder' }, transactionId: seededUuid(random), now: startAt } },
      { type: 'RequestRefund', data: { ...refunded, transactionId: seededUuid(random), now: startAt } },
      { type: 'RecordDispute', data: { ...refunded, disputeId: 'dp_refunder', status: 'lost', amount: 51, currency: 'USD', reason: 'fraudulent', transactionId: seededUuid(random), now: startAt } },
    ];
    await appendDecided(store, random, refunder, refundScript.length, startAt, () => refundScript.shift() as TokenAccountCommand);
    await allVisible();
    const events = await store.readAll({ maxCount: 10_000 });
    expect(events.filter((event) => event.type === 'PaymentRefundFailed' && (event.data as { reason: string }).reason === 'dispute lost: dp_refunder')).toHaveLength(1);
    const expected = await incrementalDump();
    const kinds = await database.pool.query<{ kind: string }>(
      `SELECT DISTINCT 'dispute:' || dispute_status AS kind FROM payments WHERE dispute_status IS NOT NULL
        UNION SELECT DISTINCT 'row:' || transaction_type || ':' || (payment_id IS NULL)::text FROM token_transactions
        UNION SELECT DISTINCT 'shortfall' FROM user_tokens WHERE shortfall > 0`,
    );
    expect(kinds.rows.map((row) => row.kind)).toEqual(expect.arrayContaining(['dispute:open', 'dispute:won', 'dispute:lost', 'row:chargeback:false', 'row:chargeback:true', 'shortfall']));
    const bulk = tokenAccountsProjection.bulkLoad;
    if (bulk === undefined) throw new Error('token_accounts has a bulk load');
    const at = (index: number) => (events[index] as RecordedEvent).position;
    const values = (position: Position) => [position.commit.toString(), position.prepare.toString()];
    const last = events.length - 1;
    const cuts = new Set([0, Math.floor(last / 3), Math.floor(last / 2), last - 1, last]);
    for (const type of ['PaymentDisputeOpened', 'PaymentDisputeClosed', 'TokensChargedBack', 'ShortfallCovered', 'PaymentRefundFailed']) {
      const first = events.findIndex((event) => event.type === type);
      for (const cut of [first - 1, first]) if (cut >= 0) cuts.add(cut);
    }
    const lastPosition = Number((await database.pool.query<{ max: string }>('SELECT max(global_position)::text AS max FROM events')).rows[0]?.max);
    for (const cut of [...cuts].sort((a, b) => a - b)) {
      await database.pool.query('TRUNCATE user_tokens, token_transactions, payments, token_holds, token_lots');
      for (let from = 0; from <= lastPosition; from += 20) {
        for (const statement of bulk.chunked) await database.pool.query(statement, [...values(at(cut)), String(from), String(from + 19)]);
      }
      for (const statement of bulk.final.flat()) await database.pool.query(statement, values(at(cut)));
      const middle = at(Math.floor((cut + last) / 2));
      for (const statement of bulk.delta) await database.pool.query(statement, [...values(at(cut)), ...values(middle)]);
      for (const statement of bulk.delta) await database.pool.query(statement, [...values(middle), ...values(at(last))]);
      expect([cut, await dump(database.pool)]).toEqual([cut, expected]);
    }
  });

  it('rebuilds while the live runner runs and payments go on: the result equals the incremental build', async () => {
    const random = seededRandom(23);
    const users = accounts(random, 8);
    await writeHistory(random, users, 4, 6, nextCommandWithPayments);
    const rebuilt = await rebuildWhileWriting(() => writeHistory(random, users, 1, 3, nextCommandWithPayments));
    expect(await incrementalDump()).toEqual(rebuilt);
  }, REBUILD_WHILE_WRITING_TIMEOUT_MS);

  it('catches up and swaps in steps of a few events while payments and purchases go on: the result equals the incremental build', async () => {
    const random = seededRandom(25);
    const users = accounts(random, 8);
    await writeHistory(random, users, 3, 6, nextCommandWithPayments);
    const runner = newRunner();
    runner.start();
    let writing = true;
    // Paced and bounded: steps this small cannot overtake an unbounded writer on a loaded machine (the
    // catch-up would chase the head for as long as the writes go on), so the writes stop after 15
    // rounds, while the rebuilds still run.
    const writer = (async () => {
      for (let round = 0; writing && round < 15; round += 1) {
        await writeHistory(random, users, 1, 3, nextCommandWithPayments);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    // Tiny steps and load chunks: every catch-up step and each step of the swap ends at an arbitrary event.
    const rebuilds = newRebuilds({ stepEventsMax: 4, swapLagEventsMax: 9, chunkPositions: 11 });
    const rebuilt: RebuildView[] = [];
    for (let round = 0; round < 3; round += 1) {
      const started = await rebuilds.start(tokenAccountsProjection.name);
      rebuilt.push(await rebuilds.settled(started.id));
    }
    writing = false;
    await writer;
    expect(rebuilt.map((view) => view.phase)).toEqual(['completed', 'completed', 'completed']);
    await caughtUp(runner, { afterSwap: true });
    const rows = await dump(database.pool);
    await runner.stop();
    const tokenEvents = await database.pool.query<{ count: number }>("SELECT count(*)::int AS count FROM events WHERE event_type IN ('TokensPurchased', 'TokensUsed', 'TokensRefunded', 'TokensAdjusted')");
    expect(rows.transactions).toHaveLength(tokenEvents.rows[0]?.count ?? -1);
    expect(await incrementalDump()).toEqual(rows);
  });

  it('refuses projections that declare a table that is not a read model, before anything is created', () => {
    for (const table of NOT_PROJECTION_TABLES) {
      const claiming: Projection = { ...tokenAccountsProjection, tables: [...tokenAccountsProjection.tables, table] };
      expect(() => new ProjectionRebuilds(store, database.pool, { connectionString: database.url, projections: [claiming] })).toThrow(
        new NotAProjectionTableError(tokenAccountsProjection.name, table),
      );
    }
    const twice: Projection = { ...tokenAccountsProjection, name: 'copy' };
    expect(() => new ProjectionRebuilds(store, database.pool, { connectionString: database.url, projections: [tokenAccountsProjection, twice] })).toThrow(
      'table user_tokens is declared by both token_accounts and copy',
    );
  });

  it("recomputes one account's payments rows from its stream while payment writes race on that account", async () => {
    const random = seededRandom(24);
    const users = accounts(random, 4);
    await writeHistory(random, users, 6, 6, nextCommandWithPayments);
    const runner = newRunner();
    runner.start();
    await caughtUp(runner);
    const target = users[0] as GeneratedAccount;
    expect(target.state.payments.size).toBeGreaterThan(1);
    // Damage the account's payments rows the way a projection bug would.
    await database.pool.query("UPDATE payments SET status = 'PENDING', metadata = '{}' WHERE user_id = $1", [target.userId]);
    await database.pool.query('DELETE FROM payments WHERE id = (SELECT id FROM payments WHERE user_id = $1 ORDER BY id LIMIT 1)', [target.userId]);

    const writes = (async () => {
      for (let round = 0; round < 10; round += 1) await appendDecided(store, random, target, 2, startAt, nextCommandWithPayments);
    })();
    await Promise.all(Array.from({ length: 5 }, () => rebuildAccount(store, database.pool, [tokenAccountsProjection], target.userId)));
    await writes;
    await caughtUp(runner);
    await runner.stop();

    const statuses = await database.pool.query<{ id: string; status: string }>('SELECT id::text, status FROM payments WHERE user_id = $1 ORDER BY id', [target.userId]);
    const fold = [...target.state.payments.values()].map((payment) => ({ id: payment.paymentId, status: payment.status })).sort((a, b) => a.id.localeCompare(b.id));
    expect(statuses.rows).toEqual(fold);
    const rebuilt = await dump(database.pool);
    expect(await incrementalDump()).toEqual(rebuilt);
  });
});

describe('live runner with set-based batches', () => {
  it('applies large batches through the delta statements with rows identical to event by event, payments included', async () => {
    const random = seededRandom(21);
    const users = accounts(random, 8);
    await writeHistory(random, users, 6, 6, nextCommandWithPayments);
    await allVisible();
    const runner = newRunner(tokenAccountsProjection, 20);
    runner.start();
    await caughtUp(runner);
    // Writes while it runs: small batches go event by event, larger ones set-based, in any mix.
    await writeHistory(random, users, 3, 4, nextCommandWithPayments);
    await caughtUp(runner);
    await runner.stop();
    expect(runner.batches.setBased).toBeGreaterThan(0);
    const setBased = await dump(database.pool);
    expect(setBased.payments.length).toBeGreaterThan(0);
    const eventByEvent = await incrementalDump();
    expect(eventByEvent).toEqual(setBased);
  });

  it('stops at the event that fails, found event by event after the set-based pass failed', async () => {
    const random = seededRandom(22);
    const users = accounts(random, 4);
    await writeHistory(random, users, 4, 6);
    const victim = users[0] as GeneratedAccount;
    // A usage the ledger would never decide: it reuses an earlier transaction's id, which the read model refuses.
    const [latest] = await store.readStream(`token-account-${victim.userId}`, { direction: 'backwards', maxCount: 1 });
    const [first] = await store.readStream(`token-account-${victim.userId}`, { maxCount: 1 });
    const reused = (first?.data as { transactionId: string } | undefined)?.transactionId;
    const balance = Number((latest?.data as { balanceAfter: number } | undefined)?.balanceAfter);
    const poisonId = seededUuid(random);
    await store.append(
      `token-account-${victim.userId}`,
      [{ id: poisonId, type: 'TokensUsed', data: { userId: victim.userId, transactionId: reused ?? '', amount: 1, description: null, balanceAfter: balance - 1, occurredAt: startAt.toISOString() } }],
      { expectedRevision: latest?.revision ?? 'any' },
    );
    await writeHistory(random, users.slice(1), 2, 6);
    await allVisible();
    const fallbacks: string[] = [];
    const runner = newRunner(tokenAccountsProjection, 5, (_name, fallback) => fallbacks.push(`${fallback.from}: ${fallback.error}`));
    runner.start();
    await waitUntil(() => runner.state === 'failed');
    const [recorded] = (await store.readAll({ maxCount: 10_000 })).filter((event) => event.id === poisonId);
    expect(runner.failure).toMatchObject({ eventType: 'TokensUsed', position: formatPosition((recorded as RecordedEvent).position) });
    expect(runner.batches.setBasedFailed).toBeGreaterThan(0);
    expect(fallbacks[0]).toMatch(/^set-based: duplicate key/);
    await runner.stop();
  });
});
