import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { CommandHandling, PostgresSnapshotStore } from '@app/event-sourcing';
import { createPool } from '@app/database';
import { PostgresEventStore, START, type EventToAppend, type GroupCommitStats } from '@app/event-store';
import { decideTokenAccountWithState, tokenAccountDecider, tokenAccountStreamId, type TokenAccountCommand } from '@app/ledger';
import { InlineProjections, PROJECTIONS } from '@app/projections';
import type { Pool } from 'pg';
import { latency, peakRssMiB, throughput } from './measure.js';

/** One measured number; `reference` is the raw PostgreSQL rate it is compared with, when there is one. */
export type Measurement = {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly reference?: number;
  /** The goal, as a sentence; `met` says whether this run reached it. */
  readonly target?: string;
  readonly met?: boolean;
};

export type ScenarioResult = {
  readonly scenario: string;
  readonly measurements: readonly Measurement[];
  readonly peakRssMiB: number;
  /** What else was going on: the 1-minute load average when the scenario started, and checkpoints during it. */
  readonly conditions: { readonly loadAverage: number; readonly checkpoints: number };
};

type Context = { readonly url: string; readonly seconds: number };

const STREAMS = 10_000;
const at = new Date('2026-11-24T12:00:00.000Z');

export const SCENARIOS: Record<string, (context: Context) => Promise<readonly Measurement[]>> = {
  'appends-c1': (context) => appends(context, 1),
  'appends-c32': (context) => appends(context, 32),
  'commands-c1': (context) => commands(context, 1),
  'commands-c32': (context) => commands(context, 32),
  latency: streamLengthLatency,
  catchup: catchUp,
};

export async function runScenario(name: string, context: Context): Promise<ScenarioResult> {
  const scenario = SCENARIOS[name];
  if (scenario === undefined) throw new Error(`unknown scenario ${name}`);
  const loadAverage = loadavg()[0] ?? Number.NaN;
  const checkpointsBefore = await checkpoints(context.url);
  const measurements = await scenario(context);
  return { scenario: name, measurements, peakRssMiB: peakRssMiB(), conditions: { loadAverage, checkpoints: (await checkpoints(context.url)) - checkpointsBefore } };
}

/** Checkpoints the server has made (a checkpoint makes the next write of each page carry a full page image). */
async function checkpoints(url: string): Promise<number> {
  const pool = createPool({ url, poolSizeMax: 1 });
  try {
    const result = await pool.query<{ count: string }>('SELECT num_timed + num_requested AS count FROM pg_stat_checkpointer');
    return Number(result.rows[0]?.count ?? Number.NaN);
  } finally {
    await pool.end();
  }
}

/**
 * A store on a pool of `poolSize`. `readModels`: with the service's inline projections, so every
 * append also commits the read-model rows it produces, as a command through the service does.
 */
async function withStore<T>(url: string, poolSize: number, work: (store: PostgresEventStore, pool: Pool) => Promise<T>, options: { readonly readModels?: boolean } = {}): Promise<T> {
  const pool = createPool({ url, poolSizeMax: poolSize });
  const store = new PostgresEventStore(pool, { connectionString: url, ...(options.readModels === true ? { appendHook: new InlineProjections(PROJECTIONS) } : {}) });
  try {
    return await work(store, pool);
  } finally {
    await store.close();
    await pool.end();
  }
}

/** The server's own rate for the simplest durable write: one single-row INSERT, committed, per operation. */
async function rawInsertRate(pool: Pool, concurrency: number, seconds: number): Promise<number> {
  await pool.query('CREATE TABLE IF NOT EXISTS bench_raw (id bigserial PRIMARY KEY, stream_id text NOT NULL, data jsonb NOT NULL)');
  const result = await throughput(concurrency, seconds, async (worker, iteration) => {
    await pool.query('INSERT INTO bench_raw (stream_id, data) VALUES ($1, $2)', [`raw-${(worker + iteration * concurrency) % STREAMS}`, '{"amount":1}']);
  });
  return result.perSecond;
}

function event(type: string, data: Record<string, unknown>): EventToAppend {
  return { id: randomUUID(), type, data: data as EventToAppend['data'] };
}

async function appends({ url, seconds }: Context, concurrency: number): Promise<readonly Measurement[]> {
  return withStore(url, concurrency + 4, async (store, pool) => {
    // Every stream gets its first event before the clock starts: the timed appends extend existing
    // streams, as a service's appends mostly do.
    const streams = Array.from({ length: STREAMS }, (_, index) => `bench-${index}`);
    await forEachConcurrently(streams, 32, (stream) => store.append(stream, [event('Appended', { amount: 1 })], { expectedRevision: 'no_stream' }));
    const raw = await rawInsertRate(pool, concurrency, seconds);
    const before = store.groupCommitStats();
    const result = await throughput(concurrency, seconds, async (worker, iteration) => {
      const stream = `bench-${(worker + iteration * concurrency) % STREAMS}`;
      await store.append(stream, [event('Appended', { amount: 1 })], { expectedRevision: 'any' });
    });
    const ratio = result.perSecond / raw;
    return [
      { name: `raw INSERT ... COMMIT, concurrency ${concurrency}`, value: raw, unit: 'rows/s' },
      {
        name: `single-event appends over ${STREAMS.toLocaleString('en')} streams, concurrency ${concurrency}`,
        value: result.perSecond,
        unit: 'appends/s',
        reference: raw,
        ...(concurrency === 32 ? { target: '>= 0.8x raw', met: ratio >= 0.8 } : {}),
      },
      appendsPerTransaction(before, store.groupCommitStats()),
    ];
  });
}

/** Group commit at work: the appends a transaction carried on average between two readings. */
function appendsPerTransaction(before: GroupCommitStats, after: GroupCommitStats): Measurement {
  const batches = after.batches - before.batches;
  return { name: 'appends per transaction (group commit), timed part', value: batches === 0 ? 0 : (after.appends - before.appends) / batches, unit: 'appends' };
}

async function forEachConcurrently<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const item = items[next] as T;
        next += 1;
        await work(item);
      }
    }),
  );
}

function useTokens(commands: CommandHandling, userId: string, amount = 1) {
  const command: TokenAccountCommand = { type: 'UseTokens', data: { userId, amount, description: null, transactionId: randomUUID(), now: at } };
  return commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccountWithState(command, state), metadata: {} });
}

function purchase(userId: string, amount: number, balanceAfter: number): EventToAppend {
  return event('TokensPurchased', { userId, transactionId: randomUUID(), paymentId: randomUUID(), amount, description: null, balanceAfter, occurredAt: at.toISOString() });
}

async function commands({ url, seconds }: Context, concurrency: number): Promise<readonly Measurement[]> {
  // Alone, a command waits for its own commit; at 32, many share one: the bar is the raw insert itself.
  const targetRatio = concurrency >= 32 ? 1.0 : 0.6;
  return withStore(url, concurrency + 4, async (store, pool) => {
    const users = Array.from({ length: STREAMS }, () => randomUUID());
    await forEachConcurrently(users, 32, (userId) => store.append(tokenAccountStreamId(userId), [purchase(userId, 1_000_000, 1_000_000)], { expectedRevision: 'no_stream' }));
    const raw = await rawInsertRate(pool, concurrency, seconds);
    const handling = new CommandHandling(store, { cacheEntriesMax: STREAMS, snapshots: new PostgresSnapshotStore(pool), snapshotIntervalEvents: 500 });
    // One command per account first, at this concurrency: each loads its account from the store
    // (cache miss), and after it every account is in the cache, as in a process that has run a while.
    const warming = performance.now();
    await forEachConcurrently(users, concurrency, (userId) => useTokens(handling, userId));
    const coldPerSecond = STREAMS / ((performance.now() - warming) / 1_000);
    const before = store.groupCommitStats();
    const result = await throughput(concurrency, seconds, async (worker, iteration) => {
      await useTokens(handling, users[(worker + iteration * concurrency) % STREAMS] as string);
    });
    return [
      { name: `raw INSERT ... COMMIT, concurrency ${concurrency}`, value: raw, unit: 'rows/s' },
      {
        name: `UseTokens commands with read models committed, first on each of ${STREAMS.toLocaleString('en')} accounts (load from the store, decide, append), concurrency ${concurrency}`,
        value: coldPerSecond,
        unit: 'commands/s',
        reference: raw,
      },
      {
        name: `UseTokens commands with read models committed, accounts cached (decide, append), concurrency ${concurrency}`,
        value: result.perSecond,
        unit: 'commands/s',
        reference: raw,
        target: `>= ${targetRatio}x raw`,
        met: result.perSecond / raw >= targetRatio,
      },
      appendsPerTransaction(before, store.groupCommitStats()),
    ];
  }, { readModels: true });
}

/** Appends `usages` 1-token usages after one large purchase, 1,000 events per append. */
async function longStream(store: PostgresEventStore, userId: string, usages: number): Promise<void> {
  const credit = 1_000_000_000;
  let balance = credit;
  let batch: EventToAppend[] = [purchase(userId, credit, credit)];
  for (let index = 0; index < usages; index += 1) {
    balance -= 1;
    batch.push(event('TokensUsed', { userId, transactionId: randomUUID(), amount: 1, description: null, balanceAfter: balance, occurredAt: at.toISOString() }));
    if (batch.length === 1_000) {
      await store.append(tokenAccountStreamId(userId), batch, { expectedRevision: 'any' });
      batch = [];
    }
  }
  if (batch.length > 0) await store.append(tokenAccountStreamId(userId), batch, { expectedRevision: 'any' });
}

async function streamLengthLatency({ url }: Context): Promise<readonly Measurement[]> {
  return withStore(url, 8, async (store, pool) => {
    const snapshots = new PostgresSnapshotStore(pool);
    const fresh = randomUUID();
    await longStream(store, fresh, 0);
    const long = randomUUID();
    await longStream(store, long, 99_999);
    const handling = new CommandHandling(store, { cacheEntriesMax: 100, snapshots, snapshotIntervalEvents: 500 });

    const coldReplay = await latency(1, () => useTokens(new CommandHandling(store, { cacheEntriesMax: 0, snapshotIntervalEvents: 500 }), long).then(() => undefined));
    const coldSnapshot = await latency(1, () => useTokens(new CommandHandling(store, { cacheEntriesMax: 0, snapshots, snapshotIntervalEvents: 500 }), long).then(() => undefined));
    // The first command above replayed and wrote a snapshot; this one starts from it.
    const fromSnapshot = await latency(1, () => useTokens(new CommandHandling(store, { cacheEntriesMax: 0, snapshots, snapshotIntervalEvents: 500 }), long).then(() => undefined));

    const onFresh = await latency(2_000, () => useTokens(handling, fresh).then(() => undefined));
    const onLong = await latency(2_000, () => useTokens(handling, long).then(() => undefined));
    const ratio = onLong.p50Ms / onFresh.p50Ms;
    return [
      { name: 'UseTokens p50, fresh stream (2,000 sequential commands)', value: onFresh.p50Ms, unit: 'ms' },
      { name: 'UseTokens p99, fresh stream', value: onFresh.p99Ms, unit: 'ms' },
      { name: 'UseTokens p50, stream of 100,000 events', value: onLong.p50Ms, unit: 'ms', target: '<= 1.5x fresh p50', met: ratio <= 1.5 },
      { name: 'UseTokens p99, stream of 100,000 events', value: onLong.p99Ms, unit: 'ms' },
      { name: 'first command on the 100,000-event stream, no cache, no snapshot (full replay)', value: coldReplay.p50Ms, unit: 'ms' },
      { name: 'first command on the 100,000-event stream, no cache, snapshot table empty (replay, then snapshot)', value: coldSnapshot.p50Ms, unit: 'ms' },
      { name: 'first command on the 100,000-event stream, no cache, from the snapshot', value: fromSnapshot.p50Ms, unit: 'ms' },
    ];
  }, { readModels: true });
}

async function catchUp({ url }: Context): Promise<readonly Measurement[]> {
  const total = 1_000_000;
  return withStore(url, 8, async (store, pool) => {
    // Seeded in SQL, 100,000 rows a statement: this measures reading, and appending a million events
    // one call at a time would only make the run slower.
    await pool.query(`INSERT INTO event_streams (stream_id, revision) SELECT 'catchup-' || s, 999 FROM generate_series(0, 999) AS s`);
    for (let chunk = 0; chunk < total / 100_000; chunk += 1) {
      await pool.query(
        `INSERT INTO events (stream_id, stream_revision, event_id, event_type, data)
         SELECT 'catchup-' || (n / 1000), n % 1000, gen_random_uuid(), 'TokensUsed',
                jsonb_build_object('userId', gen_random_uuid(), 'amount', 1, 'balanceAfter', n, 'description', null)
           FROM generate_series($1::int, $2::int) AS n`,
        [chunk * 100_000, chunk * 100_000 + 99_999],
      );
    }
    const measurements: Measurement[] = [];
    for (const batchSize of [1_000, 10_000]) {
      const reader = new PostgresEventStore(pool, { connectionString: url, subscriptionBatchSize: batchSize });
      const controller = new AbortController();
      const started = performance.now();
      let received = 0;
      for await (const recorded of reader.subscribeToAll({ after: START, signal: controller.signal })) {
        if (recorded.type === 'TokensUsed') received += 1;
        if (received === total) break;
      }
      const perSecond = total / ((performance.now() - started) / 1_000);
      controller.abort();
      await reader.close();
      measurements.push({
        name: `$all catch-up subscription over 1,000,000 events, ${batchSize.toLocaleString('en')} events per read`,
        value: perSecond,
        unit: 'events/s',
        ...(batchSize === 1_000 ? { target: '>= 100,000 events/s', met: perSecond >= 100_000 } : {}),
      });
    }
    return measurements;
  });
}
