import { randomUUID } from 'node:crypto';
import { Pool } from 'pg';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/test-database.js';
import type { EventToAppend, RecordedEvent } from '../event-store.port.js';
import { START } from '../position.js';
import { AppendWakeups } from './append-wakeups.js';
import { VISIBLE } from './event-table-reads.js';
import { PostgresEventStore, type PostgresEventStoreOptions } from './postgres-event-store.js';

/**
 * Live subscriptions are woken by the appends of their own process at once and by those of other
 * processes through LISTEN/NOTIFY. Here polling is all but off (a minute between reads), so a
 * subscriber that sees an event within seconds was woken, not polled: take the wake-up away and these
 * tests time out.
 */
const SLOW_POLL_MS = 60_000;
/**
 * A third of the poll. Not less: other test files' transactions on the same server hold appends back
 * (the visibility rule sees the whole cluster), and a subscriber then reads again on a schedule that
 * doubled up to its poll, so a hold-up of 2.5 s (a deadline spec's row lock) could delay a woken read
 * by as much again: 5 s failed about one run in ten of this folder. The wait now doubles up to a
 * second (nextHeldBackRetry) for as long as events are held back; the margin stays for a loaded machine.
 */
const WOKEN_WITHIN_MS = 20_000;
/** A hold-up past the doubling of the held-back retries (10 ms to 640 ms, 1.27 s in all), and how soon after it the event must be read: the 1 s cap, plus room for a loaded machine. */
const HELD_LONG_MS = 6_000;
const HELD_LONG_READ_WITHIN_MS = 2_500;
/** Twelve one-event pages read back to back: about 80 ms here, over 5 s if each full page waited as a held-back retry. */
const PAGES_READ_WITHIN_MS = 2_500;
/** A hold-up over a subscription's start, long enough that its retries wait the whole second by its end. */
const HELD_BEFORE_START_MS = 3_000;

function event(type: string): EventToAppend {
  return { id: randomUUID(), type, data: {} };
}

describe('PostgreSQL event store: wake-ups of live subscriptions', () => {
  let database: TestDatabase;
  const stores: PostgresEventStore[] = [];
  const controllers: AbortController[] = [];
  /** Stores seen LISTENing: one connection serves all of a store's subscriptions. */
  const listeningStores = new WeakSet<PostgresEventStore>();

  function store(options: Partial<PostgresEventStoreOptions> = {}): PostgresEventStore {
    const made = new PostgresEventStore(database.pool, { connectionString: database.url, pollIntervalMs: SLOW_POLL_MS, ...options });
    stores.push(made);
    return made;
  }

  /** Collects the events of `streams` from a live subscription of `subscriber`, from the head on. */
  async function subscribe(subscriber: PostgresEventStore, streams: readonly string[], settleMs = 200) {
    const controller = new AbortController();
    controllers.push(controller);
    const received: string[] = [];
    const after = (await subscriber.headPosition()) ?? START;
    const listeningBefore = await listeningConnections();
    const done = (async () => {
      for await (const recorded of subscriber.subscribeToAll({ after, signal: controller.signal }) as AsyncIterable<RecordedEvent>) {
        if (streams.includes(recorded.streamId)) received.push(recorded.type);
      }
    })();
    // Let the subscription read once and start waiting (and LISTENing) before the test appends: wait
    // for its LISTEN connection (a fixed pause alone was too short on a loaded machine), then settle.
    if (!listeningStores.has(subscriber)) {
      const deadline = Date.now() + WOKEN_WITHIN_MS;
      while ((await listeningConnections()) <= listeningBefore && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      listeningStores.add(subscriber);
    }
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    return { received, controller, done };
  }

  async function eventually(received: readonly string[], expected: readonly string[]): Promise<void> {
    const deadline = Date.now() + WOKEN_WITHIN_MS;
    while (received.length < expected.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(received).toEqual(expected);
  }

  /**
   * When an event of `type` (or `count` of them) became visible in `$all` to a new read, polled every
   * 10 ms: the visibility rule sees the whole cluster, so another test file's open transaction can
   * hold appends back for seconds after this test's own hold-up ended.
   */
  async function visibleSince(type: string | RegExp, count = 1): Promise<number> {
    const pattern = typeof type === 'string' ? `^${type}$` : type.source;
    const deadline = Date.now() + WOKEN_WITHIN_MS;
    for (;;) {
      const found = await database.pool.query(`SELECT 1 FROM events WHERE event_type ~ $1 AND ${VISIBLE}`, [pattern]);
      if ((found.rowCount ?? 0) >= count) return Date.now();
      if (Date.now() > deadline) throw new Error(`${type.toString()} not visible in time`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterEach(async () => {
    for (const controller of controllers.splice(0)) controller.abort();
    await Promise.all(stores.splice(0).map((each) => each.close()));
  });

  afterAll(async () => {
    await database.drop();
  });

  it("wakes another process's subscriber through NOTIFY, not by its poll", async () => {
    const [writer, reader] = [store(), store()];
    const stream = `wake-${randomUUID()}`;
    const { received } = await subscribe(reader, [stream]);
    await writer.append(stream, [event('FromAnotherProcess')], { expectedRevision: 'no_stream' });
    await eventually(received, ['FromAnotherProcess']);
  });

  it("wakes another process's subscriber for every append of a burst, the last one included", async () => {
    const [writer, reader] = [store(), store()];
    const stream = `wake-${randomUUID()}`;
    const { received } = await subscribe(reader, [stream]);
    const types = Array.from({ length: 30 }, (_, index) => `Burst${index}`);
    // One after another, so that appends also commit while a NOTIFY is on its way: each must still
    // lead to one more NOTIFY, or the subscriber misses the last ones until its next poll.
    for (const [index, type] of types.entries()) await writer.append(stream, [event(type)], { expectedRevision: index === 0 ? 'no_stream' : BigInt(index - 1) });
    await eventually(received, types);
  });

  it('finds appends held back by an older transaction once it ends, without waiting for its poll', async () => {
    const single = store();
    const stream = `wake-${randomUUID()}`;
    const { received } = await subscribe(single, [stream]);
    // A transaction older than the appends keeps them out of $all's visible range (a late commit is
    // never skipped): the wakes arrive while nothing new is visible, and none comes after it ends.
    const older = await database.pool.connect();
    try {
      await older.query('BEGIN');
      await older.query('SELECT pg_current_xact_id()');
      const types = ['HeldBack0', 'HeldBack1', 'HeldBack2'];
      for (const [index, type] of types.entries()) await single.append(stream, [event(type)], { expectedRevision: index === 0 ? 'no_stream' : BigInt(index - 1) });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(received).toEqual([]);
      await older.query('COMMIT');
      await eventually(received, types);
    } finally {
      older.release();
    }
  });

  /**
   * Appends by `append` while an older transaction runs, which holds the append back; runs `whileHeld`,
   * keeps the older transaction `heldMs` longer, checks only `readBefore` was read, ends it (which
   * wakes nobody) and expects `received` to show `type` next within HELD_LONG_READ_WITHIN_MS.
   */
  async function readSoonAfterHoldUp(options: {
    readonly append: () => Promise<unknown>;
    readonly whileHeld?: () => Promise<void>;
    readonly heldMs: number;
    readonly received: readonly string[];
    /** What `received` shows while held (nothing unless given). */
    readonly readBefore?: readonly string[];
    readonly type: string;
  }) {
    const readBefore = options.readBefore ?? [];
    const older = await database.pool.connect();
    try {
      await older.query('BEGIN');
      await older.query('SELECT pg_current_xact_id()');
      await options.append();
      await options.whileHeld?.();
      await new Promise((resolve) => setTimeout(resolve, options.heldMs));
      expect(options.received).toEqual(readBefore);
      await older.query('COMMIT');
      // Other test files' transactions on this server may hold the append back a while longer: the
      // read is due within about a second of the append turning visible, not of this COMMIT.
      const visibleAt = await visibleSince(options.type);
      await eventually(options.received, [...readBefore, options.type]);
      expect(Date.now() - visibleAt).toBeLessThan(HELD_LONG_READ_WITHIN_MS);
    } finally {
      older.release();
    }
  }

  it('reads appends held back for seconds within about a second of the older transaction ending, however long its poll', async () => {
    const single = store();
    const stream = `wake-${randomUUID()}`;
    const { received } = await subscribe(single, [stream]);
    // Retries doubling without a cap would have waited 10 ms to 5.12 s by the end of the hold-up: the
    // next read would come about 4 s after it (the wait before it is 5.12 s). Capped at a second, it
    // comes within one.
    await readSoonAfterHoldUp({ append: () => single.append(stream, [event('HeldLong')], { expectedRevision: 'no_stream' }), heldMs: HELD_LONG_MS, received, type: 'HeldLong' });
  });

  it('reads appends held back when it started within about a second of the older transaction ending, however long its poll', async () => {
    const writer = store();
    // A store already listening (for another subscription): a new subscription of it is woken by nothing but the next commit.
    const reader = store();
    await subscribe(reader, [`other-${randomUUID()}`]);
    const stream = `wake-${randomUUID()}`;
    const after = (await writer.headPosition()) ?? START;
    const controller = new AbortController();
    controllers.push(controller);
    const received: string[] = [];
    await readSoonAfterHoldUp({
      append: () => writer.append(stream, [event('HeldBeforeStart')], { expectedRevision: 'no_stream' }),
      // The append's wake-up comes before this subscription begins; the older transaction's end sends none.
      whileHeld: async () => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        void (async () => {
          for await (const recorded of reader.subscribeToAll({ after, signal: controller.signal })) if (recorded.streamId === stream) received.push(recorded.type);
        })();
      },
      heldMs: HELD_BEFORE_START_MS,
      received,
      type: 'HeldBeforeStart',
    });
  });

  it('reads an append held back behind events its read found within about a second of the older transaction ending, however long its poll', async () => {
    const [writer, reader] = [store(), store()];
    // Already listening (for another subscription), so no new LISTEN wakes the new subscription for a second read.
    await subscribe(reader, [`other-${randomUUID()}`]);
    const stream = `wake-${randomUUID()}`;
    const after = (await writer.headPosition()) ?? START;
    // Committed before the older transaction began: visible. The next append is held back behind it,
    // so one read finds the first and not the second, and the second's wake-up came before that read
    // (here, before the subscription began): a read that found events must still look again.
    await writer.append(stream, [event('Visible')], { expectedRevision: 'no_stream' });
    const controller = new AbortController();
    controllers.push(controller);
    const received: string[] = [];
    await readSoonAfterHoldUp({
      append: () => writer.append(stream, [event('HeldBehind')], { expectedRevision: 0n }),
      // Both wake-ups come before this subscription begins; the older transaction's end sends none.
      whileHeld: async () => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        void (async () => {
          for await (const recorded of reader.subscribeToAll({ after, signal: controller.signal })) if (recorded.streamId === stream) received.push(recorded.type);
        })();
        const deadline = Date.now() + WOKEN_WITHIN_MS;
        while (received.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      },
      heldMs: HELD_BEFORE_START_MS,
      received,
      readBefore: ['Visible'],
      type: 'HeldBehind',
    });
  });

  it('wakes a subscriber of the same process at once, for each of many appends', async () => {
    const single = store();
    const stream = `wake-${randomUUID()}`;
    const { received } = await subscribe(single, [stream]);
    const types = Array.from({ length: 20 }, (_, index) => `Own${index}`);
    for (const [index, type] of types.entries()) await single.append(stream, [event(type)], { expectedRevision: index === 0 ? 'no_stream' : BigInt(index - 1) });
    await eventually(received, types);
  });

  it('wakes the subscribers when a retried append finds its events already appended (a commit whose answer was lost)', async () => {
    const single = store();
    const stream = `wake-${randomUUID()}`;
    const lost = event('CommittedButUnanswered');
    const { received } = await subscribe(single, [stream]);
    // The append commits, but its process never hears so (nor does any subscriber): written by SQL alone.
    await database.pool.query(`SELECT * FROM append_to_stream($1, 'no_stream', NULL, $2::uuid[], $3::text[], $4::text[], $5::text[])`, [
      stream,
      [lost.id],
      [lost.type],
      ['{}'],
      ['{}'],
    ]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(received).toEqual([]);
    await expect(single.append(stream, [lost], { expectedRevision: 'no_stream' })).resolves.toMatchObject({ nextRevision: 0n });
    await eventually(received, ['CommittedButUnanswered']);
  });

  it('ends a waiting subscription as soon as it is aborted', async () => {
    const single = store();
    const { controller, done } = await subscribe(single, []);
    const abortedAt = Date.now();
    controller.abort();
    await done;
    expect(Date.now() - abortedAt).toBeLessThan(WOKEN_WITHIN_MS);
  });

  it('listens on one connection however many times its subscribers wait', async () => {
    const [writer, reader] = [store(), store()];
    const stream = `wake-${randomUUID()}`;
    const first = await subscribe(reader, [stream]);
    const second = await subscribe(reader, [stream]);
    for (const index of [0, 1, 2]) await writer.append(stream, [event(`E${index}`)], { expectedRevision: index === 0 ? 'no_stream' : BigInt(index - 1) });
    await eventually(first.received, ['E0', 'E1', 'E2']);
    await eventually(second.received, ['E0', 'E1', 'E2']);
    const listening = await database.pool.query<{ count: string }>(
      "SELECT count(*) AS count FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN event_store_appended'",
    );
    // Only the reader has subscribers, and it listens on one connection for all of them.
    expect(Number(listening.rows[0]?.count)).toBe(1);
  });

  async function listeningConnections(): Promise<number> {
    const listening = await database.pool.query<{ count: string }>(
      "SELECT count(*) AS count FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN event_store_appended'",
    );
    return Number(listening.rows[0]?.count);
  }

  it('finds an append that committed while it was starting to listen', async () => {
    const [writer, reader] = [store(), store()];
    const stream = `wake-${randomUUID()}`;
    // No pause: the append races the reader's first read and its LISTEN. Whichever wins, the reader
    // must see the event now, not at its next poll (it reads again once it listens).
    const { received } = await subscribe(reader, [stream], 0);
    await writer.append(stream, [event('WhileConnecting')], { expectedRevision: 'no_stream' });
    await eventually(received, ['WhileConnecting']);
  });

  it('reads page after page without waiting while the pages are full', async () => {
    const writer = store();
    const stream = `wake-${randomUUID()}`;
    const after = (await writer.headPosition()) ?? START;
    // One event a page: a wait after each full page would be a held-back retry (the tail is past
    // the page), 10 ms doubling to a second, over 5 s for these twelve; twelve reads take far less.
    const types = Array.from({ length: 12 }, (_, index) => `Paged${index}`);
    await writer.append(stream, types.map(event), { expectedRevision: 'no_stream' });
    const reader = store({ subscriptionBatchSize: 1 });
    const controller = new AbortController();
    controllers.push(controller);
    const received: string[] = [];
    const startedAt = await visibleSince(/^Paged\d+$/, types.length);
    for await (const recorded of reader.subscribeToAll({ after, signal: controller.signal })) {
      if (recorded.streamId === stream) received.push(recorded.type);
      if (received.length === types.length) break;
    }
    expect(received).toEqual(types);
    expect(Date.now() - startedAt).toBeLessThan(PAGES_READ_WITHIN_MS);
  });

  it('delivers nothing more once aborted, even from a page already read', async () => {
    const writer = store();
    const stream = `wake-${randomUUID()}`;
    const after = (await writer.headPosition()) ?? START;
    await writer.append(stream, ['A', 'B', 'C', 'D'].map(event), { expectedRevision: 'no_stream' });
    const controller = new AbortController();
    const received: string[] = [];
    for await (const recorded of writer.subscribeToAll({ after, signal: controller.signal })) {
      if (recorded.streamId !== stream) continue;
      received.push(recorded.type);
      if (received.length === 2) controller.abort();
    }
    expect(received).toEqual(['A', 'B']);
  });

  /** Until `count` connections of this database LISTEN, or the deadline. */
  async function eventuallyListening(count: number): Promise<void> {
    const deadline = Date.now() + WOKEN_WITHIN_MS;
    while ((await listeningConnections()) !== count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await listeningConnections()).toBe(count);
  }

  it('reports a lost LISTEN connection, falls back to its poll, and listens again at its next wait', async () => {
    const errors: Error[] = [];
    const writer = store();
    const reader = store({ onError: (error) => errors.push(error), pollIntervalMs: 300 });
    const stream = `wake-${randomUUID()}`;
    const { received } = await subscribe(reader, [stream]);
    await eventuallyListening(1);
    await database.pool.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN event_store_appended'");
    const deadline = Date.now() + WOKEN_WITHIN_MS;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(errors).toEqual([expect.any(Error)]);
    await eventuallyListening(1);
    await writer.append(stream, [event('AfterReconnect')], { expectedRevision: 'no_stream' });
    await eventually(received, ['AfterReconnect']);
  });

  it('closes its LISTEN connection when the store closes', async () => {
    const reader = store();
    const { controller, done } = await subscribe(reader, []);
    await eventuallyListening(1);
    controller.abort();
    await done;
    await reader.close();
    expect(await listeningConnections()).toBe(0);
  });

  it('reports a NOTIFY that fails instead of throwing it at the append', async () => {
    const pool = new Pool({ connectionString: database.url, max: 2 });
    const errors: Error[] = [];
    const writer = new PostgresEventStore(pool, { connectionString: database.url, onError: (error) => errors.push(error) });
    try {
      await writer.append(`wake-${randomUUID()}`, [event('Notified')], { expectedRevision: 'no_stream' });
      // The NOTIFY goes a few milliseconds after the append, through a pool that is gone by then.
      await pool.end();
      const deadline = Date.now() + WOKEN_WITHIN_MS;
      while (errors.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(errors).toEqual([expect.any(Error)]);
    } finally {
      await writer.close();
    }
  });
});


describe('AppendWakeups: one NOTIFY for appends that commit together', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterAll(async () => {
    await database.drop();
  });

  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  /** Until `count()` reaches `atLeast` (a loaded machine fires timers late), or 5 s. */
  async function eventuallyCount(count: () => number, atLeast: number): Promise<number> {
    const deadline = Date.now() + 5_000;
    while (count() < atLeast && Date.now() < deadline) await pause(5);
    return count();
  }

  /** Wake-ups whose NOTIFY is counted, and held open until `release` is called. */
  function counted() {
    let notifies = 0;
    let release: () => void = () => undefined;
    const wakeups = new AppendWakeups(database.url, () => undefined, async () => {
      notifies += 1;
      await new Promise<void>((resolve) => (release = resolve));
    });
    return { wakeups, notifies: () => notifies, release: () => release() };
  }

  it('sends one NOTIFY for appends published together, one more for those published while it is sent, then none', async () => {
    const { wakeups, notifies, release } = counted();
    const generation = wakeups.generation;
    try {
      for (let append = 0; append < 5; append += 1) wakeups.published();
      expect(await eventuallyCount(notifies, 1)).toBe(1);
      await pause(50);
      expect(notifies()).toBe(1);
      // Published while that NOTIFY is on its way: gathered into exactly one more.
      for (let append = 0; append < 3; append += 1) wakeups.published();
      release();
      expect(await eventuallyCount(notifies, 2)).toBe(2);
      release();
      await pause(50);
      expect(notifies()).toBe(2);
      // Done publishing: the next append notifies again.
      wakeups.published();
      expect(await eventuallyCount(notifies, 3)).toBe(3);
      release();
      // Each append woke this process's subscribers at once, however few NOTIFYs went out.
      expect(wakeups.generation - generation).toBe(9);
    } finally {
      await wakeups.close();
    }
  });

  it('sends no NOTIFY once closed', async () => {
    const { wakeups, notifies } = counted();
    wakeups.published();
    await wakeups.close();
    await pause(50);
    expect(notifies()).toBe(0);
  });

  it('returns from a wait at once when an append came since the generation read, on abort, or once closed', async () => {
    const { wakeups } = counted();
    const within = async (wait: Promise<void>) => {
      let timer: NodeJS.Timeout | undefined;
      const waiting = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('waiting'), 2_000)));
      try {
        expect(await Promise.race([wait.then(() => 'returned'), waiting])).toBe('returned');
      } finally {
        clearTimeout(timer);
      }
    };
    try {
      const before = wakeups.generation;
      await within(wakeups.waitAfter(before, 10));
      // Listening now: anything appended meanwhile is for the next read to find.
      expect(wakeups.generation).toBeGreaterThan(before);
      await within(wakeups.waitAfter(before, 60_000));
      const aborted = new AbortController();
      aborted.abort();
      await within(wakeups.waitAfter(wakeups.generation, 60_000, aborted.signal));
      const waiting = wakeups.waitAfter(wakeups.generation, 60_000);
      await wakeups.close();
      await within(waiting);
      await within(wakeups.waitAfter(wakeups.generation, 60_000));
    } finally {
      await wakeups.close();
    }
  });
});
