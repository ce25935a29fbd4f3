import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { seededRandom, seededUuid } from '@app/testing';
import pg from 'pg';
import { startBuiltService, type BuiltService } from './built-service.js';
import { stopChild } from './child-processes.js';
import { Cleanup, exitCleanlyOnSignalsAndDeadline } from './cleanup.js';
import { measureAlternating } from './alternating-rounds.js';
import { runClosedLoop } from './closed-loop.js';
import { startCrudReference } from './crud-reference.js';
import { CRUD_ACCOUNTS_TABLE } from './crud-schema.js';
import { pairRateRatio, renderHttpResults, withHttpResults, type HttpBenchResults } from './http-report.js';
import { pgbenchVersion, runPgbench, type PgbenchMeasurement } from './pgbench.js';
import { renderProfileSplit, splitProfile, type CpuProfile, type TimedPhase } from './profile-split.js';
import { clockTicksPerSecond, readProcessTimes } from './process-cpu.js';
import type { HoldSettleMeasurement } from './hold-settle-phase.js';
import { measureSpends, type SpendMeasurement, type SpendPlan, type SpendTarget } from './spend-phase.js';
import { verifyBalancesBySql, verifyBalancesOverHttp, type ExpectedBalances } from './verify-balances.js';
import { runMain, wholeNumber } from '../command-line.js';

/**
 * `npm run bench:http [-- --users 1000 --clients 32 --requests 20000 --warmup 2000 --rounds 4 --skip-crud --skip-pgbench --cpu-prof --no-write]`
 *
 * The built service (`node dist/apps/api/src/main.js`, on its embedded PostgreSQL, in a temporary
 * DATA_DIR) under closed-loop HTTP spends, and hold + settle pairs in rounds alternating with them,
 * against a plain CRUD service and pgbench's single-row INSERT on the same PostgreSQL; every balance
 * verified. A complete run (no --skip-*, no --cpu-prof, no --no-write) writes its results into
 * docs/benchmarks.md, one block per account count. With --cpu-prof the service runs under
 * `node --cpu-prof`, and its profile is cut along the timed phases: where a spend's and a pair's CPU
 * went, by package and by function (profile-split.ts).
 */
type Options = {
  readonly users: number;
  readonly clients: number;
  readonly requests: number;
  readonly warmup: number;
  readonly rounds: number;
  readonly skipCrud: boolean;
  readonly skipPgbench: boolean;
  readonly cpuProfile: boolean;
  readonly noWrite: boolean;
};

const ROOT = path.resolve(import.meta.dirname, '../../../../..');
const INITIAL_BALANCE = 1_000_000_000;
const HTTP_SAMPLE_SIZE = 100;
const PGBENCH_SECONDS = 10;

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '1000' },
      clients: { type: 'string', default: '32' },
      requests: { type: 'string', default: '20000' },
      warmup: { type: 'string', default: '2000' },
      rounds: { type: 'string', default: '4' },
      'skip-crud': { type: 'boolean', default: false },
      'skip-pgbench': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      'no-write': { type: 'boolean', default: false },
    },
  });
  const requests = wholeNumber('requests', values.requests, 1, 1_000_000);
  return {
    users: wholeNumber('users', values.users, 1, 1_000_000),
    clients: wholeNumber('clients', values.clients, 1, 256),
    requests,
    warmup: wholeNumber('warmup', values.warmup, 0, 1_000_000),
    rounds: wholeNumber('rounds', values.rounds, 1, Math.min(100, requests)),
    skipCrud: values['skip-crud'],
    skipPgbench: values['skip-pgbench'],
    cpuProfile: values['cpu-prof'],
    noWrite: values['no-write'],
  };
}

/** 15 minutes for starting, verifying and pgbench, a minute per round for settling, plus every seed, spend and hold + settle pair at a pessimistic 100 requests/s. */
function timeLimitMs(options: Options): number {
  return 15 * 60_000 + options.rounds * 60_000 + (options.users + 2 * (options.warmup + options.requests) + 2 * options.requests) * 10;
}

async function main(): Promise<void> {
  const options = parseOptions();
  const cleanup = new Cleanup();
  const releaseHandlers = exitCleanlyOnSignalsAndDeadline(cleanup, timeLimitMs(options));
  let results: HttpBenchResults;
  let timedPhases: readonly TimedPhase[];
  let cpuProfileDirectory: string | undefined;
  try {
    cpuProfileDirectory = options.cpuProfile ? await mkdtemp(path.join(tmpdir(), 'token-ledger-http-cpu-profile-')) : undefined;
    ({ results, timedPhases } = await runBench(options, cleanup, cpuProfileDirectory));
  } finally {
    await cleanup.runAll();
    releaseHandlers();
  }
  const rendered = renderHttpResults(results);
  process.stdout.write(`\n${rendered}\n`);
  if (cpuProfileDirectory !== undefined) await reportProfile(cpuProfileDirectory, timedPhases);
  const skipped = [options.skipCrud && '--skip-crud', options.skipPgbench && '--skip-pgbench', options.cpuProfile && '--cpu-prof', options.noWrite && '--no-write'].filter((flag) => flag !== false);
  if (skipped.length > 0) {
    process.stderr.write(`docs/benchmarks.md left as it was (${skipped.join(', ')}): only complete, unprofiled runs are recorded\n`);
    return;
  }
  const file = path.join(ROOT, 'docs/benchmarks.md');
  await writeFile(file, withHttpResults(await readFile(file, 'utf8'), options.users, rendered));
  process.stderr.write(`results written to ${file}\n`);
}

/**
 * Names the service's profile (written when it exited) and prints where a spend's and a pair's CPU
 * went in the timed phases, by package and by function: the pair's bar is two spends.
 */
async function reportProfile(directory: string, timedPhases: readonly TimedPhase[]): Promise<void> {
  const files = (await readdir(directory)).filter((file) => file.endsWith('.cpuprofile')).map((file) => path.join(directory, file));
  process.stderr.write(`CPU profile of the service (whole run, seeding included): ${files.join(', ')}\n`);
  const [file] = files;
  if (file === undefined) return;
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  for (const level of ['package', 'function'] as const) process.stderr.write(`\nBy ${level}:\n${renderProfileSplit(splitProfile(profile, timedPhases, level), 20, 5)}\n`);
}

async function runBench(options: Options, cleanup: Cleanup, cpuProfileDirectory: string | undefined): Promise<{ readonly results: HttpBenchResults; readonly timedPhases: readonly TimedPhase[] }> {
  const startedAt = new Date();
  const parentDirectory = await mkdtemp(path.join(tmpdir(), 'token-ledger-http-bench-'));
  // As root the embedded server runs as the postgres user, who must be able to enter this directory.
  await chmod(parentDirectory, 0o755);
  cleanup.add('remove the temporary directory', () => rm(parentDirectory, { recursive: true, force: true }));
  process.stderr.write(`starting the built service (DATA_DIR under ${parentDirectory})...\n`);
  const service = await startBuiltService({ root: ROOT, parentDirectory, cpuProfileDirectory, cleanup });
  const pool = new pg.Pool({ connectionString: service.postgresUrl, max: 4 });
  pool.on('error', (error) => process.stderr.write(`bench database connection: ${error.message}\n`));
  cleanup.add('close the bench connections', () => pool.end());
  const postgresVersion = (await pool.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? 'unknown';

  const plan = spendPlan(options);
  const purchasesPerSecond = await seedOverHttp(service, options.clients, plan.userIds);
  const ticksPerSecond = clockTicksPerSecond();
  const serviceTarget: SpendTarget = { origin: service.origin, authorization: service.authorization, processPid: service.child.pid, postmasterPid: service.postmasterPid };
  process.stderr.write(`Token Ledger: ${options.warmup} warm-up and ${options.requests} timed spends, and as many hold + settle pairs, from ${options.clients} clients in ${options.rounds} alternating rounds...\n`);
  const alternating = await measureAlternating({
    target: serviceTarget,
    plan,
    rounds: options.rounds,
    ticksPerSecond,
    settle: () => settleDatabase(pool),
    onRound: (round, spends, pairs) => {
      report(`round ${round + 1} of ${options.rounds}, spends`, spends);
      reportPairs(`round ${round + 1} of ${options.rounds}, hold + settle`, pairs, spends);
    },
  });
  const ours = alternating.spends;
  const holdSettle = alternating.pairs;
  const expected: ExpectedBalances = { userIds: plan.userIds, balanceOf: (index) => INITIAL_BALANCE - (ours.spendsByAccount[index] ?? 0) - (holdSettle.pairsByAccount[index] ?? 0) };
  await verify(serviceTarget, pool, 'user_tokens', expected);
  await verifyNothingHeld(pool);
  report('Token Ledger, all rounds, spends', ours);
  reportPairs('Token Ledger, all rounds, hold + settle', holdSettle, ours);

  const notes: string[] = [];
  const crud = options.skipCrud ? 'skipped (--skip-crud)' : await runCrud({ options, plan, service, pool, parentDirectory, cleanup, ticksPerSecond, notes });
  const pgbench = await runPgbenchIfAvailable({ options, service, pool, parentDirectory, ticksPerSecond });
  const machine = `nproc ${availableParallelism()} (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, PostgreSQL ${postgresVersion} (embedded, started by the service, default settings)${typeof pgbench === 'string' ? '' : `, ${pgbench.version}`}`;
  if (options.cpuProfile) notes.push('The service ran with `node --cpu-prof`: its numbers include the profiler.');
  const results: HttpBenchResults = {
    command: `npm run bench:http${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    startedAt,
    machine,
    cores: availableParallelism(),
    loadAveragesAtEnd: loadavg(),
    users: options.users,
    clients: options.clients,
    warmup: options.warmup,
    requests: options.requests,
    initialBalance: INITIAL_BALANCE,
    purchasesPerSecond,
    rounds: options.rounds,
    service: ours,
    holdSettle,
    pairRatioByRound: alternating.pairRatioByRound,
    pairCpuRatioByRound: alternating.pairCpuRatioByRound,
    crud,
    pgbench,
    httpSampleSize: Math.min(HTTP_SAMPLE_SIZE, options.users),
    notes,
  };
  return { results, timedPhases: alternating.timedPhases };
}

/** Account ids and the account of every spend, from a fixed seed: both targets get the same sequence. */
function spendPlan(options: Options): SpendPlan {
  const random = seededRandom('bench:http');
  const userIds = Array.from({ length: options.users }, () => seededUuid(random));
  const accountByRequest = Uint32Array.from({ length: options.warmup + options.requests }, () => Math.floor(random() * options.users));
  return { clients: options.clients, warmup: options.warmup, requests: options.requests, userIds, accountByRequest };
}

/** One purchase of INITIAL_BALANCE per account, through the API as a backend would credit it. Returns purchases/s. */
async function seedOverHttp(service: BuiltService, clients: number, userIds: readonly string[]): Promise<number> {
  process.stderr.write(`seeding ${userIds.length} accounts by POST /v1/accounts/{id}/purchases from ${clients} clients...\n`);
  const seeded = await runClosedLoop({
    origin: service.origin,
    clients,
    count: userIds.length,
    authorization: service.authorization,
    expectedStatus: 201,
    request: (index) => ({ method: 'POST', path: `/v1/accounts/${userIds[index] as string}/purchases`, body: JSON.stringify({ paymentId: randomUUID(), amount: INITIAL_BALANCE }) }),
  });
  const purchasesPerSecond = userIds.length / (seeded.elapsedMs / 1_000);
  process.stderr.write(`  ${Math.round(purchasesPerSecond)} purchases/s\n`);
  return purchasesPerSecond;
}

async function verify(target: SpendTarget, pool: pg.Pool, table: 'user_tokens' | typeof CRUD_ACCOUNTS_TABLE, expected: ExpectedBalances): Promise<void> {
  const { reads } = await verifyBalancesBySql(pool, table, expected);
  const sampled = await verifyBalancesOverHttp(target, expected, HTTP_SAMPLE_SIZE);
  process.stderr.write(`  verified: ${expected.userIds.length} balances in ${table} (${reads === 1 ? 'matched at the first read' : `matched at read ${reads}, 200 ms apart`}), ${sampled} through GET /v1/accounts/{id}/balance\n`);
}

/** Every hold of the pairs was settled: no account still holds tokens. */
async function verifyNothingHeld(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<{ accounts: string }>('SELECT count(*) AS accounts FROM user_tokens WHERE held <> 0');
  if (rows[0]?.accounts !== '0') throw new Error(`${rows[0]?.accounts ?? '?'} accounts still hold tokens after every hold was settled`);
}

function report(name: string, measurement: SpendMeasurement): void {
  const { spendsPerSecond, latency, processCpuUsPerRequest, postgresCpuUsPerRequest, loadGeneratorCpuUsPerRequest, loadAverage } = measurement;
  process.stderr.write(
    `  ${name}: ${Math.round(spendsPerSecond)} spends/s, p50 ${latency.p50Ms.toFixed(2)} ms, p99 ${latency.p99Ms.toFixed(2)} ms; CPU µs/request: process ${Math.round(processCpuUsPerRequest)}, PostgreSQL ${Math.round(postgresCpuUsPerRequest)}, load generator ${Math.round(loadGeneratorCpuUsPerRequest)}; load average ${loadAverage.toFixed(2)}\n`,
  );
}

function reportPairs(name: string, pairs: HoldSettleMeasurement, spends: SpendMeasurement): void {
  process.stderr.write(
    `  ${name}: ${Math.round(pairs.pairsPerSecond)} pairs/s (${pairRateRatio(pairs.pairsPerSecond, spends.spendsPerSecond)} the spends/s), p50 ${pairs.latency.p50Ms.toFixed(2)} ms, p99 ${pairs.latency.p99Ms.toFixed(2)} ms per pair; CPU µs/pair: process ${Math.round(pairs.processCpuUsPerPair)}, PostgreSQL ${Math.round(pairs.postgresCpuUsPerPair)}; load average ${pairs.loadAverage.toFixed(2)}\n`,
  );
}

type PhaseContext = {
  readonly options: Options;
  readonly service: BuiltService;
  readonly pool: pg.Pool;
  readonly parentDirectory: string;
  readonly ticksPerSecond: number;
};

/**
 * The CRUD reference on the same PostgreSQL, with the same accounts and spend sequence. The idle
 * service keeps polling its event store meanwhile; its own CPU in that window goes into a note.
 */
async function runCrud(context: PhaseContext & { readonly plan: SpendPlan; readonly cleanup: Cleanup; readonly notes: string[] }): Promise<SpendMeasurement> {
  const { plan, service, pool } = context;
  process.stderr.write('CRUD reference: seeding by SQL and starting...\n');
  const crud = await startCrudReference({ pool, postgresUrl: service.postgresUrl, userIds: plan.userIds, balance: INITIAL_BALANCE, parentDirectory: context.parentDirectory, cleanup: context.cleanup });
  const target: SpendTarget = { origin: crud.origin, authorization: service.authorization, processPid: crud.child.pid, postmasterPid: service.postmasterPid };
  await settleDatabase(pool);
  const serviceTicksBefore = readProcessTimes(service.child.pid)?.ownTicks ?? Number.NaN;
  const startedMs = performance.now();
  const measurement = await measureSpends(target, plan, context.ticksPerSecond);
  const serviceCpuMsPerSecond = (((readProcessTimes(service.child.pid)?.ownTicks ?? Number.NaN) - serviceTicksBefore) * 1_000) / context.ticksPerSecond / ((performance.now() - startedMs) / 1_000);
  await verify(target, pool, CRUD_ACCOUNTS_TABLE, { userIds: plan.userIds, balanceOf: (index) => INITIAL_BALANCE - (measurement.spendsByAccount[index] ?? 0) });
  report('CRUD reference', measurement);
  await stopChild(crud.child);
  context.notes.push(
    `While the CRUD reference ran, the idle service's own process used ${serviceCpuMsPerSecond.toFixed(1)} ms of CPU per second (its event-store polling); the PostgreSQL side of that polling is in the CRUD row's PostgreSQL CPU.`,
  );
  return measurement;
}

async function runPgbenchIfAvailable(context: PhaseContext): Promise<PgbenchMeasurement | string> {
  if (context.options.skipPgbench) return 'skipped (--skip-pgbench)';
  if ((await pgbenchVersion()) === undefined) {
    process.stderr.write('pgbench is not on PATH (Debian: apt-get install postgresql-client): its row is skipped\n');
    return 'skipped: pgbench is not on PATH';
  }
  process.stderr.write(`pgbench: single-row INSERT, ${context.options.clients} clients, ${PGBENCH_SECONDS} s...\n`);
  const measurement = await runPgbench({
    pool: context.pool,
    url: context.service.postgresUrl,
    clients: context.options.clients,
    seconds: PGBENCH_SECONDS,
    directory: context.parentDirectory,
    postmasterPid: context.service.postmasterPid,
    ticksPerSecond: context.ticksPerSecond,
  });
  process.stderr.write(`  ${Math.round(measurement.transactionsPerSecond)} inserts/s, p50 ${measurement.latency.p50Ms.toFixed(2)} ms, p99 ${measurement.latency.p99Ms.toFixed(2)} ms; PostgreSQL ${Math.round(measurement.postgresCpuUsPerTransaction)} µs/insert\n`);
  return measurement;
}

/**
 * Before each timed phase, untimed: the vacuuming that the writes before it left for autovacuum is
 * done now, so that no phase is charged with the last one's (PostgreSQL's CPU is its postmaster with
 * every child, autovacuum workers included). The phases run one after another on one database: each
 * round's pairs, measured after its spends, were otherwise charged with the spends' dead rows.
 * ANALYZE gives every table statistics, as autovacuum would in a running deployment.
 */
async function settleDatabase(pool: pg.Pool): Promise<void> {
  await pool.query('VACUUM (ANALYZE)');
}

runMain(main);
