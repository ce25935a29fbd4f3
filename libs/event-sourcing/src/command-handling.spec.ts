import { randomUUID } from 'node:crypto';
import { sealEvents, verifyChain } from '@app/audit';
import { EventIdConflictError, PostgresEventStore, WrongExpectedRevisionError, type EventStore, type ReadStreamOptions, type RecordedEvent } from '@app/event-store';
import { decideTokenAccount, decideTokenAccountWithState, LedgerError, tokenAccountDecider, tokenAccountSnapshot, tokenAccountStreamId, type TokenAccountCommand, type TokenAccountState } from '@app/ledger';
import { createPool, databaseUnavailableErrorOf } from '@app/database';
import { frozenableProxy } from '../../../test/support/frozenable-proxy.js';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import { CommandHandling, ConcurrencyConflictError, TOGETHER_COMMANDS_MAX, type CommandHandlingOptions } from './command-handling.js';
import { idempotentEventId, type IdempotentRequest } from './idempotent-request.js';
import { PostgresSnapshotStore, snapshotChecksum } from './snapshots/postgres-snapshot-store.js';

/** The real PostgreSQL store, counting the events commands read back from streams. */
class CountingStore {
  reads = 0;
  eventsRead = 0;
  readonly store: EventStore;

  constructor(inner: EventStore) {
    this.store = Object.create(inner) as EventStore;
    this.store.readStream = async (streamId: string, options?: ReadStreamOptions): Promise<readonly RecordedEvent[]> => {
      const events = await inner.readStream(streamId, options);
      this.reads += 1;
      this.eventsRead += events.length;
      return events;
    };
    const postgres = inner.postgres;
    if (postgres !== undefined) {
      // The store's one-round-trip read of a snapshot and the events from it counts as a read too.
      const counted: typeof postgres = Object.create(postgres) as typeof postgres;
      Object.defineProperty(this.store, 'postgres', { value: counted });
      counted.readStreamFromSnapshot = async (streamId, schemaVersion, maxCount) => {
        const read = await postgres.readStreamFromSnapshot(streamId, schemaVersion, maxCount);
        this.reads += 1;
        this.eventsRead += read.events.length;
        return read;
      };
    }
  }
}

let database: TestDatabase;
let store: PostgresEventStore;
let counting: CountingStore;
let snapshots: PostgresSnapshotStore;
let problems: string[];
const at = '2026-11-24T12:00:00.000Z';

beforeAll(async () => {
  database = await createTestDatabase();
  store = new PostgresEventStore(database.pool, { connectionString: database.url });
  snapshots = new PostgresSnapshotStore(database.pool);
});

afterAll(async () => {
  await store.close();
  await database.drop();
});

beforeEach(() => {
  counting = new CountingStore(store);
  problems = [];
});

/** One "process": its own cache, the shared store and snapshot table. */
function processWith(options: Partial<CommandHandlingOptions> = {}): CommandHandling {
  return new CommandHandling(counting.store, {
    cacheEntriesMax: 100,
    snapshots,
    snapshotIntervalEvents: 500,
    onSnapshotProblem: (_streamId, problem) => problems.push(problem),
    ...options,
  });
}

function use(commands: CommandHandling, userId: string, amount: number) {
  const command: TokenAccountCommand = { type: 'UseTokens', data: { userId, amount, description: null, transactionId: randomUUID(), now: new Date(at) } };
  return commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(command, state), metadata: {} });
}

/** A stream of one purchase of `credit` tokens followed by `usages` usages of 1 token. */
async function seededUser(credit: number, usages: number): Promise<string> {
  const userId = randomUUID();
  let balance = credit;
  const events = [{ id: randomUUID(), type: 'TokensPurchased', data: { userId, transactionId: randomUUID(), paymentId: randomUUID(), amount: credit, description: null, balanceAfter: credit, occurredAt: at } }];
  for (let index = 0; index < usages; index += 1) {
    balance -= 1;
    events.push({ id: randomUUID(), type: 'TokensUsed', data: { userId, transactionId: randomUUID(), amount: 1, description: null, balanceAfter: balance, occurredAt: at } } as never);
  }
  // Sealed, as every append now is: an unsealed stream would cost one extra read at its first append.
  await store.append(tokenAccountStreamId(userId), sealEvents(tokenAccountStreamId(userId), 0n, null, events) as never, { expectedRevision: 'no_stream' });
  return userId;
}

describe('command handling: loading a stream', () => {
  it('replays a long stream once, then decides on its cached state without reading the stream', async () => {
    const userId = await seededUser(5_000, 1_199);
    const commands = processWith();
    const first = await use(commands, userId, 1);
    expect(first.state.balance).toBe(3_800);
    expect(counting.eventsRead).toBe(1_200);

    counting.reads = 0;
    const second = await use(commands, userId, 1);
    expect(second.state.balance).toBe(3_799);
    expect(counting.reads).toBe(0);
  });

  it('does not refuse on a cached state that another process has moved past', async () => {
    const userId = await seededUser(10, 0);
    const [one, two] = [processWith(), processWith()];
    await use(one, userId, 5); // one caches a balance of 5
    const payment = { type: 'AddTokens', data: { userId, paymentId: randomUUID(), amount: 100, description: null, transactionId: randomUUID(), now: new Date(at) } } as const;
    await two.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(payment, state), metadata: {} });
    const spent = await use(one, userId, 50);
    expect(spent.events).toMatchObject([{ type: 'TokensUsed', data: { balanceAfter: 55 } }]);
  });

  it('credits a payment once when the repeat reaches a process whose cache has not seen the first credit', async () => {
    const userId = await seededUser(10, 0);
    const [one, two] = [processWith(), processWith()];
    await use(one, userId, 1);
    const payment = { type: 'AddTokens', data: { userId, paymentId: randomUUID(), amount: 7, description: null, transactionId: randomUUID(), now: new Date(at) } } as const;
    const first = await two.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(payment, state), metadata: {} });
    const repeat = await one.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(payment, state), metadata: {} });
    expect(first.events).toHaveLength(1);
    expect(repeat.events).toEqual([]);
    expect(repeat.state.balance).toBe(16);
    expect((await store.readStream(tokenAccountStreamId(userId))).map((event) => event.type)).toEqual(['TokensPurchased', 'TokensUsed', 'TokensPurchased']);
  });

  it('starts a fresh process from the verified snapshot instead of the first event', async () => {
    const userId = await seededUser(5_000, 1_199);
    await use(processWith(), userId, 1); // 1,201 events: due for a snapshot
    counting.eventsRead = 0;
    const fresh = await use(processWith(), userId, 1);
    expect(fresh.state.balance).toBe(3_799);
    expect(counting.eventsRead).toBe(1); // the event at the snapshot's revision, to verify it
    expect(problems).toEqual([]);
  });

  it('loads an account that is not in memory with one read: the snapshot and the events after it together', async () => {
    const short = await seededUser(50, 3);
    counting.reads = 0;
    expect((await use(processWith(), short, 1)).state.balance).toBe(46);
    expect(counting.reads).toBe(1);

    const long = await seededUser(5_000, 600);
    await use(processWith(), long, 1); // due for a snapshot
    await use(processWith(), long, 1); // ...and one event past it
    counting.reads = 0;
    counting.eventsRead = 0;
    expect((await use(processWith(), long, 1)).state.balance).toBe(4_397);
    expect(counting.reads).toBe(1);
    expect(counting.eventsRead).toBe(2); // the event at the snapshot's revision, and the one after it
  });

  it('catches up on events another process appended since it cached the state', async () => {
    const userId = await seededUser(100, 0);
    const [one, two] = [processWith(), processWith()];
    await use(one, userId, 10);
    await use(two, userId, 20);
    await use(two, userId, 30);
    const next = await use(one, userId, 5);
    expect(next.state.balance).toBe(35);
    expect(next.events).toMatchObject([{ type: 'TokensUsed', data: { balanceAfter: 35 } }]);
  });

  it('spends a balance of 20 exactly once when two processes race 30 usages of 1 on it', async () => {
    const userId = await seededUser(20, 0);
    const processes = [processWith(), processWith()];
    const outcomes = await Promise.all(
      Array.from({ length: 30 }, async (_, index) => {
        const commands = processes[index % 2] as CommandHandling;
        // A client retries a conflict (409 CONCURRENCY_CONFLICT); every other outcome is final.
        for (;;) {
          try {
            const handled = await use(commands, userId, 1);
            return handled.state.balance;
          } catch (error) {
            if (error instanceof LedgerError) return error.code;
            if (!(error instanceof ConcurrencyConflictError)) throw error;
          }
        }
      }),
    );
    const balancesAfter = outcomes.filter((outcome): outcome is number => typeof outcome === 'number').sort((a, b) => b - a);
    expect(balancesAfter).toEqual(Array.from({ length: 20 }, (_, index) => 19 - index));
    expect(outcomes.filter((outcome) => outcome === 'INSUFFICIENT_BALANCE')).toHaveLength(10);
    expect((await processWith().load(tokenAccountStreamId(userId), tokenAccountDecider)).state.balance).toBe(0);
  });

  it('keeps no state when the cache is off, and stays correct', async () => {
    const userId = await seededUser(10, 3);
    const commands = processWith({ cacheEntriesMax: 0, snapshots: undefined });
    await use(commands, userId, 1);
    counting.eventsRead = 0;
    expect((await use(commands, userId, 1)).state.balance).toBe(5);
    expect(counting.eventsRead).toBe(5);
    expect((await use(commands, userId, 1)).state.balance).toBe(4);
  });
});

describe('command handling: the state at a revision (a replayed request\'s first answer)', () => {
  it('folds up to the revision, from the snapshot when it is not past it, from the start when it is, from the cache when it is at it; at most eventsMax events; a revision past the end is an error', async () => {
    const userId = await seededUser(5_000, 1_199);
    const streamId = tokenAccountStreamId(userId);
    const writer = processWith();
    await use(writer, userId, 1); // revision 1,200: due for a snapshot there
    await use(writer, userId, 1); // revision 1,201
    const upTo = { eventsMax: 100 };

    counting.reads = 0;
    expect((await writer.stateAt(streamId, tokenAccountDecider, 1_201n, upTo))?.balance).toBe(3_799);
    expect(counting.reads).toBe(0); // the cached state is at that revision

    counting.eventsRead = 0;
    expect((await processWith().stateAt(streamId, tokenAccountDecider, 1_201n, upTo))?.balance).toBe(3_799);
    expect(counting.eventsRead).toBe(2); // the event at the snapshot's revision, to verify it, and the one after

    counting.eventsRead = 0;
    expect((await processWith().stateAt(streamId, tokenAccountDecider, 10n, upTo))?.balance).toBe(4_990);
    expect(counting.eventsRead).toBe(1 + 11); // the snapshot is past revision 10: the first 11 events

    // Revision 100 is 101 events from the start: more than eventsMax, so nothing is read but the snapshot.
    counting.eventsRead = 0;
    expect(await processWith().stateAt(streamId, tokenAccountDecider, 100n, upTo)).toBeUndefined();
    expect(counting.eventsRead).toBe(1);
    expect((await processWith().stateAt(streamId, tokenAccountDecider, 99n, upTo))?.balance).toBe(4_901);

    await expect(processWith().stateAt(streamId, tokenAccountDecider, 1_202n, upTo)).rejects.toThrow(`stream ${streamId} ends at revision 1201, before revision 1202`);
    expect(problems).toEqual([]);
  });
});

describe('command handling: a database that stops answering', () => {
  it("fails a command whose stream read gets no answer within the store's read timeout, and the next one, whose new connection gets no answer, within the pool's connect timeout, instead of holding the stream's queue; the stream goes on once the database answers", async () => {
    const userId = await seededUser(10, 0);
    const proxy = await frozenableProxy(new URL(database.url));
    // As the service makes its pool (createPool), with the waits short enough for a spec.
    const pool = createPool({ url: proxy.url, poolSizeMax: 2, connectTimeoutMs: 500 });
    const proxied = new PostgresEventStore(pool, { connectionString: database.url, streamReadTimeoutMs: 500 });
    try {
      const commands = new CommandHandling(proxied, { cacheEntriesMax: 0, snapshotIntervalEvents: 500 });
      await use(commands, userId, 1);
      proxy.freeze();
      const startedAt = Date.now();
      // The first reads on an open connection, which times out and is dropped; the second, sent later so
      // that it queues behind the first rather than join its group, must open a new connection.
      const frozen = use(commands, userId, 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const queued = use(commands, userId, 1);
      const outcomes = await Promise.allSettled([frozen, queued]);
      expect(Date.now() - startedAt).toBeLessThan(5_000);
      // pg's words for a connection that did not complete in time (pg-pool has others for a full pool).
      expect(outcomes.map((outcome) => (outcome.status === 'rejected' ? (outcome.reason as Error).message : 'answered'))).toEqual(['Query read timeout', 'Connection terminated due to connection timeout']);
      for (const outcome of outcomes) expect(databaseUnavailableErrorOf((outcome as PromiseRejectedResult).reason)).toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
      proxy.thaw();
      // The frozen connections were dropped: the next command reads on a new one and spends.
      expect((await use(commands, userId, 1)).state.balance).toBe(8);
    } finally {
      // Connections frozen mid-query (the store's wake-up NOTIFY, sent as the freeze began) end at once.
      proxy.cut();
      await proxied.close();
      await pool.end();
      await proxy.close();
    }
  });
});

describe('command handling: a wrong snapshot never makes a wrong decision', () => {
  /** A user whose stream (601 events, balance 400) has a snapshot at revision 600; returns the row's key. */
  async function snapshottedUser(): Promise<string> {
    const userId = await seededUser(1_000, 599);
    await use(processWith(), userId, 1);
    const row = await database.pool.query<{ revision: string }>('SELECT revision::text FROM snapshots WHERE stream_id = $1', [tokenAccountStreamId(userId)]);
    expect(row.rows[0]?.revision).toBe('600');
    return userId;
  }

  async function tamper(userId: string, assignments: string, values: readonly unknown[] = []): Promise<void> {
    await database.pool.query(`UPDATE snapshots SET ${assignments} WHERE stream_id = $1`, [tokenAccountStreamId(userId), ...values]);
  }

  /** A fresh process must decide on the true balance (400): spending 400 succeeds with nothing left. */
  async function expectReplayedDecision(userId: string, problem: RegExp | undefined): Promise<void> {
    counting.eventsRead = 0;
    const handled = await use(processWith(), userId, 400);
    expect(handled.events).toMatchObject([{ type: 'TokensUsed', data: { balanceAfter: 0 } }]);
    expect(counting.eventsRead).toBeGreaterThanOrEqual(601);
    if (problem === undefined) expect(problems).toEqual([]);
    else expect(problems).toEqual([expect.stringMatching(problem)]);
  }

  it('replays when the stored state was damaged (checksum mismatch)', async () => {
    const userId = await snapshottedUser();
    await tamper(userId, `state = replace(state, '"balance":400', '"balance":900')`);
    await expectReplayedDecision(userId, /checksum mismatch/);
  });

  it('replays when a consistent-looking state disagrees with the event it claims to follow', async () => {
    const userId = await snapshottedUser();
    const { rows } = await database.pool.query<{ state: string }>('SELECT state FROM snapshots WHERE stream_id = $1', [tokenAccountStreamId(userId)]);
    // Balance and one lot raised together, so the snapshot decodes (its lots add up to its balance).
    const forged = (rows[0] as { state: string }).state
      .replace('"balance":400', '"balance":900')
      .replace(/"original":(\d+),"remaining":(\d+)/, (_match, original: string, remaining: string) => `"original":${Number(original) + 500},"remaining":${Number(remaining) + 500}`);
    await tamper(userId, 'state = $2, checksum = $3', [forged, snapshotChecksum(forged)]);
    await expectReplayedDecision(userId, /disagrees with the event at revision 600/);
  });

  it('replays when the snapshot belongs to another history (stale event id)', async () => {
    const userId = await snapshottedUser();
    await tamper(userId, 'last_event_id = $2', [randomUUID()]);
    await expectReplayedDecision(userId, /is not event/);
  });

  it('replays when the snapshot claims a revision the stream does not have', async () => {
    const userId = await snapshottedUser();
    await tamper(userId, 'revision = 90000');
    await expectReplayedDecision(userId, /revision 90000 is not event/);
  });

  it('replays when the state cannot be decoded', async () => {
    const userId = await snapshottedUser();
    const broken = '{"balance":"four hundred","purchases":[]}';
    await tamper(userId, 'state = $2, checksum = $3', [broken, snapshotChecksum(broken)]);
    await expectReplayedDecision(userId, /balance is not a valid balance/);
  });

  it('ignores a snapshot of another schema version, then replaces it', async () => {
    const userId = await snapshottedUser();
    await tamper(userId, 'schema_version = 0');
    await expectReplayedDecision(userId, undefined);
    const row = await database.pool.query<{ schema_version: number; revision: string }>('SELECT schema_version, revision::text FROM snapshots WHERE stream_id = $1', [
      tokenAccountStreamId(userId),
    ]);
    expect(row.rows[0]).toEqual({ schema_version: tokenAccountSnapshot.version, revision: '601' });
  });
});

describe('command handling: a decision that computed its state', () => {
  it('keeps the state the decision computed after its events instead of folding them again, and decides the next command on it', async () => {
    const userId = await seededUser(10, 0);
    const commands = processWith();
    await use(commands, userId, 1);
    const command: TokenAccountCommand = { type: 'UseTokens', data: { userId, amount: 3, description: null, transactionId: randomUUID(), now: new Date(at) } };
    let computed: TokenAccountState | undefined;
    const handled = await commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: (state) => {
        const decision = decideTokenAccountWithState(command, state);
        computed = decision.state;
        return decision;
      },
      metadata: {},
    });
    expect(handled.events).toMatchObject([{ type: 'TokensUsed', data: { balanceAfter: 6 } }]);
    expect(handled.state).toBe(computed);
    counting.reads = 0;
    expect((await use(commands, userId, 2)).state.balance).toBe(4);
    expect(counting.reads).toBe(0);
  });
});

describe('command handling: commands queued on one stream, decided together', () => {
  /** The transactions that appended the stream's events, in stream order, one entry per event. */
  async function transactionsOf(userId: string): Promise<string[]> {
    const result = await database.pool.query<{ transaction_id: string }>(
      'SELECT transaction_id::text FROM events WHERE stream_id = $1 ORDER BY stream_revision',
      [tokenAccountStreamId(userId)],
    );
    return result.rows.map((row) => row.transaction_id);
  }

  function outcome(handled: Promise<{ state: TokenAccountState }>): Promise<number | string> {
    return handled.then(
      (done) => done.state.balance,
      (error: unknown) => {
        if (error instanceof LedgerError) return error.code;
        throw error;
      },
    );
  }

  it('answers a refusal in the middle of a group with its own error, final without a read once the others\' events append as one', async () => {
    const userId = await seededUser(12, 0);
    const commands = processWith();
    await commands.load(tokenAccountStreamId(userId), tokenAccountDecider);
    const readsBefore = counting.reads;
    // Issued in one tick: they queue before the stream's turn starts, so they are decided together,
    // on the cached state; the append at its revision commits, so the refusal needs no re-read.
    const outcomes = await Promise.all([use(commands, userId, 5), use(commands, userId, 100), use(commands, userId, 5)].map(outcome));
    expect(outcomes).toEqual([7, 'INSUFFICIENT_BALANCE', 2]);
    expect(counting.reads).toBe(readsBefore);
    const transactions = await transactionsOf(userId);
    expect(transactions).toHaveLength(3);
    expect(new Set(transactions.slice(1)).size).toBe(1);
    expect((await processWith().load(tokenAccountStreamId(userId), tokenAccountDecider)).state.balance).toBe(2);
  });

  it('spends a balance of 20 exactly once when 30 usages of 1 queue on it, in far fewer appends than commands', async () => {
    const userId = await seededUser(20, 0);
    const commands = processWith();
    await use(commands, userId, 1);
    const outcomes = await Promise.all(Array.from({ length: 30 }, () => outcome(use(commands, userId, 1))));
    const balances = outcomes.filter((value): value is number => typeof value === 'number').sort((a, b) => b - a);
    expect(balances).toEqual(Array.from({ length: 19 }, (_, index) => 18 - index));
    expect(outcomes.filter((value) => value === 'INSUFFICIENT_BALANCE')).toHaveLength(11);
    const usages = (await transactionsOf(userId)).slice(1);
    expect(usages).toHaveLength(20);
    // The first usage alone, then the 30 in one group.
    expect(new Set(usages).size).toBe(2);
  });

  it(`decides at most ${TOGETHER_COMMANDS_MAX} commands together: more start another group`, async () => {
    const userId = await seededUser(1_000, 0);
    const commands = processWith();
    const count = TOGETHER_COMMANDS_MAX + 6;
    const outcomes = await Promise.all(Array.from({ length: count }, () => outcome(use(commands, userId, 1))));
    expect(outcomes.sort((a, b) => Number(b) - Number(a))).toEqual(Array.from({ length: count }, (_, index) => 999 - index));
    const usages = (await transactionsOf(userId)).slice(1);
    expect(usages.filter((transaction) => transaction === usages[0])).toHaveLength(TOGETHER_COMMANDS_MAX);
    expect(new Set(usages).size).toBe(2);
  });

  it('decides the whole group again when another process appended first, and refuses what no longer fits', async () => {
    const userId = await seededUser(22, 0);
    const stale = processWith();
    await stale.load(tokenAccountStreamId(userId), tokenAccountDecider);
    await use(processWith(), userId, 5);
    // On its cached 22 all three fit; the append at that revision conflicts, and on 17 two do, appended together.
    const outcomes = await Promise.all([use(stale, userId, 8), use(stale, userId, 8), use(stale, userId, 8)].map(outcome));
    expect(outcomes).toEqual([9, 1, 'INSUFFICIENT_BALANCE']);
    expect((await processWith().load(tokenAccountStreamId(userId), tokenAccountDecider)).state.balance).toBe(1);
    const transactions = await transactionsOf(userId);
    expect(transactions).toHaveLength(4);
    expect(transactions[2]).toBe(transactions[3]);
  });

  it('fails only the command whose decided events do not fold, and appends the others', async () => {
    const userId = await seededUser(10, 0);
    const commands = processWith();
    const broken = commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      // Decided events that replay refuses (a balance that does not follow): a bug in a decision.
      decide: () => [{ type: 'TokensUsed', data: { userId, transactionId: randomUUID(), amount: 1, description: null, balanceAfter: 5, occurredAt: at } }] as never,
      metadata: {},
    });
    const outcomes = await Promise.allSettled([use(commands, userId, 2), broken, use(commands, userId, 3)]);
    expect(outcomes.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await processWith().load(tokenAccountStreamId(userId), tokenAccountDecider)).state.balance).toBe(5);
    expect(await transactionsOf(userId)).toHaveLength(3);
  });

  it('fails every command of a group whose append fails, writes none of them, and the next group starts from the stream', async () => {
    const userId = await seededUser(10, 0);
    let failNext = true;
    const failing = Object.create(counting.store) as EventStore;
    failing.append = async (...args: Parameters<EventStore['append']>) => {
      if (failNext) {
        failNext = false;
        throw new Error('connection terminated unexpectedly');
      }
      return counting.store.append(...args);
    };
    const commands = new CommandHandling(failing, { cacheEntriesMax: 100, snapshotIntervalEvents: 500 });
    const failed = await Promise.allSettled([use(commands, userId, 3), use(commands, userId, 4)]);
    expect(failed.map((result) => (result.status === 'rejected' ? (result.reason as Error).message : 'fulfilled'))).toEqual(['connection terminated unexpectedly', 'connection terminated unexpectedly']);
    expect(await transactionsOf(userId)).toHaveLength(1);
    expect(await Promise.all([use(commands, userId, 3), use(commands, userId, 4)].map(outcome))).toEqual([7, 3]);
    expect(await transactionsOf(userId)).toHaveLength(3);
  });

  /** A store over the counting one whose lookup of an event by id (PostgreSQL's) is `readEvent`, given the real one. */
  function withReadEvent(readEvent: (real: (streamId: string, eventId: string) => Promise<RecordedEvent | undefined>, streamId: string, eventId: string) => Promise<RecordedEvent | undefined>): EventStore {
    const postgres = store.postgres;
    if (postgres === undefined) throw new Error('the PostgreSQL store offers its capabilities');
    const real = (streamId: string, eventId: string) => postgres.readEvent(streamId, eventId);
    return Object.create(counting.store, { postgres: { value: { ...postgres, readEvent: (streamId: string, eventId: string) => readEvent(real, streamId, eventId) } } }) as EventStore;
  }

  /** `base` (the counting store by default), counting the appends that fail with `kind`. */
  function countingFailed(kind: abstract new (...args: never[]) => Error, base: EventStore = counting.store): { readonly store: EventStore; readonly failed: () => number } {
    let failed = 0;
    const counted = Object.create(base) as EventStore;
    counted.append = async (...args: Parameters<EventStore['append']>) => {
      try {
        return await base.append(...args);
      } catch (error) {
        if (error instanceof kind) failed += 1;
        throw error;
      }
    };
    return { store: counted, failed: () => failed };
  }

  const processOn = (eventStore: EventStore) => new CommandHandling(eventStore, { cacheEntriesMax: 100, snapshotIntervalEvents: 500 });

  /** A usage of `amount` with an Idempotency-Key, as the HTTP handler issues it: a fresh transaction id on every attempt. */
  function keyedUse(commands: CommandHandling, userId: string, amount: number, idempotency: IdempotentRequest) {
    const command: TokenAccountCommand = { type: 'UseTokens', data: { userId, amount, description: null, transactionId: randomUUID(), now: new Date(at) } };
    return commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(command, state), metadata: { idempotencyKey: idempotency.key }, idempotency });
  }

  function keyOf(name: string, notBefore = new Date(Date.now() - 60_000)): IdempotentRequest {
    return { key: name, requestId: randomUUID(), notBefore };
  }

  async function usagesOf(userId: string): Promise<{ id: string; transaction: string; amount: number }[]> {
    const result = await database.pool.query<{ id: string; transaction: string; amount: string }>(
      "SELECT event_id::text AS id, transaction_id::text AS transaction, data->>'amount' AS amount FROM events WHERE stream_id = $1 AND event_type = 'TokensUsed' ORDER BY stream_revision",
      [tokenAccountStreamId(userId)],
    );
    return result.rows.map((row) => ({ ...row, amount: Number(row.amount) }));
  }

  it('decides requests with an Idempotency-Key together with plain ones, each under ids derived from its request, and answers their retries with those events', async () => {
    const userId = await seededUser(100, 0);
    const commands = processWith();
    await commands.load(tokenAccountStreamId(userId), tokenAccountDecider);
    const [first, second] = [keyOf('key-1'), keyOf('key-2')];
    const handled = await Promise.all([keyedUse(commands, userId, 10, first), use(commands, userId, 1), keyedUse(commands, userId, 10, second), use(commands, userId, 1)]);
    expect(handled.map((result) => result.state.balance)).toEqual([90, 89, 79, 78]);
    const usages = await usagesOf(userId);
    expect(usages.map((usage) => usage.amount)).toEqual([10, 1, 10, 1]);
    expect(new Set(usages.map((usage) => usage.transaction)).size).toBe(1);
    expect([usages[0]?.id, usages[2]?.id]).toEqual([idempotentEventId(first.requestId, 0), idempotentEventId(second.requestId, 0)]);
    // Retried together, in this process and in a fresh one: the recorded events, nothing spent.
    for (const retrying of [commands, processWith()]) {
      const retries = await Promise.all([keyedUse(retrying, userId, 10, first), keyedUse(retrying, userId, 10, second), use(retrying, userId, 1)]);
      expect(retries.slice(0, 2)).toMatchObject([
        { replayed: true, events: [{ data: { amount: 10, balanceAfter: 90 } }] },
        { replayed: true, events: [{ data: { amount: 10, balanceAfter: 79 } }] },
      ]);
    }
    expect((await usagesOf(userId)).map((usage) => usage.amount)).toEqual([10, 1, 10, 1, 1, 1]);
    expect((await processWith().load(tokenAccountStreamId(userId), tokenAccountDecider)).state.balance).toBe(76);
  });

  it('answers a keyed command whose earlier attempt another process appended with that attempt, and appends the rest of its group', async () => {
    const userId = await seededUser(30, 0);
    const conflicts = countingFailed(WrongExpectedRevisionError);
    const commands = processOn(conflicts.store);
    await commands.load(tokenAccountStreamId(userId), tokenAccountDecider); // its cache misses what the other process appends
    const retried = keyOf('key-1');
    const first = await keyedUse(processWith(), userId, 20, retried);
    const [replayed, ...plain] = await Promise.all([keyedUse(commands, userId, 20, retried), outcome(use(commands, userId, 5)), outcome(use(commands, userId, 6))]);
    expect(replayed).toMatchObject({ replayed: true, events: first.events, position: first.position });
    // The plain ones are decided on the stream read when the earlier attempt was found (10), not on
    // the cached 30: no append at a stale revision.
    expect(plain).toEqual([5, 'INSUFFICIENT_BALANCE']);
    expect(conflicts.failed()).toBe(0);
    expect((await usagesOf(userId)).map((usage) => usage.amount)).toEqual([20, 5]);
    expect((await processWith().load(tokenAccountStreamId(userId), tokenAccountDecider)).state.balance).toBe(5);
  });

  it('handles each command alone when an attempt of a keyed one lands between its look and the group\'s append: spent once, the others appended', async () => {
    const userId = await seededUser(50, 0);
    const racing = keyOf('key-1');
    let interleaved = false;
    const looking = withReadEvent(async (real, streamId, eventId) => {
      const found = await real(streamId, eventId);
      if (!interleaved && eventId === idempotentEventId(racing.requestId, 0)) {
        interleaved = true;
        await keyedUse(processWith(), userId, 20, racing); // the same request, in another process
      }
      return found;
    });
    const idConflicts = countingFailed(EventIdConflictError, looking);
    const commands = processOn(idConflicts.store);
    await commands.load(tokenAccountStreamId(userId), tokenAccountDecider);
    const [plainBefore, keyed, plainAfter] = await Promise.all([use(commands, userId, 1), keyedUse(commands, userId, 20, racing), use(commands, userId, 2)]);
    expect(interleaved).toBe(true);
    expect(idConflicts.failed()).toBe(1);
    expect(keyed).toMatchObject({ replayed: true, events: [{ data: { amount: 20, balanceAfter: 30 } }] });
    expect([plainBefore.state.balance, plainAfter.state.balance]).toEqual([29, 27]);
    const usages = await usagesOf(userId);
    expect(usages.map((usage) => usage.amount)).toEqual([20, 1, 2]);
    expect(usages[0]?.id).toBe(idempotentEventId(racing.requestId, 0));
    expect(new Set(usages.map((usage) => usage.transaction)).size).toBe(3);
    expect((await processWith().load(tokenAccountStreamId(userId), tokenAccountDecider)).state.balance).toBe(27);
  });

  it('looks for no earlier attempt of keyed commands that made their keys\' first claims, and appends them together', async () => {
    const userId = await seededUser(100, 0);
    let lookups = 0;
    const commands = processOn(
      withReadEvent((real, streamId, eventId) => {
        lookups += 1;
        return real(streamId, eventId);
      }),
    );
    await commands.load(tokenAccountStreamId(userId), tokenAccountDecider);
    await use(commands, userId, 1); // seals the stream's unsealed head
    const keys = [keyOf('key-1'), keyOf('key-2'), keyOf('key-3')].map((key) => ({ ...key, firstClaim: true }));
    const handled = await Promise.all(keys.map((key) => keyedUse(commands, userId, 10, key)));
    expect(handled.map((result) => result.state.balance)).toEqual([89, 79, 69]);
    expect(lookups).toBe(0);
    const usages = (await usagesOf(userId)).slice(1);
    expect(usages.map((usage) => usage.id)).toEqual(keys.map((key) => idempotentEventId(key.requestId, 0)));
    expect(new Set(usages.map((usage) => usage.transaction)).size).toBe(1);
  });

  it('answers a first claim refused in a group with the attempt of the same request that spent the balance alongside it', async () => {
    const userId = await seededUser(11, 0);
    const commands = processWith();
    const keyed = keyOf('key-1');
    // Another attempt of the request (its lease taken over while this one ran) spent 10 first.
    const alongside = await keyedUse(processWith(), userId, 10, keyed);
    await commands.load(tokenAccountStreamId(userId), tokenAccountDecider);
    const [first, plain] = await Promise.all([keyedUse(commands, userId, 10, { ...keyed, firstClaim: true }), outcome(use(commands, userId, 1))]);
    expect(first).toMatchObject({ replayed: true, events: alongside.events });
    expect(plain).toBe(0); // appended by the group, whose refused first claim was then looked for
    expect((await usagesOf(userId)).map((usage) => usage.amount)).toEqual([10, 1]);
  });

  it('fails only the refused first claim whose look fails, once the group\'s others are answered with what they appended', async () => {
    const userId = await seededUser(11, 0);
    const keyed = keyOf('key-1');
    await keyedUse(processWith(), userId, 10, keyed);
    const commands = processOn(withReadEvent(() => Promise.reject(new Error('connection terminated unexpectedly'))));
    await commands.load(tokenAccountStreamId(userId), tokenAccountDecider);
    const [first, plain] = await Promise.allSettled([keyedUse(commands, userId, 10, { ...keyed, firstClaim: true }), use(commands, userId, 1)]);
    expect(first).toMatchObject({ status: 'rejected', reason: { message: 'connection terminated unexpectedly' } });
    expect(plain).toMatchObject({ status: 'fulfilled', value: { state: { balance: 0 } } });
    expect((await usagesOf(userId)).map((usage) => usage.amount)).toEqual([10, 1]);
  });

  it('looks first for a first claim on a store without unique event ids (EventStoreDB), which would append an attempt\'s ids again', async () => {
    const userId = await seededUser(30, 0);
    const keyed = keyOf('key-1');
    // An attempt that took the key over after this one's first claim, appended before this one decides.
    const alongside = await keyedUse(processWith(), userId, 10, keyed);
    // PostgreSQL underneath would refuse the ids anyway: what shows the look is that no append of them is tried.
    const appendedIds: string[] = [];
    const portOnly = Object.create(counting.store, { postgres: { value: undefined } }) as EventStore;
    portOnly.append = (streamId, events, options) => {
      appendedIds.push(...events.map((event) => event.id));
      return counting.store.append(streamId, events, options);
    };
    const late = processOn(portOnly);
    await late.load(tokenAccountStreamId(userId), tokenAccountDecider);
    const [first, plain] = await Promise.all([keyedUse(late, userId, 10, { ...keyed, firstClaim: true }), use(late, userId, 1)]);
    expect(first).toMatchObject({ replayed: true, events: alongside.events });
    expect(plain.state.balance).toBe(19);
    const alone = await keyedUse(processOn(portOnly), userId, 10, { ...keyed, firstClaim: true });
    expect(alone).toMatchObject({ replayed: true, events: alongside.events });
    expect(appendedIds).not.toContain(idempotentEventId(keyed.requestId, 0));
    expect((await usagesOf(userId)).map((usage) => usage.amount)).toEqual([10, 1]);
  });

  it('decides a repeat of a request already in the group after the group, alone, and answers it with the first\'s events', async () => {
    const userId = await seededUser(50, 0);
    const idConflicts = countingFailed(EventIdConflictError);
    const commands = processOn(idConflicts.store);
    await commands.load(tokenAccountStreamId(userId), tokenAccountDecider);
    const twice = keyOf('key-1');
    const [first, plain, repeat] = await Promise.all([keyedUse(commands, userId, 20, twice), use(commands, userId, 1), keyedUse(commands, userId, 20, twice)]);
    // The repeat was not in the group's append (the same id twice there would fail it as a whole).
    expect(idConflicts.failed()).toBe(0);
    expect(new Set((await usagesOf(userId)).map((usage) => usage.transaction)).size).toBe(1);
    expect(first).toMatchObject({ events: [{ data: { amount: 20, balanceAfter: 30 } }] });
    expect(first.replayed).toBeUndefined();
    expect(plain.state.balance).toBe(29);
    expect(repeat).toMatchObject({ replayed: true, events: first.events });
    expect((await usagesOf(userId)).map((usage) => usage.amount)).toEqual([20, 1]);
  });

  it('takes what was recorded when the same keyed requests, decided otherwise, were appended at the same place first', async () => {
    const userId = await seededUser(50, 0);
    // Without PostgreSQL's lookup by event id, and with a window that misses everything: as on
    // EventStoreDB once the key's first claim is forgotten, so only the store can tell.
    const late = withoutPostgresLookup();
    await late.load(tokenAccountStreamId(userId), tokenAccountDecider); // caches the state before the first attempts
    const [one, two] = [keyOf('key-1'), keyOf('key-2')];
    const early = processWith();
    await early.load(tokenAccountStreamId(userId), tokenAccountDecider);
    const firsts = await Promise.all([keyedUse(early, userId, 10, one), keyedUse(early, userId, 15, two)]);
    const missing = (request: IdempotentRequest): IdempotentRequest => ({ ...request, notBefore: new Date(Date.now() + 3_600_000) });
    // Decided again on the cached 50 (other transaction ids), the same ids land at the same place.
    const retries = await Promise.all([keyedUse(late, userId, 10, missing(one)), keyedUse(late, userId, 15, missing(two))]);
    expect(retries).toMatchObject([
      { replayed: true, events: firsts[0]?.events },
      { replayed: true, events: firsts[1]?.events },
    ]);
    expect((await usagesOf(userId)).map((usage) => usage.amount)).toEqual([10, 15]);
    // The late process's cache holds the recorded events and their chain: its next command decides on 25 and verifies.
    const next = await use(late, userId, 25);
    expect(next.events).toMatchObject([{ data: { balanceAfter: 0 } }]);
    expect((await processWith().load(tokenAccountStreamId(userId), tokenAccountDecider)).state.balance).toBe(0);
  });

  /** A usage decided alike in every process (the same transaction id and time), with its own metadata: as two attempts of one request that were decided on the same state. */
  function alikeUse(commands: CommandHandling, userId: string, amount: number, idempotency: IdempotentRequest, transactionId: string, attemptName: string) {
    const command: TokenAccountCommand = { type: 'UseTokens', data: { userId, amount, description: null, transactionId, now: new Date(at) } };
    return commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: (state) => decideTokenAccount(command, state),
      metadata: { idempotencyKey: idempotency.key, requestId: attemptName },
      idempotency,
    });
  }

  async function expectIntactChain(userId: string): Promise<void> {
    const streamId = tokenAccountStreamId(userId);
    const events = (await store.readStream(streamId)).map(({ streamId: id, revision, id: eventId, type, data, metadata }) => ({ streamId: id, revision, id: eventId, type, data, metadata }));
    const row = await database.pool.query<{ revision: string }>('SELECT revision::text FROM event_streams WHERE stream_id = $1', [streamId]);
    expect(verifyChain(events, { anchor: { revision: BigInt(row.rows[0]?.revision ?? '-1') } })).toMatchObject({ ok: true, eventCount: events.length });
  }

  const withoutPostgresLookup = () => processOn(Object.create(counting.store, { postgres: { value: undefined } }) as EventStore);
  const missing = (request: IdempotentRequest): IdempotentRequest => ({ ...request, notBefore: new Date(Date.now() + 3_600_000) });

  it('answers keyed requests decided alike with their own decisions when the store finds them already at that place, and the chain stays whole', async () => {
    const userId = await seededUser(50, 0);
    const late = withoutPostgresLookup();
    await late.load(tokenAccountStreamId(userId), tokenAccountDecider);
    const [one, two] = [keyOf('key-1'), keyOf('key-2')];
    const [oneTransaction, twoTransaction] = [randomUUID(), randomUUID()];
    const early = processWith();
    await early.load(tokenAccountStreamId(userId), tokenAccountDecider);
    await Promise.all([alikeUse(early, userId, 10, one, oneTransaction, 'early'), alikeUse(early, userId, 15, two, twoTransaction, 'early')]);
    await use(early, userId, 5); // so that the late process's search, stopping at it, misses both
    // The same decisions with other metadata, at the place they were recorded: the store reports
    // them appended without writing; read back, they are these decisions, each answered with its own.
    const retries = await Promise.all([alikeUse(late, userId, 10, missing(one), oneTransaction, 'late'), alikeUse(late, userId, 15, missing(two), twoTransaction, 'late')]);
    expect(retries.map((retry) => [retry.replayed, retry.state.balance])).toEqual([
      [undefined, 40],
      [undefined, 25],
    ]);
    expect((await use(late, userId, 5)).state.balance).toBe(15);
    expect((await usagesOf(userId)).map((usage) => usage.amount)).toEqual([10, 15, 5, 5]);
    await expectIntactChain(userId);
  });

  it('does not make a refusal final on an append the store found already written: the refused command is decided again on the stream', async () => {
    const userId = await seededUser(50, 0);
    const late = withoutPostgresLookup();
    await late.load(tokenAccountStreamId(userId), tokenAccountDecider); // caches 50
    const keyed = keyOf('key-1');
    const transactionId = randomUUID();
    await alikeUse(processWith(), userId, 10, keyed, transactionId, 'early');
    const credit = { type: 'AddTokens', data: { userId, paymentId: randomUUID(), amount: 100, description: null, transactionId: randomUUID(), now: new Date(at) } } as const;
    await processWith().handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(credit, state), metadata: {} });
    // On the cached 50 the retry spends 10 and the plain 45 no longer fits. The retry's id is found at
    // the place it expects, so the store reports it appended; the credit after it is not in that
    // state, and the plain spend, decided again on the stream (140), fits.
    const [retry, plain] = await Promise.all([alikeUse(late, userId, 10, missing(keyed), transactionId, 'late'), outcome(use(late, userId, 45))]);
    expect(retry.events).toMatchObject([{ data: { transactionId, balanceAfter: 40 } }]);
    expect(plain).toBe(95);
    expect((await usagesOf(userId)).map((usage) => usage.amount)).toEqual([10, 45]);
    await expectIntactChain(userId);
  });
});
