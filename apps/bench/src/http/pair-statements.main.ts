import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { seededRandom, seededUuid } from '@app/testing';
import pg from 'pg';
import { startBuiltService } from './built-service.js';
import { freeLoopbackPort } from './child-processes.js';
import { Cleanup, exitCleanlyOnSignalsAndDeadline } from './cleanup.js';
import { runClosedLoop } from './closed-loop.js';
import { measureHoldSettlePairs } from './hold-settle-phase.js';
import { renderPairStatements, type PhaseTotals } from './pair-statements-report.js';
import { clockTicksPerSecond } from './process-cpu.js';
import { measureSpends, type SpendPlan, type SpendTarget } from './spend-phase.js';
import { readStatementRows, resetStatementStatistics, startWithStatementStatistics } from './statement-statistics.js';
import { addStatementRows } from './versus-report.js';
import { runMain, wholeNumber } from '../command-line.js';

/**
 * `npm run bench:pair-statements -- [--rounds 4 --requests 4000 --warmup 2000 --users 1000 --clients 32]`
 *
 * Where a hold + settle pair's PostgreSQL time goes against two spends', statement by statement:
 * the built service on its embedded PostgreSQL with pg_stat_statements (`track = all`, so the inline
 * projection function's statements are counted one by one), seeded as bench:http seeds it, then
 * spends and pairs in alternating rounds (each phase after `VACUUM (ANALYZE)`, the counts reset
 * before it), as bench:http runs them. Statement times are PostgreSQL's own measure of each
 * statement, so they vary far less from run to run than the CPU totals do. Prints its report;
 * writes no file.
 */
type Options = { readonly rounds: number; readonly requests: number; readonly warmup: number; readonly users: number; readonly clients: number };

const ROOT = path.resolve(import.meta.dirname, '../../../../..');
const INITIAL_BALANCE = 1_000_000_000;
const STATEMENTS_SHOWN = 12;

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '4' },
      requests: { type: 'string', default: '4000' },
      warmup: { type: 'string', default: '2000' },
      users: { type: 'string', default: '1000' },
      clients: { type: 'string', default: '32' },
    },
  });
  return {
    rounds: wholeNumber('rounds', values.rounds, 1, 100),
    requests: wholeNumber('requests', values.requests, 100, 1_000_000),
    warmup: wholeNumber('warmup', values.warmup, 0, 1_000_000),
    users: wholeNumber('users', values.users, 1, 1_000_000),
    clients: wholeNumber('clients', values.clients, 1, 256),
  };
}

async function main(): Promise<void> {
  const options = parseOptions();
  const cleanup = new Cleanup();
  // 5 minutes for starting twice and seeding, then every spend and pair at a pessimistic 100/s.
  const releaseHandlers = exitCleanlyOnSignalsAndDeadline(cleanup, 5 * 60_000 + (3 * (options.warmup + options.rounds * options.requests) + options.users) * 10);
  try {
    process.stdout.write(`${await measure(options, cleanup)}\n`);
  } finally {
    await cleanup.runAll();
    releaseHandlers();
  }
}

async function measure(options: Options, cleanup: Cleanup): Promise<string> {
  const parent = await mkdtemp(path.join(tmpdir(), 'token-ledger-pair-statements-'));
  // As root the embedded server runs as the postgres user, who must be able to enter these directories.
  await chmod(parent, 0o755);
  cleanup.add('remove the temporary directory', () => rm(parent, { recursive: true, force: true }));
  const dataDirectory = path.join(parent, 'data');
  process.stderr.write('starting the built service with pg_stat_statements...\n');
  const start = async (stopWith: Cleanup) =>
    startBuiltService({ root: ROOT, parentDirectory: await mkdtemp(path.join(parent, 'service-')), cleanup: stopWith, dataDirectory, env: { METRICS_PORT: String(await freeLoopbackPort()) } });
  const { service, statements } = await startWithStatementStatistics(start, dataDirectory, cleanup, 'service');
  const pool = new pg.Pool({ connectionString: service.postgresUrl, max: 2 });
  pool.on('error', (error) => process.stderr.write(`database connection: ${error.message}\n`));
  cleanup.add('close the bench connections', () => pool.end());
  const target: SpendTarget = { origin: service.origin, authorization: service.authorization, processPid: service.child.pid, postmasterPid: service.postmasterPid };

  const random = seededRandom('bench:pair-statements');
  const userIds = Array.from({ length: options.users }, () => seededUuid(random));
  const accountByRequest = Uint32Array.from({ length: options.warmup + options.rounds * options.requests }, () => Math.floor(random() * options.users));
  process.stderr.write(`seeding ${options.users} accounts...\n`);
  await runClosedLoop({
    origin: service.origin,
    clients: options.clients,
    count: userIds.length,
    authorization: service.authorization,
    expectedStatus: 201,
    request: (index) => ({ method: 'POST', path: `/v1/accounts/${userIds[index] as string}/purchases`, body: JSON.stringify({ paymentId: randomUUID(), amount: INITIAL_BALANCE }) }),
  });
  const ticksPerSecond = clockTicksPerSecond();
  // Every phase is timed whole: the warm-ups are phases of their own, before the first round.
  const plan = (offset: number, requests: number): SpendPlan => ({ clients: options.clients, warmup: 0, requests, userIds, accountByRequest: accountByRequest.subarray(offset, offset + requests) });
  const totals = { spends: emptyTotals(), pairs: emptyTotals() };
  if (options.warmup > 0) {
    process.stderr.write(`warming up: ${options.warmup} spends, then ${options.warmup} pairs...\n`);
    await measureSpends(target, plan(0, options.warmup), ticksPerSecond);
    await measureHoldSettlePairs(target, plan(0, options.warmup), ticksPerSecond);
  }
  for (let round = 0; round < options.rounds; round += 1) {
    const offset = options.warmup + round * options.requests;
    for (const kind of round % 2 === 0 ? (['spends', 'pairs'] as const) : (['pairs', 'spends'] as const)) {
      await pool.query('VACUUM (ANALYZE)');
      await resetStatementStatistics(statements);
      const phase = totals[kind];
      if (kind === 'spends') {
        const measured = await measureSpends(target, plan(offset, options.requests), ticksPerSecond);
        phase.processUs += measured.processCpuUsPerRequest * options.requests;
        phase.postgresUs += measured.postgresCpuUsPerRequest * options.requests;
      } else {
        const measured = await measureHoldSettlePairs(target, plan(offset, options.requests), ticksPerSecond);
        phase.processUs += measured.processCpuUsPerPair * options.requests;
        phase.postgresUs += measured.postgresCpuUsPerPair * options.requests;
      }
      phase.count += options.requests;
      addStatementRows(phase.statements, await readStatementRows(statements));
      process.stderr.write(`  round ${round + 1} of ${options.rounds}, ${kind} done; load average ${(loadavg()[0] ?? Number.NaN).toFixed(2)}\n`);
    }
  }
  const heading = `bench:pair-statements, ${new Date().toISOString()}: ${options.rounds} alternating rounds of ${options.requests} spends and ${options.requests} hold + settle pairs (after ${options.warmup} warm-up of each), ${options.clients} clients, ${options.users} accounts; ${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown'}), load average at the end ${loadavg().map((value) => value.toFixed(2)).join(', ')}.`;
  return renderPairStatements(heading, totals.spends, totals.pairs, STATEMENTS_SHOWN);
}

function emptyTotals(): { count: number; processUs: number; postgresUs: number; statements: PhaseTotals['statements'] } {
  return { count: 0, processUs: 0, postgresUs: 0, statements: new Map() };
}

runMain(main);
