import { execFile, spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Pool } from 'pg';
import { summarizeLatency, type LatencySummary } from './latency-summary.js';
import { readProcessTable, readProcessTimes, treeTicks } from './process-cpu.js';

export type PgbenchMeasurement = {
  readonly version: string;
  readonly transactionsPerSecond: number;
  readonly latency: LatencySummary;
  readonly postgresCpuUsPerTransaction: number;
  /** pgbench's own CPU: the load generator of this row. */
  readonly pgbenchCpuUsPerTransaction: number;
  readonly loadAverage: number;
};

export const PGBENCH_TABLE = 'bench_pgbench_spends';
const RUN_MS_MAX_BEYOND_DURATION = 60_000;

/** `pgbench --version` when pgbench is on PATH, else undefined. */
export async function pgbenchVersion(): Promise<string | undefined> {
  try {
    return (await promisify(execFile)('pgbench', ['--version'])).stdout.trim();
  } catch {
    return undefined;
  }
}

/**
 * `pgbench -n -c <clients> -j 2 -T <seconds>` of one single-row INSERT per transaction against the
 * database in `url`, with a transaction log in `directory` for the latency percentiles. The password
 * goes through PGPASSWORD, not the command line.
 */
export async function runPgbench(options: { readonly pool: Pool; readonly url: string; readonly clients: number; readonly seconds: number; readonly directory: string; readonly postmasterPid: number; readonly ticksPerSecond: number }): Promise<PgbenchMeasurement> {
  await options.pool.query(`CREATE TABLE ${PGBENCH_TABLE} (id bigserial PRIMARY KEY, user_id uuid NOT NULL, amount bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
  const script = path.join(options.directory, 'pgbench-insert.sql');
  await writeFile(script, `INSERT INTO ${PGBENCH_TABLE} (user_id, amount) VALUES (gen_random_uuid(), 1);\n`);
  const version = (await pgbenchVersion()) ?? 'pgbench';
  const loadAverage = loadavg()[0] ?? Number.NaN;
  const postgresBefore = treeTicks(options.postmasterPid, readProcessTable());
  const childrenBefore = readProcessTimes(process.pid)?.endedChildrenTicks ?? Number.NaN;
  const output = await pgbench(options, script);
  // pgbench has ended and been waited for: its CPU time is now in this process's children fields.
  const childrenAfter = readProcessTimes(process.pid)?.endedChildrenTicks ?? Number.NaN;
  const postgresAfter = treeTicks(options.postmasterPid, readProcessTable());
  const transactionsPerSecond = Number(/^tps = ([\d.]+) \(without initial connection time\)$/m.exec(output)?.[1]);
  const failed = Number(/^number of failed transactions: (\d+)/m.exec(output)?.[1] ?? 0);
  if (!Number.isFinite(transactionsPerSecond) || failed !== 0) throw new Error(`pgbench failed or gave no rate:\n${output}`);
  const latenciesMs = await transactionLatenciesMs(options.directory);
  const microsecondsPerTransaction = (ticks: number) => (ticks * 1_000_000) / options.ticksPerSecond / latenciesMs.length;
  return {
    version,
    transactionsPerSecond,
    latency: summarizeLatency(latenciesMs),
    postgresCpuUsPerTransaction: microsecondsPerTransaction(postgresAfter - postgresBefore),
    pgbenchCpuUsPerTransaction: microsecondsPerTransaction(childrenAfter - childrenBefore),
    loadAverage,
  };
}

function pgbench(options: { readonly url: string; readonly clients: number; readonly seconds: number; readonly directory: string }, script: string): Promise<string> {
  const url = new URL(options.url);
  const args = ['-n', '-c', String(options.clients), '-j', '2', '-T', String(options.seconds), '-f', script, '-l', '--log-prefix', path.join(options.directory, 'pgbench-log')];
  args.push('-h', url.hostname, '-p', url.port, '-U', decodeURIComponent(url.username), decodeURIComponent(url.pathname.slice(1)));
  return new Promise((resolve, reject) => {
    const child = spawn('pgbench', args, { cwd: options.directory, env: { PATH: process.env.PATH, PGPASSWORD: decodeURIComponent(url.password) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const limit = setTimeout(() => child.kill('SIGKILL'), options.seconds * 1_000 + RUN_MS_MAX_BEYOND_DURATION);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(limit);
      if (code === 0) resolve(output);
      else reject(new Error(`pgbench exited with ${code}:\n${output}`));
    });
  });
}

/** The third field of each line of pgbench's transaction logs (`-l`): the transaction's latency in µs. */
async function transactionLatenciesMs(directory: string): Promise<Float64Array> {
  const samples: number[] = [];
  for (const file of (await readdir(directory)).filter((name) => name.startsWith('pgbench-log.'))) {
    for (const line of (await readFile(path.join(directory, file), 'utf8')).split('\n')) {
      const microseconds = Number(line.split(' ')[2]);
      if (line !== '' && Number.isFinite(microseconds)) samples.push(microseconds / 1_000);
    }
  }
  return Float64Array.from(samples);
}
