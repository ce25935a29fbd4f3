import { randomUUID } from 'node:crypto';
import { verifyChain, type ChainEvent } from '@app/audit';
import { PostgresEventStore, type EventToAppend } from '@app/event-store';
import { decideTokenAccount, tokenAccountDecider, tokenAccountStreamId, type TokenAccountCommand } from '@app/ledger';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import { CommandHandling, type CommandHandlingOptions } from './command-handling.js';
import { PostgresSnapshotStore } from './snapshots/postgres-snapshot-store.js';

// Every append through CommandHandling seals its events onto the stream's hash chain: these specs
// read the chain back from a real PostgreSQL store and verify it against the store's own revision.
let database: TestDatabase;
let stores: PostgresEventStore[];
let snapshots: PostgresSnapshotStore;
const at = '2026-11-24T12:00:00.000Z';

beforeAll(async () => {
  database = await createTestDatabase();
  // Two stores on one database: two processes, each with its own group commit and cache.
  stores = [new PostgresEventStore(database.pool, { connectionString: database.url }), new PostgresEventStore(database.pool, { connectionString: database.url })];
  snapshots = new PostgresSnapshotStore(database.pool);
});

afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()));
  await database.drop();
});

function processOn(store: PostgresEventStore, options: Partial<CommandHandlingOptions> = {}): CommandHandling {
  return new CommandHandling(store, { cacheEntriesMax: 100, snapshots, snapshotIntervalEvents: 500, ...options });
}

function run(commands: CommandHandling, command: TokenAccountCommand) {
  return commands.handle({ streamId: tokenAccountStreamId(command.data.userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(command, state), metadata: { schemaVersion: 1, requestId: randomUUID() } });
}

const buy = (userId: string, amount: number): TokenAccountCommand => ({
  type: 'AddTokens',
  data: { userId, amount, paymentId: randomUUID(), description: null, transactionId: randomUUID(), now: new Date(at) },
});
const use = (userId: string, amount: number): TokenAccountCommand => ({ type: 'UseTokens', data: { userId, amount, description: null, transactionId: randomUUID(), now: new Date(at) } });

/** The whole stream and the revision `event_streams` records for it (the anchor that finds removed newest events). */
async function chainOf(userId: string): Promise<{ events: ChainEvent[]; recordedRevision: bigint }> {
  const streamId = tokenAccountStreamId(userId);
  const events = (await stores[0]!.readStream(streamId)).map(({ streamId: id, revision, id: eventId, type, data, metadata }) => ({ streamId: id, revision, id: eventId, type, data, metadata }));
  const row = await database.pool.query<{ revision: string }>('SELECT revision::text FROM event_streams WHERE stream_id = $1', [streamId]);
  return { events, recordedRevision: BigInt(row.rows[0]?.revision ?? '-1') };
}

async function expectIntactChain(userId: string, eventCount: number, unsealedPrefix = 0): Promise<void> {
  const { events, recordedRevision } = await chainOf(userId);
  expect(verifyChain(events, { anchor: { revision: recordedRevision } })).toMatchObject({ ok: true, eventCount, unsealedPrefix });
}

describe('hashes on append', () => {
  it('seals every event of many commands into one chain', async () => {
    const userId = randomUUID();
    const commands = processOn(stores[0]!);
    await run(commands, buy(userId, 1_000));
    for (let index = 0; index < 40; index += 1) await run(commands, index % 5 === 0 ? buy(userId, 10) : use(userId, 3));
    await expectIntactChain(userId, 41);
  });

  it('keeps one complete chain when two processes race 40 usages on one stream', async () => {
    const userId = randomUUID();
    const [first, second] = [processOn(stores[0]!), processOn(stores[1]!)];
    await run(first, buy(userId, 25));
    await run(second, use(userId, 1));
    const outcomes = await Promise.allSettled(Array.from({ length: 40 }, (_, index) => run(index % 2 === 0 ? first : second, use(userId, 1))));
    const spent = outcomes.filter((outcome) => outcome.status === 'fulfilled').length;
    // 24 tokens were left: every success is one event, whatever the conflicts and retries cost.
    expect(spent).toBe(24);
    await expectIntactChain(userId, 2 + 24);
    const { events } = await chainOf(userId);
    expect(events[events.length - 1]?.data).toMatchObject({ balanceAfter: 0 });
  });

  it('keeps the chain across snapshots, a fresh process that starts from one, and no cache at all', async () => {
    const userId = randomUUID();
    const writer = processOn(stores[0]!, { snapshotIntervalEvents: 5 });
    await run(writer, buy(userId, 100));
    for (let index = 0; index < 12; index += 1) await run(writer, use(userId, 1));
    const snapshot = await database.pool.query('SELECT revision FROM snapshots WHERE stream_id = $1', [tokenAccountStreamId(userId)]);
    expect(snapshot.rows).toHaveLength(1);
    // A new process loads the snapshot (its event's hash is the head) and appends after it.
    await run(processOn(stores[1]!, { snapshotIntervalEvents: 5 }), use(userId, 1));
    await run(processOn(stores[1]!, { cacheEntriesMax: 0 }), use(userId, 1));
    // The first writer's cached head is stale: its append conflicts, catches up and reseals.
    await run(writer, use(userId, 1));
    await expectIntactChain(userId, 16);
  });

  it('seals a stream written before hashes onto a chain that covers its unsealed events', async () => {
    const userId = randomUUID();
    const streamId = tokenAccountStreamId(userId);
    const legacy: EventToAppend[] = [
      { id: randomUUID(), type: 'TokensPurchased', data: { userId, transactionId: randomUUID(), paymentId: randomUUID(), amount: 50, description: null, balanceAfter: 50, occurredAt: at } },
      { id: randomUUID(), type: 'TokensUsed', data: { userId, transactionId: randomUUID(), amount: 5, description: null, balanceAfter: 45, occurredAt: at } },
    ];
    await stores[0]!.append(streamId, legacy, { expectedRevision: 'no_stream' });
    expect(verifyChain((await chainOf(userId)).events)).toMatchObject({ ok: false, firstBadRevision: 0n, reason: expect.stringMatching(/^revision 0 has no hash/) });

    await run(processOn(stores[0]!), use(userId, 1));
    await expectIntactChain(userId, 3, 2);
    // From now on the sealed event vouches for the legacy ones: a change to them shows.
    await database.pool.query("UPDATE events SET data = jsonb_set(data, '{amount}', '6') WHERE stream_id = $1 AND stream_revision = 1", [streamId]);
    expect(verifyChain((await chainOf(userId)).events)).toMatchObject({ ok: false, firstBadRevision: 2n });
  });
});
