import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createPool, migrateDatabase, startEmbeddedPostgres, type EmbeddedPostgresServer } from '@app/database';
import { PostgresEventStore } from '@app/event-store';
import { initialTokenAccountState } from '@app/ledger';
import {
  DEFAULT_RUNNER_OPTIONS,
  ProjectionRebuilds,
  ProjectionRunner,
  projectionStatuses,
  SET_BASED_BATCH_MIN,
  TOKEN_ACCOUNTS_PROJECTION,
  tokenAccountsProjection,
  type RebuildView,
} from '@app/projections';
import { appendDecided, seededRandom, seededUuid, seedHistory, type GeneratedAccount } from '@app/testing';
import pg, { type Pool } from 'pg';
import { runMain, wholeNumber } from './command-line.js';
import { rate } from './measure.js';
import { measureOneAccount } from './one-account-rebuild.js';
import { measureRunnerEventByEvent } from './runner-event-by-event.js';

/**
 * `npm run bench:rebuild [-- --users 10000 --events 1000000 --seed 1 --writers 32 --account-events 10000 --runner-events 100000 --no-write]`
 *
 * On a fresh embedded PostgreSQL (durable default settings) or DATABASE_URL: seeds the history with
 * the real decider, rebuilds token_accounts once cold (no live runner, no writes: the first build of
 * the read model), then starts the live runner and an append load and rebuilds again while they run,
 * sampling the live projection's lag. Events/s are end to end: from the rebuild request to the
 * committed swap. Then one more account of `--account-events` events is rebuilt alone (the admin's
 * per-account rebuild, set-based), against the same recomputation event by event in one transaction
 * in the same process (rolled back), and verified (event by event in temporary tables, timing how long
 * it held the stream). Last, the projection runner applies the first `--runner-events` events of
 * `$all` event by event from an empty read model, as with EventStoreDB. Results go to stdout and into
 * docs/benchmarks.md with the command.
 */
async function main(): Promise<void> {
  const { users, events, seed, writers, accountEvents, runnerEvents, writeResults: write } = benchOptions();
  const server = await startServer();
  const pool = createPool({ url: server.url, poolSizeMax: 30 });
  const store = new PostgresEventStore(pool, { connectionString: server.url });
  const lines: string[] = [];
  const report = (line: string) => {
    process.stderr.write(`${line}\n`);
    lines.push(line);
  };
  try {
    await migrateDatabase(server.url);
    let seeded = Date.now();
    await seedHistory(store, { users, events, seed, concurrency: 8, eventsPerAppend: 100 });
    seeded = Date.now() - seeded;
    report(`| seed ${events.toLocaleString('en-US')} events over ${users.toLocaleString('en-US')} users (real decider, appends of 100) | ${rate(events, seeded)} events/s | ${(seeded / 1000).toFixed(1)} s |`);

    const rebuilds = new ProjectionRebuilds(store, pool, { connectionString: server.url });
    const coldXids = sampleRebuildXids(pool, rebuilds);
    const cold = await timedRebuild(rebuilds);
    const coldHeld = [...(await coldXids.stop())].map(([phase, held]) => `${phase} ${held.seconds.toFixed(2)} s (${held.query})`).join(', ');
    process.stderr.write(`  cold rebuild, longest-held transaction id per phase: ${coldHeld}\n`);
    report(`| rebuild token_accounts, cold (no live runner, no writes), including the swap | ${cold.eventsPerSecond.toLocaleString('en-US')} events/s | ${cold.seconds.toFixed(2)} s |`);

    // As the service runs it (ProjectionsLifecycle): large batches set-based.
    const runner = new ProjectionRunner(store, pool, tokenAccountsProjection, { ...DEFAULT_RUNNER_OPTIONS, setBasedBatchMin: SET_BASED_BATCH_MIN });
    runner.start();
    await caughtUp(pool, store, rebuilds);
    const load = startAppendLoad(store, writers, seed);
    const lag = sampleLag(pool, store, rebuilds, runner);
    const xids = sampleRebuildXids(pool, rebuilds);
    const underLoad = await timedRebuild(rebuilds);
    const heldXids = await xids.stop();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const appended = await load.stop();
    const lagSeconds = await lag.stop();
    await caughtUp(pool, store, rebuilds);
    await runner.stop();
    report(
      `| rebuild token_accounts with the live runner running and ${writers} appending writers, including the swap | ${underLoad.eventsPerSecond.toLocaleString('en-US')} events/s | ${underLoad.seconds.toFixed(2)} s |`,
    );
    report(`| append load during that rebuild (${writers} writers, one-event appends) | ${rate(appended.events, appended.milliseconds)} appends/s | |`);
    report(`| live projection lag during that rebuild, sampled every 100 ms | max ${lagSeconds.max.toFixed(2)} s, mean ${lagSeconds.mean.toFixed(2)} s | |`);
    const byPhase = [...lagSeconds.maxByPhase].map(([phase, max]) => `${phase} ${max.toFixed(2)} s`).join(', ');
    report(`| live projection lag, largest sample in each rebuild phase | ${byPhase} | |`);
    const xidsByPhase = [...heldXids].map(([phase, held]) => `${phase} ${held.seconds.toFixed(2)} s (${held.query})`).join(', ');
    report(`| longest the rebuild's session held one transaction id, in each phase (sampled every 50 ms) | ${xidsByPhase} | |`);

    // One long account: its writes wait while its rows are recomputed (the stream is held).
    for (const line of await measureOneAccount({ store, pool, events: accountEvents, seed, caughtUp: () => caughtUp(pool, store, rebuilds) })) report(line);

    // Last: it empties the read model.
    report(await measureRunnerEventByEvent({ store, pool, events: Math.min(runnerEvents, events), coldEventsPerSecond: cold.eventsPerSecond }));
  } finally {
    await store.close();
    await pool.end();
    await server.stop();
  }

  const command = `npm run bench:rebuild${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const rendered = [
    `Command: \`${command}\``,
    '',
    `Environment: ${environment(server.version)}; run at ${new Date().toISOString()}.`,
    '',
    '| Measurement | Rate | Time |',
    '|---|---|---|',
    ...lines,
  ].join('\n');
  process.stdout.write(`${rendered}\n`);
  if (write) await writeResults(rendered);
}

/** The command line's options, checked. */
function benchOptions(): {
  readonly users: number;
  readonly events: number;
  readonly seed: number;
  readonly writers: number;
  readonly accountEvents: number;
  readonly runnerEvents: number;
  readonly writeResults: boolean;
} {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '10000' },
      events: { type: 'string', default: '1000000' },
      seed: { type: 'string', default: '1' },
      writers: { type: 'string', default: '32' },
      'account-events': { type: 'string', default: '10000' },
      'runner-events': { type: 'string', default: '100000' },
      'no-write': { type: 'boolean', default: false },
    },
  });
  return {
    users: wholeNumber('users', values.users, 1, 1_000_000),
    events: wholeNumber('events', values.events, 1, 100_000_000),
    seed: wholeNumber('seed', values.seed, 0, 4_294_967_295),
    writers: wholeNumber('writers', values.writers, 0, 64),
    accountEvents: wholeNumber('account-events', values['account-events'], 1, 1_000_000),
    runnerEvents: wholeNumber('runner-events', values['runner-events'], 1, 100_000_000),
    writeResults: values['no-write'] !== true,
  };
}

async function timedRebuild(rebuilds: ProjectionRebuilds): Promise<{ readonly seconds: number; readonly eventsPerSecond: number; readonly view: RebuildView }> {
  const started = performance.now();
  const { id } = await rebuilds.start(TOKEN_ACCOUNTS_PROJECTION);
  const view = await rebuilds.settled(id);
  const seconds = (performance.now() - started) / 1000;
  if (view.phase !== 'completed') throw new Error(`rebuild ${id} ${view.phase}: ${view.error ?? ''}`);
  process.stderr.write(`  rebuild ${id}: ${view.eventsDone} events in ${seconds.toFixed(2)} s\n`);
  return { seconds, eventsPerSecond: Math.round(view.eventsDone / seconds), view };
}

/** Writers appending one decided event at a time to accounts of their own. */
function startAppendLoad(store: PostgresEventStore, writers: number, seed: number): { stop(): Promise<{ events: number; milliseconds: number }> } {
  let running = true;
  let appended = 0;
  const started = Date.now();
  const loops = Array.from({ length: writers }, async (_, writer) => {
    const random = seededRandom(`append-load:${seed}:${writer}`);
    const accounts: GeneratedAccount[] = Array.from({ length: 50 }, () => ({ userId: seededUuid(random), state: initialTokenAccountState, revision: -1n }));
    for (let index = 0; running; index += 1) {
      await appendDecided(store, random, accounts[index % accounts.length] as GeneratedAccount, 1, new Date());
      appended += 1;
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return { events: appended, milliseconds: Date.now() - started };
    },
  };
}

function sampleLag(
  pool: Pool,
  store: PostgresEventStore,
  rebuilds: ProjectionRebuilds,
  runner: ProjectionRunner,
): { stop(): Promise<{ max: number; mean: number; maxByPhase: ReadonlyMap<string, number> }> } {
  const samples: number[] = [];
  const maxByPhase = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const [status] = await projectionStatuses({ store, pool, projections: [tokenAccountsProjection], runners: new Map([[TOKEN_ACCOUNTS_PROJECTION, runner]]), rebuilds });
      if (status !== undefined) {
        samples.push(status.lagSeconds);
        // Where in the rebuild the lag arises: its phase at the sample (none just before it starts and in the second after it ends).
        const phase = status.rebuild?.phase ?? 'none';
        maxByPhase.set(phase, Math.max(maxByPhase.get(phase) ?? 0, status.lagSeconds));
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { max: Math.max(0, ...samples), mean: samples.length === 0 ? 0 : samples.reduce((sum, sample) => sum + sample, 0) / samples.length, maxByPhase };
    },
  };
}

/**
 * How long the rebuild's session keeps each transaction id: while it holds one, `$all` (which reads
 * only transactions older than the oldest running one) shows the live runner no newer event. Per
 * phase, the longest span between the first and last sample that saw the same id, and its statement.
 */
function sampleRebuildXids(pool: Pool, rebuilds: ProjectionRebuilds): { stop(): Promise<ReadonlyMap<string, { seconds: number; query: string }>> } {
  const longest = new Map<string, { seconds: number; query: string }>();
  const seen = new Map<string, { first: number; phase: string; query: string }>();
  let running = true;
  let lastPhase = '';
  const started = performance.now();
  const loop = (async () => {
    while (running) {
      const [active, rows] = await Promise.all([
        rebuilds.active(TOKEN_ACCOUNTS_PROJECTION),
        pool.query<{ xid: string; query: string }>(
          "SELECT backend_xid::text AS xid, left(regexp_replace(query, '\\s+', ' ', 'g'), 40) AS query FROM pg_stat_activity WHERE application_name LIKE 'token-ledger rebuild %' AND backend_xid IS NOT NULL",
        ),
      ]);
      const now = performance.now();
      const phase = active?.phase ?? 'none';
      if (phase !== lastPhase) process.stderr.write(`  ${((now - started) / 1000).toFixed(2)} s: ${phase}\n`);
      lastPhase = phase;
      for (const row of rows.rows) {
        const entry = seen.get(row.xid) ?? { first: now, phase: active?.phase ?? 'none', query: row.query };
        seen.set(row.xid, entry);
        const seconds = (now - entry.first) / 1000;
        if (seconds >= (longest.get(entry.phase)?.seconds ?? 0)) longest.set(entry.phase, { seconds, query: entry.query });
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return longest;
    },
  };
}

async function caughtUp(pool: Pool, store: PostgresEventStore, rebuilds: ProjectionRebuilds): Promise<void> {
  for (;;) {
    const [status] = await projectionStatuses({ store, pool, projections: [tokenAccountsProjection], runners: new Map(), rebuilds });
    if (status?.lagEvents === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

type Server = { readonly url: string; readonly version: string; stop(): Promise<void> };

async function startServer(): Promise<Server> {
  const external = process.env.DATABASE_URL;
  let embedded: EmbeddedPostgresServer | undefined;
  let parent: string | undefined;
  let url: string;
  if (external !== undefined && external !== '') {
    url = external;
  } else {
    parent = await mkdtemp(path.join(tmpdir(), 'token-ledger-rebuild-bench-'));
    // As root the server runs as the postgres user, who must be able to enter this directory.
    await chmod(parent, 0o755);
    embedded = await startEmbeddedPostgres({ dataDir: path.join(parent, 'pg'), secretsDirectory: path.join(parent, 'secrets'), port: 55000 + Math.floor(Math.random() * 1_000), database: 'rebuild_bench', persistent: false });
    url = embedded.url;
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const version = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? 'unknown';
  await client.end();
  return {
    url,
    version: `PostgreSQL ${version}${embedded === undefined ? ' (DATABASE_URL)' : ' (embedded, default settings: fsync and synchronous_commit on)'}`,
    async stop() {
      await embedded?.stop();
      if (parent !== undefined) await rm(parent, { recursive: true, force: true });
    },
  };
}

function environment(version: string): string {
  const cpu = cpus();
  return [`${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}`, `${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM`, `Node ${process.version}`, version].join(', ');
}

const START_MARKER = '<!-- rebuild-results:start -->';
const END_MARKER = '<!-- rebuild-results:end -->';

/** Replaces the rebuild section's results; the section is added at the end of the file the first time. */
async function writeResults(rendered: string): Promise<void> {
  const file = path.resolve(process.cwd(), 'docs/benchmarks.md');
  let current = await readFile(file, 'utf8');
  if (!current.includes(START_MARKER)) current = `${current.trimEnd()}\n\n## Projection rebuild\n\n${START_MARKER}\n${END_MARKER}\n`;
  const start = current.indexOf(START_MARKER);
  const end = current.indexOf(END_MARKER);
  await writeFile(file, `${current.slice(0, start + START_MARKER.length)}\n${rendered}\n${current.slice(end)}`);
  process.stderr.write(`results written to ${file}\n`);
}

runMain(main);
