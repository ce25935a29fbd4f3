import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { seededRandom, seededUuid } from '@app/testing';
import pg from 'pg';
import { startBuiltService, type BuiltService } from './built-service.js';
import { freeLoopbackPort } from './child-processes.js';
import { Cleanup, exitCleanlyOnSignalsAndDeadline } from './cleanup.js';
import { runClosedLoop } from './closed-loop.js';
import { clockTicksPerSecond } from './process-cpu.js';
import { measureSpends, type SpendTarget } from './spend-phase.js';
import { startWithStatementStatistics, readStatementRows, resetStatementStatistics } from './statement-statistics.js';
import { addStatementRows, renderVersus, type StatementTotals, type VersusSide, type VersusTotals } from './versus-report.js';
import { runMain, wholeNumber } from '../command-line.js';

/**
 * `npm run bench:versus -- --baseline <git revision> [--rounds 6 --requests 3000 --warmup 2000 --users 1000 --clients 32 --statements --keyed]`
 *
 * This checkout's built service against another revision's, side by side on one machine: both
 * started (each on its own embedded PostgreSQL), both seeded alike, then spends alternating between
 * them round by round (A B, B A, ...), each round after `VACUUM (ANALYZE)`. So the drift of a shared
 * machine falls on both, which consecutive runs of `bench:http` cannot promise: it answers "what did
 * this change buy" to within a few percent where two runs of `bench:http` differ by ten. The baseline
 * is checked out in a temporary git worktree and built there (`npm ci`, `nest build api`); it must
 * keep the embedded PostgreSQL's secrets as this checkout does (b86a33e, 2026-12-01, or later).
 * With --statements both PostgreSQL servers load pg_stat_statements (track = all) and the report
 * lists each side's costliest statements per spend, with their WAL records: the statements inside
 * the inline function too. With --keyed every spend carries an Idempotency-Key of its own, as a
 * retry-safe client sends it. Prints its report; writes no file.
 */
type Options = {
  readonly baseline: string;
  readonly rounds: number;
  readonly requests: number;
  readonly warmup: number;
  readonly users: number;
  readonly clients: number;
  readonly statements: boolean;
  readonly keyed: boolean;
};

type Side = {
  readonly name: 'baseline' | 'current';
  readonly label: string;
  readonly service: BuiltService;
  readonly target: SpendTarget;
  readonly pool: pg.Pool;
  /** The superuser's connection to the service database, with --statements. */
  readonly statements: pg.Client | undefined;
  readonly totals: VersusTotals;
  /** With --statements. */
  readonly statementTotals: StatementTotals | undefined;
};

const ROOT = path.resolve(import.meta.dirname, '../../../../..');
const INITIAL_BALANCE = 1_000_000_000;
const STATEMENTS_SHOWN = 10;
const run = promisify(execFile);

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      baseline: { type: 'string' },
      rounds: { type: 'string', default: '6' },
      requests: { type: 'string', default: '3000' },
      warmup: { type: 'string', default: '2000' },
      users: { type: 'string', default: '1000' },
      clients: { type: 'string', default: '32' },
      statements: { type: 'boolean', default: false },
      keyed: { type: 'boolean', default: false },
    },
  });
  if (values.baseline === undefined || !/^[\w./@^~-]+$/.test(values.baseline)) throw new Error('--baseline must name a git revision (a commit, a tag, HEAD~1)');
  return {
    baseline: values.baseline,
    rounds: wholeNumber('rounds', values.rounds, 1, 100),
    requests: wholeNumber('requests', values.requests, 100, 1_000_000),
    warmup: wholeNumber('warmup', values.warmup, 0, 1_000_000),
    users: wholeNumber('users', values.users, 1, 1_000_000),
    clients: wholeNumber('clients', values.clients, 1, 256),
    statements: values.statements,
    keyed: values.keyed,
  };
}

async function main(): Promise<void> {
  const options = parseOptions();
  const cleanup = new Cleanup();
  // 20 minutes for building the baseline and starting, then every spend at a pessimistic 100/s.
  const releaseHandlers = exitCleanlyOnSignalsAndDeadline(cleanup, 20 * 60_000 + (2 * (options.warmup + options.rounds * options.requests) + 2 * options.users) * 10);
  try {
    process.stdout.write(`${await compare(options, cleanup)}\n`);
  } finally {
    await cleanup.runAll();
    releaseHandlers();
  }
}

async function compare(options: Options, cleanup: Cleanup): Promise<string> {
  const parent = await mkdtemp(path.join(tmpdir(), 'token-ledger-versus-'));
  // As root the embedded server runs as the postgres user, who must be able to enter these directories.
  await chmod(parent, 0o755);
  cleanup.add('remove the temporary directory', () => rm(parent, { recursive: true, force: true }));
  const baselineRoot = path.join(parent, 'baseline');
  const baselineCommit = (await run('git', ['rev-parse', '--short', `${options.baseline}^{commit}`], { cwd: ROOT })).stdout.trim();
  const currentCommit = (await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT })).stdout.trim();
  const dirty = (await run('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT })).stdout.trim() !== '';
  process.stderr.write(`building the baseline ${baselineCommit} in ${baselineRoot} (npm ci, nest build api)...\n`);
  await run('git', ['worktree', 'add', '--detach', baselineRoot, baselineCommit], { cwd: ROOT });
  cleanup.add('remove the baseline worktree', async () => void (await run('git', ['worktree', 'remove', '--force', baselineRoot], { cwd: ROOT })));
  await run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: baselineRoot, maxBuffer: 64 * 1024 * 1024 });
  await run('npx', ['nest', 'build', 'api'], { cwd: baselineRoot, maxBuffer: 64 * 1024 * 1024 });

  const sides: [Side, Side] = [
    await startSide('baseline', `${baselineCommit} (--baseline ${options.baseline})`, baselineRoot, parent, options, cleanup),
    await startSide('current', `${currentCommit}${dirty ? ' with uncommitted changes' : ''} (this checkout)`, ROOT, parent, options, cleanup),
  ];
  const random = seededRandom('bench:versus');
  const userIds = Array.from({ length: options.users }, () => seededUuid(random));
  const accountByRequest = Uint32Array.from({ length: options.warmup + options.rounds * options.requests }, () => Math.floor(random() * options.users));
  for (const side of sides) {
    process.stderr.write(`seeding ${options.users} accounts of the ${side.name} service...\n`);
    await runClosedLoop({
      origin: side.service.origin,
      clients: options.clients,
      count: userIds.length,
      authorization: side.service.authorization,
      expectedStatus: 201,
      request: (index) => ({ method: 'POST', path: `/v1/accounts/${userIds[index] as string}/purchases`, body: JSON.stringify({ paymentId: randomUUID(), amount: INITIAL_BALANCE }) }),
    });
  }
  const ticksPerSecond = clockTicksPerSecond();
  const spendOn = async (side: Side, offset: number, requests: number, recorded: boolean) => {
    await side.pool.query('VACUUM (ANALYZE)');
    if (recorded && side.statements !== undefined) await resetStatementStatistics(side.statements);
    const measured = await measureSpends(side.target, { clients: options.clients, warmup: 0, requests, userIds, accountByRequest: accountByRequest.subarray(offset, offset + requests), keyed: options.keyed }, ticksPerSecond);
    if (!recorded) return;
    side.totals.processUs += measured.processCpuUsPerRequest * requests;
    side.totals.postgresUs += measured.postgresCpuUsPerRequest * requests;
    side.totals.elapsedMs += (requests / measured.spendsPerSecond) * 1_000;
    side.totals.requests += requests;
    if (side.statements !== undefined) await addStatements(side, side.statements);
    process.stderr.write(
      `  ${side.name}: ${Math.round(measured.spendsPerSecond)} spends/s, CPU µs/request: process ${Math.round(measured.processCpuUsPerRequest)}, PostgreSQL ${Math.round(measured.postgresCpuUsPerRequest)}; load average ${(loadavg()[0] ?? Number.NaN).toFixed(2)}\n`,
    );
  };
  if (options.warmup > 0) for (const side of sides) await spendOn(side, 0, options.warmup, false);
  for (let round = 0; round < options.rounds; round += 1) {
    process.stderr.write(`round ${round + 1} of ${options.rounds}\n`);
    const offset = options.warmup + round * options.requests;
    for (const side of round % 2 === 0 ? sides : [...sides].reverse()) await spendOn(side, offset, options.requests, true);
  }
  const [baseline, current] = sides;
  const heading = `bench:versus, ${new Date().toISOString()}: ${options.rounds} alternating rounds of ${options.requests} spends${options.keyed ? ', each with an Idempotency-Key of its own' : ''} (after ${options.warmup} warm-up spends each), ${options.clients} clients, ${options.users} accounts; ${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown'}), load average at the end ${loadavg().map((value) => value.toFixed(2)).join(', ')}.`;
  const view = (side: Side): VersusSide => ({ name: side.name, label: side.label, totals: side.totals, ...(side.statementTotals === undefined ? {} : { statements: side.statementTotals }) });
  return renderVersus(heading, view(baseline), view(current), STATEMENTS_SHOWN);
}

async function startSide(name: Side['name'], label: string, root: string, parent: string, options: Options, cleanup: Cleanup): Promise<Side> {
  process.stderr.write(`starting the ${name} service...\n`);
  const dataDirectory = path.join(parent, `${name}-data`);
  // Each on its own metrics port (revisions before the metrics ignore the variable).
  const start = async (stopWith: Cleanup) =>
    startBuiltService({ root, parentDirectory: await mkdtemp(path.join(parent, `${name}-`)), cleanup: stopWith, dataDirectory, env: { METRICS_PORT: String(await freeLoopbackPort()) } });
  let statements: pg.Client | undefined;
  let service: BuiltService;
  if (options.statements) {
    ({ service, statements } = await startWithStatementStatistics(start, dataDirectory, cleanup, name));
  } else {
    service = await start(cleanup);
  }
  const pool = new pg.Pool({ connectionString: service.postgresUrl, max: 2 });
  pool.on('error', (error) => process.stderr.write(`${name} database connection: ${error.message}\n`));
  cleanup.add(`close the ${name} bench connections`, () => pool.end());
  const target: SpendTarget = { origin: service.origin, authorization: service.authorization, processPid: service.child.pid, postmasterPid: service.postmasterPid };
  return { name, label, service, target, pool, statements, totals: { processUs: 0, postgresUs: 0, elapsedMs: 0, requests: 0 }, statementTotals: statements === undefined ? undefined : new Map() };
}

/** Adds the round's statements (since the reset before it) to the side's totals. */
async function addStatements(side: Side, client: pg.Client): Promise<void> {
  if (side.statementTotals !== undefined) addStatementRows(side.statementTotals, await readStatementRows(client));
}

runMain(main);
