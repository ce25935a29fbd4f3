import { randomUUID } from 'node:crypto';
import { validate as isUuid, version as uuidVersion } from 'uuid';
import { PostgresEventStore, type EventStore, type ReadStreamOptions, type RecordedEvent } from '@app/event-store';
import { decideTokenAccount, LedgerError, tokenAccountDecider, tokenAccountStreamId, type TokenAccountCommand } from '@app/ledger';
import { createTestDatabase, type TestDatabase } from '../../../test/support/test-database.js';
import { CommandHandling } from './command-handling.js';
import { ATTEMPT_PAGE_SIZE } from './idempotent-append.js';
import { idempotentEventId, idempotentRequestId, idempotentValueId, type IdempotentRequest, type IdempotentRequestParts } from './idempotent-request.js';

let database: TestDatabase;
let store: PostgresEventStore;

beforeAll(async () => {
  database = await createTestDatabase();
  store = new PostgresEventStore(database.pool, { connectionString: database.url });
});

afterAll(async () => {
  await store.close();
  await database.drop();
});

const PARTS: IdempotentRequestParts = { scope: 'anonymous', key: 'k-1', method: 'POST', route: '/v1/accounts/u/usage', requestHash: 'ab'.repeat(32) };

describe('ids derived from an idempotent request', () => {
  it('are version-5 UUIDs, the same for the same request in every process', () => {
    const id = idempotentRequestId(PARTS);
    expect(isUuid(id) && uuidVersion(id)).toBe(5);
    expect(idempotentRequestId({ ...PARTS })).toBe(id);
    expect(uuidVersion(idempotentEventId(id, 0))).toBe(5);
    expect(idempotentEventId(id, 0)).toBe(idempotentEventId(id, 0));
    expect(idempotentValueId(id, 'paymentId')).toBe(idempotentValueId(id, 'paymentId'));
  });

  it('differ when any part of the request differs, and per event and per value', () => {
    const id = idempotentRequestId(PARTS);
    const variants = (['scope', 'key', 'method', 'route', 'requestHash'] as const).map((part) => idempotentRequestId({ ...PARTS, [part]: `${PARTS[part]}x` }));
    expect(new Set([id, ...variants]).size).toBe(6);
    // Parts are length-prefixed: moving a separator between two parts is another request.
    expect(idempotentRequestId({ ...PARTS, scope: 'a\n1:b', key: 'c' })).not.toBe(idempotentRequestId({ ...PARTS, scope: 'a', key: 'b\n1:c' }));
    expect(new Set([idempotentEventId(id, 0), idempotentEventId(id, 1), idempotentValueId(id, 'paymentId'), id]).size).toBe(4);
  });
});

/** A fresh request: first claimed now, so nothing of it can be older than a minute ago. */
function request(): IdempotentRequest {
  return { key: randomUUID(), requestId: idempotentRequestId({ ...PARTS, key: randomUUID() }), notBefore: new Date(Date.now() - 60_000) };
}

/** The same request, but with a search window that misses everything (as if its first claim were forgotten). */
function withoutWindow(idempotent: IdempotentRequest): IdempotentRequest {
  return { ...idempotent, notBefore: new Date(Date.now() + 3_600_000) };
}

/** The store as an adapter without PostgreSQL's capabilities (EventStoreDB) offers it: the port only. */
function portOnly(eventStore: EventStore): EventStore {
  return Object.create(eventStore, { postgres: { value: undefined } }) as EventStore;
}

function processOn(eventStore: EventStore = store): CommandHandling {
  return new CommandHandling(eventStore, { cacheEntriesMax: 100, snapshotIntervalEvents: 500 });
}

/** UseTokens as the HTTP handler issues it: a fresh transaction id and time on every attempt. */
function use(commands: CommandHandling, userId: string, amount: number, idempotent: IdempotentRequest) {
  return useAt(commands, userId, amount, idempotent, new Date());
}

/** UseTokens decided at `now`. */
function useAt(commands: CommandHandling, userId: string, amount: number, idempotent: IdempotentRequest, now: Date) {
  const command: TokenAccountCommand = { type: 'UseTokens', data: { userId, amount, description: null, transactionId: randomUUID(), now } };
  return commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(command, state), metadata: { idempotencyKey: idempotent.key }, idempotency: idempotent });
}

/** AddTokens of 5 for `paymentId`, as the HTTP handler issues it: a payment already credited decides nothing. */
function credit(commands: CommandHandling, userId: string, paymentId: string, idempotent: IdempotentRequest) {
  const command: TokenAccountCommand = { type: 'AddTokens', data: { userId, paymentId, amount: 5, description: null, transactionId: randomUUID(), now: new Date() } };
  return commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(command, state), metadata: { idempotencyKey: idempotent.key }, idempotency: idempotent });
}

async function funded(amount: number): Promise<string> {
  const userId = randomUUID();
  const data = { userId, transactionId: randomUUID(), paymentId: randomUUID(), amount, description: null, balanceAfter: amount, occurredAt: new Date().toISOString() };
  await store.append(tokenAccountStreamId(userId), [{ id: randomUUID(), type: 'TokensPurchased', data }], { expectedRevision: 'no_stream' });
  return userId;
}

async function usages(userId: string): Promise<RecordedEvent[]> {
  return (await store.readStream(tokenAccountStreamId(userId))).filter((event) => event.type === 'TokensUsed');
}

describe('command handling of an idempotent request', () => {
  it('appends its events under the derived ids, with the key in their metadata', async () => {
    const userId = await funded(50);
    const idempotent = request();
    const first = await use(processOn(), userId, 20, idempotent);
    expect(first.replayed).toBeUndefined();
    const [used] = await usages(userId);
    expect(used).toMatchObject({ id: idempotentEventId(idempotent.requestId, 0), metadata: { idempotencyKey: idempotent.key } });
  });

  it('answers a retry in a fresh process with the recorded events, spending nothing', async () => {
    const userId = await funded(50);
    const idempotent = request();
    const first = await use(processOn(), userId, 20, idempotent);
    await use(processOn(), userId, 5, request()); // the account moves on
    const retry = await use(processOn(), userId, 20, idempotent);
    expect(retry.replayed).toBe(true);
    expect(retry.events).toEqual(first.events);
    expect(retry.position).toEqual(first.position);
    expect(retry.state.balance).toBe(25);
    expect(await usages(userId)).toHaveLength(2);
  });

  it('answers a retry in the process that did the work (its cache includes it)', async () => {
    const userId = await funded(50);
    const idempotent = request();
    const commands = processOn();
    const first = await use(commands, userId, 50, idempotent);
    const retry = await use(commands, userId, 50, idempotent);
    expect(retry).toMatchObject({ replayed: true, events: first.events, position: first.position });
    expect(retry.state.balance).toBe(0);
  });

  it('answers a retry in a fresh process on a store without PostgreSQL (EventStoreDB), found by searching backwards within the window', async () => {
    const userId = await funded(200);
    const idempotent = request();
    const first = await use(processOn(), userId, 20, idempotent);
    const busy = processOn();
    for (let index = 0; index < 120; index += 1) await use(busy, userId, 1, request()); // more than one page of the search
    const retry = await use(processOn(portOnly(store)), userId, 20, idempotent);
    expect(retry).toMatchObject({ replayed: true, events: first.events, position: first.position });
    expect(retry.state.balance).toBe(60);
  });

  it('finds the events through the store refusing the ids when the search window misses them', async () => {
    const userId = await funded(50);
    const idempotent = request();
    const first = await use(processOn(), userId, 20, idempotent);
    await use(processOn(), userId, 1, request());
    // Decided on the current state, the append goes to the end: PostgreSQL refuses ids it already has.
    const retry = await use(processOn(portOnly(store)), userId, 20, withoutWindow(idempotent));
    expect(retry).toMatchObject({ replayed: true, events: first.events, position: first.position });
    expect(retry.state.balance).toBe(29);
    expect(await usages(userId)).toHaveLength(2);
  });

  it('returns the recorded events, not its own, when another attempt appended the same ids at the same place first', async () => {
    const userId = await funded(50);
    const idempotent = request();
    // Without PostgreSQL's lookup by event id, so the window's search is what misses the first attempt.
    const late = processOn(portOnly(store));
    await late.load(tokenAccountStreamId(userId), tokenAccountDecider); // caches the state before the first attempt
    const first = await use(processOn(), userId, 20, idempotent);
    await use(processOn(), userId, 5, request()); // so that the search, stopping at it, misses the first
    // Its decision (another transaction id and time) is made on the cached state and lands at the
    // same place with the same ids: the store reports success without writing it.
    const retry = await use(late, userId, 20, withoutWindow(idempotent));
    expect(retry).toMatchObject({ replayed: true, events: first.events, position: first.position });
    expect(retry.state.balance).toBe(25);
    expect(await usages(userId)).toHaveLength(2);
    // The late process's cache now holds the recorded events: its next command decides on 25.
    const next = await use(late, userId, 25, request());
    expect(next.events).toMatchObject([{ data: { balanceAfter: 0 } }]);
  });

  it('returns every event the other attempt recorded when it decided more of them than this one (an expiry swept at its later time): the whole attempt, not the first few', async () => {
    const userId = await funded(50);
    const base = Date.now();
    const at = (seconds: number) => new Date(base + seconds * 1_000);
    const grant: TokenAccountCommand = { type: 'GrantTokens', data: { userId, amount: 10, reason: 'trial', priority: 10, expiresAt: at(60), transactionId: randomUUID(), now: at(1) } };
    await processOn().handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccount(grant, state), metadata: {} });
    const idempotent = request();
    const late = processOn(portOnly(store));
    await late.load(tokenAccountStreamId(userId), tokenAccountDecider); // caches the state before the first attempt
    // The first attempt decides after the grant's expiry: the grant's LotExpired, then its usage.
    const first = await useAt(processOn(), userId, 20, idempotent, at(90));
    expect(first.events.map((event) => event.type)).toEqual(['LotExpired', 'TokensUsed']);
    await useAt(processOn(), userId, 5, request(), at(91)); // so that the search, stopping at it, misses the first
    // The late attempt decides before the expiry, on the cached state: one event, whose id the first attempt's LotExpired holds.
    const retry = await useAt(late, userId, 20, withoutWindow(idempotent), at(30));
    expect(retry).toMatchObject({ replayed: true, events: first.events, position: first.position });
    expect(await usages(userId)).toHaveLength(2);
  });

  it.each([
    ['PostgreSQL, by the event id', (): EventStore => store],
    ['a store without PostgreSQL (EventStoreDB), searching backwards', (): EventStore => portOnly(store)],
  ])('does not refuse with INSUFFICIENT_BALANCE because an attempt of the same request spent the balance meanwhile: %s', async (_, storeOf) => {
    const userId = await funded(10);
    const idempotent = request();
    let interleaved = false;
    const interleave = async (): Promise<void> => {
      if (interleaved) return;
      interleaved = true;
      await use(processOn(), userId, 10, idempotent);
    };
    // The retry's store: right after its search found nothing, the first attempt appends.
    const base = storeOf();
    const racing = Object.create(base) as EventStore;
    racing.readStream = async (streamId: string, options?: ReadStreamOptions) => {
      const page = await base.readStream(streamId, options);
      if (options?.direction === 'backwards') await interleave();
      return page;
    };
    if (base.postgres !== undefined) {
      const { postgres } = base;
      Object.defineProperty(racing, 'postgres', {
        value: {
          ...postgres,
          readEvent: async (streamId: string, eventId: string) => {
            const found = await postgres.readEvent(streamId, eventId);
            await interleave();
            return found;
          },
        },
      });
    }
    const retry = await use(processOn(racing), userId, 10, idempotent);
    expect(interleaved).toBe(true);
    expect(retry).toMatchObject({ replayed: true, events: [{ type: 'TokensUsed', data: { amount: 10, balanceAfter: 0 } }] });
    expect(await usages(userId)).toHaveLength(1);
  });

  it('finds an earlier attempt by its first event id on PostgreSQL, reading none of the events appended since', async () => {
    const userId = await funded(1_000);
    const idempotent = request();
    const first = await use(processOn(), userId, 20, idempotent);
    const busy = processOn();
    for (let index = 0; index < 250; index += 1) await use(busy, userId, 1, request()); // all within the search window
    let read = 0;
    const counting = Object.create(store) as EventStore;
    counting.readStream = async (streamId: string, options?: ReadStreamOptions) => {
      const page = await store.readStream(streamId, options);
      read += page.length;
      return page;
    };
    const retrying = processOn(counting);
    await retrying.load(tokenAccountStreamId(userId), tokenAccountDecider); // the account in its cache, as in a running process
    read = 0;
    const retry = await use(retrying, userId, 20, idempotent);
    expect(retry).toMatchObject({ replayed: true, events: first.events, position: first.position });
    expect(read).toBeLessThanOrEqual(ATTEMPT_PAGE_SIZE); // one page from the attempt's first event on, not the 250 after it
  });

  it('decides a key\'s first claim without looking for an earlier attempt, and reads nothing back after its append (PostgreSQL says it wrote)', async () => {
    const userId = await funded(50);
    let reads = 0;
    const postgres = store.postgres;
    if (postgres === undefined) throw new Error('the PostgreSQL store offers its capabilities');
    const counting = Object.create(store) as EventStore;
    counting.readStream = async (streamId: string, options?: ReadStreamOptions) => {
      reads += 1;
      return store.readStream(streamId, options);
    };
    Object.defineProperty(counting, 'postgres', {
      value: {
        ...postgres,
        readEvent: async (streamId: string, eventId: string) => {
          reads += 1;
          return postgres.readEvent(streamId, eventId);
        },
      },
    });
    const commands = processOn(counting);
    await commands.load(tokenAccountStreamId(userId), tokenAccountDecider);
    await use(commands, userId, 1, { ...request(), firstClaim: true }); // its first append seals the stream's unsealed head: one read
    reads = 0;
    const first = await use(commands, userId, 20, { ...request(), firstClaim: true });
    expect(first.events).toMatchObject([{ data: { amount: 20, balanceAfter: 29 } }]);
    expect(reads).toBe(0);
    // A takeover (not the key's first claim) looks first: one lookup by event id, nothing more.
    await use(commands, userId, 1, request());
    expect(reads).toBe(1);
  });

  it.each([
    // The key row was purged long after the first attempt: the retry decides, and the store refuses its ids.
    ['spends nothing twice when a first claim repeats a request whose key row was purged: the store refuses its ids and the attempt is found', 50],
    // Another attempt (its lease taken over while this one ran) spent the balance first: the refusal looks.
    ['answers a first claim with the attempt that spent the balance alongside it, not INSUFFICIENT_BALANCE', 20],
  ])('%s', async (_, balance) => {
    const userId = await funded(balance);
    const idempotent = request();
    const first = await use(processOn(), userId, 20, idempotent);
    const again = await use(processOn(), userId, 20, { ...idempotent, firstClaim: true });
    expect(again).toMatchObject({ replayed: true, events: first.events });
    expect(await usages(userId)).toHaveLength(1);
  });

  it('answers a first claim that decides nothing with the attempt of the same request that credited alongside it', async () => {
    const userId = await funded(10);
    const idempotent = request();
    const paymentId = randomUUID();
    const alongside = await credit(processOn(), userId, paymentId, idempotent);
    // The payment is credited already, so this attempt decides nothing: its answer is the attempt's.
    const first = await credit(processOn(), userId, paymentId, { ...idempotent, firstClaim: true });
    expect(first).toMatchObject({ replayed: true, events: alongside.events });
  });

  it('answers a retry that decides nothing with the attempt that credited after its look, not with nothing', async () => {
    const userId = await funded(10);
    const idempotent = request();
    const paymentId = randomUUID();
    const postgres = store.postgres;
    if (postgres === undefined) throw new Error('the PostgreSQL store offers its capabilities');
    let alongside: Awaited<ReturnType<typeof credit>> | undefined;
    // The retry's look finds nothing; right after it, the first attempt credits the payment.
    const racing = Object.create(store, {
      postgres: {
        value: {
          ...postgres,
          readEvent: async (streamId: string, eventId: string) => {
            const found = await postgres.readEvent(streamId, eventId);
            alongside ??= await credit(processOn(), userId, paymentId, idempotent);
            return found;
          },
        },
      },
    }) as EventStore;
    const retry = await credit(processOn(racing), userId, paymentId, idempotent);
    expect(retry).toMatchObject({ replayed: true, events: alongside?.events });
    expect(retry.state.balance).toBe(15);
  });

  it('answers with the attempt alongside, appending nothing more, when its append at the expected revision is refused after that attempt and another command moved the stream (EventStoreDB writes ids again elsewhere)', async () => {
    const userId = await funded(100);
    const idempotent = request();
    // EventStoreDB as the port offers it: no lookup by event id, and events whose ids are already in
    // the stream, appended at the right revision, are written again (it checks ids only at the
    // expected revision); simulated here with fresh ids, which PostgreSQL then accepts.
    const base = portOnly(store);
    const esdbLike = Object.create(base) as EventStore;
    let interleaved = false;
    esdbLike.append = async (streamId, events, options) => {
      if (!interleaved) {
        interleaved = true;
        // Between this attempt's decision and its append: another request's spend, then the attempt alongside.
        await use(processOn(), userId, 1, request());
        await use(processOn(), userId, 20, idempotent);
      }
      const present = new Set((await base.readStream(streamId)).map((event) => event.id));
      return base.append(streamId, events.map((event) => (present.has(event.id) ? { ...event, id: randomUUID() } : event)), options);
    };
    const retry = await use(processOn(esdbLike), userId, 20, idempotent);
    expect(interleaved).toBe(true);
    expect(retry).toMatchObject({ replayed: true, events: [{ type: 'TokensUsed', data: { amount: 20, balanceAfter: 79 } }] });
    expect((await usages(userId)).map((event) => event.data)).toMatchObject([{ amount: 1 }, { amount: 20 }]);
  });

  it('still refuses a request that was never applied', async () => {
    const userId = await funded(10);
    await expect(use(processOn(), userId, 11, request())).rejects.toBeInstanceOf(LedgerError);
    expect(await usages(userId)).toHaveLength(0);
  });

  it('spends once when 20 attempts of one request race in 4 processes, all answered with the same events', async () => {
    const userId = await funded(100);
    const idempotent = request();
    const processes = Array.from({ length: 4 }, () => processOn());
    const results = await Promise.all(Array.from({ length: 20 }, (_, index) => use(processes[index % 4] ?? processOn(), userId, 7, idempotent)));
    const recorded = await usages(userId);
    expect(recorded).toHaveLength(1);
    for (const result of results) expect(result.events).toMatchObject([{ type: 'TokensUsed', data: recorded[0]?.data }]);
    expect(results.filter((result) => result.replayed !== true)).toHaveLength(1);
  });
});
