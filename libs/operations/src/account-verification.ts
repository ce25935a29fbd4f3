import { formatPosition, readWholeStream, type EventStore, type RecordedEvent } from '@app/event-store';
import { EventReplayError, evolveAt } from '@app/audit';
import { evolveTokenAccount, initialTokenAccountState, tokenAccountStreamId, type TokenAccountEvent } from '@app/ledger';
import { accountProjections, applyEventByEvent, eventsInReadModel, lockCheckpoint, TOKEN_ACCOUNTS_PROJECTION, transactionOf, type AccountRows, type Projection } from '@app/projections';
import { withConnectionPair, type TurnWait } from '@app/database';
import type { Pool, PoolClient } from 'pg';

export type AccountDifference = {
  readonly userId: string;
  readonly projection: string;
  /**
   * `missing`: a row the replay gives that the read model lacks; `unexpected`: the reverse; `balance`:
   * the domain fold disagrees with the balance; `payment`: it disagrees with a payment's status.
   */
  readonly kind: 'missing' | 'unexpected' | 'balance' | 'payment';
  readonly detail: string;
};

/**
 * What an operator's check of one account found: a read-model difference, a hash chain that does
 * not verify (`chain`), or a stream the ledger refuses to replay (`replay`: nothing was compared).
 */
export type AccountFinding = AccountDifference | { readonly userId: string; readonly projection: null; readonly kind: 'chain' | 'replay'; readonly detail: string };

export type ReplayLine = {
  readonly revision: string;
  readonly position: string;
  readonly type: string;
  /** Signed: credits positive, usage negative; 0 for events that do not move tokens. */
  readonly amount: number;
  /** The running balance folded by the ledger's own `evolve`. */
  readonly balance: number;
  readonly occurredAt: string;
  readonly description: string | null;
};

/**
 * The replay of a user's stream: a line per event the ledger folded, and, when it refused one, why
 * (`refusal`: its revision and type, then the ledger's message), the lines before it kept: the
 * account an operator most needs to step through is the one the ledger cannot replay.
 */
export type AccountReplay = { readonly lines: readonly ReplayLine[]; readonly refusal: EventReplayError | null };

/**
 * The user's stream, event by event, with the balance the domain folds after each, up to the first
 * event the ledger refuses (one of a type it does not know among them), as the write path and
 * `verify` fold it.
 */
export async function replayAccount(store: EventStore, userId: string): Promise<AccountReplay> {
  let state = initialTokenAccountState;
  const lines: ReplayLine[] = [];
  for (const recorded of await readWholeStream(store, tokenAccountStreamId(userId))) {
    try {
      state = evolveAt(evolveTokenAccount, state, recorded);
    } catch (error) {
      if (error instanceof EventReplayError) return { lines, refusal: error };
      throw error;
    }
    const event = { type: recorded.type, data: recorded.data } as TokenAccountEvent;
    // The amount and description the event's transaction row shows; events without a row move no tokens.
    const transaction = transactionOf(event);
    lines.push(line(recorded, transaction?.amount ?? 0, state.balance, transaction?.description ?? null, event.data.occurredAt));
  }
  return { lines, refusal: null };
}

/**
 * Accounts with more events than this in the read model are replayed in temporary tables, after the
 * stream is let go (see `verifyAccount`): replayed in place, 10,000 events took 31 s under the hold
 * (`npm run bench:rebuild`), while appends to the account waited (and, past the 5 s append deadline,
 * failed with every append of their batch).
 */
export const VERIFY_IN_PLACE_EVENTS_MAX = 500;

/** Events replayed per transaction in temporary tables: a row updated by every event keeps at most this many versions. */
const SCRATCH_BATCH_EVENTS = 500;

export type VerifyOptions = {
  /** Default VERIFY_IN_PLACE_EVENTS_MAX. */
  readonly inPlaceEventsMax?: number;
  /** How long to wait for a place among the pool's verifications and account rebuilds (`withConnectionPair`) before failing; no limit without it. */
  readonly turnWait?: TurnWait;
  /** Called once the stored rows and the events are read and, for a replay in temporary tables, the stream is let go. */
  readonly afterCut?: () => Promise<void>;
};

/**
 * Replays the account and compares with the read models, at one consistent point: each projection's
 * checkpoint is locked and the stream held while the account's stored rows, and the events appended
 * since the stream was first read (before the hold), are read. The replay applies those events
 * through `project`, event by event (the stored rows were built by the set-based SQL, inline or by a
 * rebuild: a check by that same SQL would not see a fault in it). An account of up to `inPlaceEventsMax` events is replayed in that same transaction, into
 * the live tables cleared of its rows, and rolled back. A longer one is replayed after the
 * transaction ends, into this session's temporary copies of the tables (they shadow the live ones:
 * PostgreSQL looks in `pg_temp` first), a batch of events per transaction, and the copies dropped:
 * its appends and the runner wait only for the reads. The domain fold of the same events must give
 * the stored balance.
 */
export async function verifyAccount(store: EventStore, pool: Pool, projections: readonly Projection[], userId: string, options: VerifyOptions = {}): Promise<readonly AccountDifference[]> {
  // It holds a connection and reads the stream through the store with a second: it takes its turn with the other such work on the pool.
  return withConnectionPair(pool, () => verifyAccountHoldingAConnection(store, pool, projections, userId, options), options.turnWait);
}

async function verifyAccountHoldingAConnection(store: EventStore, pool: Pool, projections: readonly Projection[], userId: string, options: VerifyOptions): Promise<readonly AccountDifference[]> {
  const client = await pool.connect();
  const differences: AccountDifference[] = [];
  // A connection that failed midway may still have temporary tables shadowing the live ones: it is discarded.
  let failed = false;
  try {
    for (const projection of accountProjections(projections)) {
      const rows = projection.accountRows?.(userId);
      if (rows !== undefined) for (const difference of await verifyProjection(client, store, projection, rows, userId, options)) differences.push(difference);
    }
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    client.release(failed);
  }
  return differences;
}

async function verifyProjection(client: PoolClient, store: EventStore, projection: Projection, rows: AccountRows, userId: string, options: VerifyOptions): Promise<AccountDifference[]> {
  let events: readonly RecordedEvent[];
  let stored: readonly string[];
  // Read before the hold: a stream only grows, so under the hold only the events appended since are
  // read (a million-event account's stream was held 24 s while it was read whole, its appends refused).
  const earlier = await readWholeStream(store, rows.streamId);
  await client.query('BEGIN');
  try {
    // Lock the checkpoint and hold the stream before reading the stored rows: a runner in another
    // process, or an inline append, could otherwise commit rows between the two reads, and they
    // would look missing.
    const checkpoint = await lockCheckpoint(client, projection.name);
    await store.postgres?.holdStream(client, rows.streamId);
    stored = await readRows(client, rows.read);
    const since = await readWholeStream(store, rows.streamId, { fromRevision: (earlier.at(-1)?.revision ?? -1n) + 1n });
    events = await eventsInReadModel(client, projection, earlier.concat(since), checkpoint);
    if (events.length <= (options.inPlaceEventsMax ?? VERIFY_IN_PLACE_EVENTS_MAX)) {
      await options.afterCut?.();
      for (const change of rows.clear) await client.query(change.text, [...change.values]);
      await applyEventByEvent(client, projection, events);
      return await replayDifferences(client, projection, rows, userId, stored, events);
    }
  } finally {
    await client.query('ROLLBACK');
  }
  await options.afterCut?.();
  const tables = projection.tables.map((table) => client.escapeIdentifier(table));
  for (const table of tables) await client.query(`CREATE TEMPORARY TABLE ${table} (LIKE ${table} INCLUDING ALL)`);
  for (let from = 0; from < events.length; from += SCRATCH_BATCH_EVENTS) {
    await client.query('BEGIN');
    await applyEventByEvent(client, projection, events.slice(from, from + SCRATCH_BATCH_EVENTS));
    await client.query('COMMIT');
  }
  const differences = await replayDifferences(client, projection, rows, userId, stored, events);
  await client.query(`DROP TABLE ${tables.map((table) => `pg_temp.${table}`).join(', ')}`);
  return differences;
}

/** The replayed rows (read where the replay wrote them) against the stored ones, and for token_accounts the domain fold against the replayed rows. */
async function replayDifferences(
  client: PoolClient,
  projection: Projection,
  rows: AccountRows,
  userId: string,
  stored: readonly string[],
  events: readonly RecordedEvent[],
): Promise<AccountDifference[]> {
  const differences = compareRows(userId, projection.name, await readRows(client, rows.read), stored);
  if (projection.name === TOKEN_ACCOUNTS_PROJECTION) for (const difference of await compareFold(client, userId, events)) differences.push(difference);
  return differences;
}

export type VerificationReport = { readonly accounts: number; readonly findings: readonly AccountFinding[] };

/** Every account known to the event store or the read model, checked by `check`, `concurrency` at a time. */
export async function verifyAllAccounts(
  store: EventStore,
  pool: Pool,
  check: (userId: string) => Promise<readonly AccountFinding[]>,
  options: { readonly concurrency?: number; readonly onProgress?: (done: number, total: number) => void } = {},
): Promise<VerificationReport> {
  const users = await knownAccounts(store, pool);
  const findings: AccountFinding[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < users.length) {
      const userId = users[next] as string;
      next += 1;
      for (const finding of await check(userId)) findings.push(finding);
      done += 1;
      options.onProgress?.(done, users.length);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  return { accounts: users.length, findings };
}

/**
 * Accounts with a stream in the PostgreSQL event store or a row in any read model of an account,
 * each once, in order: a row made up for a user with no stream (a payment, a history row) is then
 * checked, and found `unexpected`, as it would be for a user named alone.
 */
async function knownAccounts(store: EventStore, pool: Pool): Promise<readonly string[]> {
  const prefix = tokenAccountStreamId('');
  const streams = (await store.postgres?.streamIdsStartingWith(prefix)) ?? [];
  const rows = await pool.query<{ user_id: string }>(
    `SELECT user_id::text FROM user_tokens UNION SELECT user_id::text FROM token_transactions UNION SELECT user_id::text FROM token_holds
     UNION SELECT user_id::text FROM token_lots UNION SELECT user_id::text FROM payments`,
  );
  return [...new Set([...streams.map((streamId) => streamId.slice(prefix.length)), ...rows.rows.map((row) => row.user_id)])].sort();
}

/**
 * The ledger's own fold of the events the read model holds against what the replayed rows hold: the
 * balance, held and shortfall, the live lots' remainders, the active holds, and each payment's status
 * and what its refund took back (the payments the fold knows and the rows the account has).
 */
async function compareFold(client: PoolClient, userId: string, events: readonly RecordedEvent[]): Promise<AccountDifference[]> {
  let state = initialTokenAccountState;
  // Every event, as the write path folds the stream: one of a type the ledger does not know is
  // refused here (a replay finding naming its revision and type), not skipped as the projection skips it.
  for (const recorded of events) state = evolveAt(evolveTokenAccount, state, recorded);
  const differences: AccountDifference[] = [];
  const difference = (kind: AccountDifference['kind'], detail: string) => differences.push({ userId, projection: TOKEN_ACCOUNTS_PROJECTION, kind, detail });
  // Read inside the transaction after the recomputation: what the replayed rows hold.
  const stored = await client.query<{ balance: string; held: string; shortfall: string }>('SELECT balance::text, held::text, shortfall::text FROM user_tokens WHERE user_id = $1', [userId]);
  const balance = stored.rows[0]?.balance ?? '0';
  if (balance !== String(state.balance)) difference('balance', `fold gives ${state.balance}, read model holds ${balance}`);
  const held = stored.rows[0]?.held ?? '0';
  if (held !== String(state.held)) difference('balance', `fold gives ${state.held} held, read model holds ${held}`);
  const shortfall = stored.rows[0]?.shortfall ?? '0';
  if (shortfall !== String(state.shortfall)) difference('balance', `fold gives a shortfall of ${state.shortfall}, read model holds ${shortfall}`);
  // The same `id=amount` entries on both sides, in any order.
  const sameEntries = (what: string, fold: readonly string[], rows: readonly string[]) => {
    const [folded, stored] = [[...fold].sort().join(','), [...rows].sort().join(',')];
    if (folded !== stored) difference('balance', `fold gives ${what} ${folded}, read model holds ${stored}`);
  };
  // Active holds: the fold's and the rows recorded active are the same holds of the same amounts (one past its expiry stays in both until its HoldExpired).
  const holds = await client.query<{ entry: string }>("SELECT hold_id::text || '=' || amount::text AS entry FROM token_holds WHERE user_id = $1 AND status = 'active'", [userId]);
  sameEntries('active holds', [...state.holds.values()].map((hold) => `${hold.holdId.toLowerCase()}=${hold.amount}`), holds.rows.map((row) => row.entry));
  // Lots with tokens left: the fold's live lots and the rows with a remainder are the same lots with the same remainders.
  const lots = await client.query<{ entry: string }>("SELECT lot_id || '=' || remaining::text AS entry FROM token_lots WHERE user_id = $1 AND remaining > 0", [userId]);
  sameEntries('lots', [...state.lots.values()].filter((lot) => lot.remaining > 0).map((lot) => `${lot.lotId}=${lot.remaining}`), lots.rows.map((row) => row.entry));
  const payments = await client.query<{ id: string; status: string; tokens_debited: string | null }>("SELECT id::text, status, metadata->>'tokensDebited' AS tokens_debited FROM payments WHERE user_id = $1 ORDER BY id", [userId]);
  const rows = new Map(payments.rows.map((row) => [row.id, row]));
  for (const [paymentId, payment] of state.payments) {
    const row = rows.get(paymentId.toLowerCase());
    if (row?.status !== payment.status) difference('payment', `payment ${paymentId}: fold gives ${payment.status}, read model holds ${row?.status ?? 'no row'}`);
    // What its refund took back, the part holds gave back later included.
    const debited = payment.tokensDebited === null ? null : String(payment.tokensDebited);
    if (row !== undefined && row.tokens_debited !== debited) difference('payment', `payment ${paymentId}: fold gives ${debited ?? 'no'} tokens debited by its refund, read model holds ${row.tokens_debited ?? 'none'}`);
    rows.delete(paymentId.toLowerCase());
  }
  for (const [paymentId, row] of rows) difference('payment', `payment ${paymentId}: read model holds ${row.status}, the stream has no such payment`);
  return differences;
}

async function readRows(client: PoolClient, queries: readonly { readonly text: string; readonly values: readonly unknown[] }[]): Promise<string[]> {
  const rows: string[] = [];
  // Row by row: spread into push, an account's million rows are a million arguments, past the call stack.
  for (const query of queries) for (const { row } of (await client.query<{ row: string }>(query.text, [...query.values])).rows) rows.push(row);
  return rows;
}

function compareRows(userId: string, projection: string, replayed: readonly string[], stored: readonly string[]): AccountDifference[] {
  const remaining = new Map<string, number>();
  for (const row of stored) remaining.set(row, (remaining.get(row) ?? 0) + 1);
  const differences: AccountDifference[] = [];
  for (const row of replayed) {
    const count = remaining.get(row) ?? 0;
    if (count === 0) differences.push({ userId, projection, kind: 'missing', detail: row });
    else remaining.set(row, count - 1);
  }
  for (const [row, count] of remaining) {
    for (let index = 0; index < count; index += 1) differences.push({ userId, projection, kind: 'unexpected', detail: row });
  }
  return differences;
}

function line(recorded: RecordedEvent, amount: number, balance: number, description: string | null, occurredAt: string): ReplayLine {
  return { revision: recorded.revision.toString(), position: formatPosition(recorded.position), type: recorded.type, amount, balance, occurredAt, description };
}
