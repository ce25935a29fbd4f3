import type { PgbenchMeasurement } from './pgbench.js';
import type { HoldSettleMeasurement } from './hold-settle-phase.js';
import type { SpendMeasurement } from './spend-phase.js';

export type HttpBenchResults = {
  readonly command: string;
  readonly startedAt: Date;
  /** nproc, CPU, memory, Node, PostgreSQL. */
  readonly machine: string;
  readonly cores: number;
  readonly loadAveragesAtEnd: readonly number[];
  readonly users: number;
  readonly clients: number;
  readonly warmup: number;
  readonly requests: number;
  /** The service's spends and pairs alternated in this many rounds. */
  readonly rounds: number;
  readonly initialBalance: number;
  readonly purchasesPerSecond: number;
  readonly service: SpendMeasurement;
  readonly holdSettle: HoldSettleMeasurement;
  /** Each round's pairs/s over its spends/s. */
  readonly pairRatioByRound: readonly number[];
  /** Each round's CPU per pair over that of two of its spends. */
  readonly pairCpuRatioByRound: readonly number[];
  readonly crud: SpendMeasurement | string;
  readonly pgbench: PgbenchMeasurement | string;
  /** Accounts whose balance was also read through GET /v1/accounts/{id}/balance, per target. */
  readonly httpSampleSize: number;
  readonly notes: readonly string[];
};

const whole = (value: number) => Math.round(value).toLocaleString('en-US');
const milliseconds = (value: number) => value.toFixed(2);
// Rounded down, as in the store bench: a ratio shown never claims more than was measured.
export const ratio = (ours: number, reference: number) => `${(Math.floor((ours / reference) * 100) / 100).toFixed(2)}x`;
/**
 * The pairs' rate against the spends', rounded down to thousandths (as every ratio here is rounded
 * down, never claiming more than was measured): held against a bar of 0.50x, hundredths read a pair
 * up to 2% dearer than measured (0.499x printed 0.49x).
 */
export const pairRateRatio = (pairsPerSecond: number, spendsPerSecond: number) => `${(Math.floor((pairsPerSecond / spendsPerSecond) * 1000) / 1000).toFixed(3)}x`;

/** The run as Markdown: command, machine, the table, the ratios and what was verified. */
export function renderHttpResults(results: HttpBenchResults): string {
  const { service, crud, pgbench } = results;
  const lines = [
    `Command: \`${results.command}\`, run at ${results.startedAt.toISOString()}.`,
    '',
    `Machine: ${results.machine}; load average (1, 5, 15 minutes) at the end: ${results.loadAveragesAtEnd.map((load) => load.toFixed(2)).join(', ')}. A shared machine: other work may have run at the same time (see the load averages).`,
    '',
    `${whole(results.users)} accounts, each credited ${whole(results.initialBalance)} tokens by \`POST /v1/accounts/{id}/purchases\` from ${results.clients} clients (${whole(results.purchasesPerSecond)} purchases/s${typeof crud === 'string' ? '' : "; the CRUD reference's rows by SQL"}). Then, per target, ${results.clients} closed-loop clients (undici, one keep-alive connection and one request in flight each) spend 1 token per request on random accounts: ${whole(results.warmup)} warm-up requests, then ${whole(results.requests)} timed; the service's ${rounds(results)}.`,
    '',
    '| Target | Spends/s | p50 (ms) | p99 (ms) | Server process CPU (µs/request) | PostgreSQL CPU (µs/request) | Load generator CPU (µs/request) | 1-minute load average at start |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    spendRow('Token Ledger, the built service (`POST /v1/accounts/{id}/usage`)', service),
    typeof crud === 'string' ? `| CRUD reference | ${crud} | | | | | | |` : spendRow('CRUD reference (node:http + pg, one transaction per spend)', crud),
    typeof pgbench === 'string' ? `| pgbench single-row INSERT | ${pgbench} | | | | | | |` : pgbenchRow(pgbench, results.clients),
    ...ratioTable(service, crud, pgbench),
    '',
    holdSettleLine(results),
    '',
    reading(results),
    '',
    `Verified: every response was the expected 201 (200 for a settle); every account's balance equals ${whole(results.initialBalance)} minus the spends (and, for the service, the pairs) the clients counted for it, by SQL on \`user_tokens\`${typeof crud === 'string' ? '' : ' and on `bench_crud_accounts`'}, and through \`GET /v1/accounts/{id}/balance\` for ${whole(results.httpSampleSize)} accounts of each target.`,
    ...results.notes.map((note) => `\n${note}`),
  ];
  return lines.join('\n');
}

/** How the service's spends and pairs were interleaved. */
function rounds({ rounds: count, warmup, requests }: HttpBenchResults): string {
  const warmUps = warmup === 0 ? 'no warm-up' : `the warm-ups (${whole(warmup)} spends, then ${whole(warmup)} pairs) went before any timed phase`;
  if (count === 1) return `timed spends ran first, then as many timed hold + settle pairs (below); ${warmUps}`;
  const [fewest, most] = [Math.floor(requests / count), Math.ceil(requests / count)].map(whole);
  return `spends and hold + settle pairs (below) alternated in ${count} rounds of ${fewest === most ? fewest : `${fewest} to ${most}`} timed spends and as many timed pairs, the spends first in the first round, the pairs first in the second, and so on in turn, each phase after \`VACUUM (ANALYZE)\`; ${warmUps}`;
}

/** A hold + settle pair against the spend: the issue's bar is that a pair costs no more than two spends (pairs/s >= 0.5x spends/s). */
function holdSettleLine({ holdSettle, service, clients, warmup, requests, pairRatioByRound, pairCpuRatioByRound }: HttpBenchResults): string {
  const pairCpu = holdSettle.processCpuUsPerPair + holdSettle.postgresCpuUsPerPair;
  const twoSpendsCpu = 2 * (service.processCpuUsPerRequest + service.postgresCpuUsPerRequest);
  const byRound = pairRatioByRound.length > 1 ? ` (by round: ${pairRatioByRound.map((value) => pairRateRatio(value, 1)).join(', ')})` : '';
  const cpuByRound = pairCpuRatioByRound.length > 1 ? `; by round: ${pairCpuRatioByRound.map((value) => `${value.toFixed(2)}x`).join(', ')}${roundsSpread(pairCpuRatioByRound)}` : '';
  return `Hold + settle: ${clients} closed-loop clients ran ${whole(warmup)} warm-up and ${whole(requests)} timed pairs (\`POST .../holds\` of 2 tokens, then \`POST .../holds/{holdId}/settle\` of 1) on the same accounts, 1-minute load average ${holdSettle.loadAverage.toFixed(2)} at the first round's start: ${whole(holdSettle.pairsPerSecond)} pairs/s, ${pairRateRatio(holdSettle.pairsPerSecond, service.spendsPerSecond)} the spends/s${byRound} (a pair costing two spends would be 0.500x), p50 ${milliseconds(holdSettle.latency.p50Ms)} ms, p99 ${milliseconds(holdSettle.latency.p99Ms)} ms per pair; CPU per pair: process ${whole(holdSettle.processCpuUsPerPair)} µs, PostgreSQL ${whole(holdSettle.postgresCpuUsPerPair)} µs, ${whole(pairCpu)} µs in all against ${whole(twoSpendsCpu)} for two spends (${(pairCpu / twoSpendsCpu).toFixed(2)}x${cpuByRound}); afterwards every balance equals its purchase minus its spends and pairs, and nothing is held.`;
}

/**
 * The rounds' mean and its standard error, from three rounds on: how far the run's answer may be from
 * the machine's, when each round is one sample of it. A bar the mean misses by less than about two
 * standard errors is not settled by the run.
 */
export function roundsSpread(values: readonly number[]): string {
  if (values.length < 3) return '';
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1);
  return `; mean of the rounds ${mean.toFixed(2)}x, standard error ${Math.sqrt(variance / values.length).toFixed(2)}`;
}

/**
 * What the CPU columns imply: all the CPU a spend costs on this machine (server, PostgreSQL and the
 * load generator) bounds the rate at `cores` seconds of CPU per second. A measured rate near its
 * bound means the run was CPU-bound; far below, it waited on something else (locks, fsync, other load).
 */
function reading(results: HttpBenchResults): string {
  const bound = (name: string, measurement: SpendMeasurement) => {
    const parts = [measurement.processCpuUsPerRequest, measurement.postgresCpuUsPerRequest, measurement.loadGeneratorCpuUsPerRequest];
    const cpuUs = parts.reduce((sum, part) => sum + part, 0);
    const [server, postgres, client] = parts.map((part) => `${Math.round((part / cpuUs) * 100)}%`);
    return `${name} used ${whole(cpuUs)} µs of CPU per spend in all (server ${server}, PostgreSQL ${postgres}, load generator ${client}), which bounds it at about ${whole((results.cores * 1_000_000) / cpuUs)} spends/s on ${results.cores} cores (measured: ${whole(measurement.spendsPerSecond)})`;
  };
  const crud = typeof results.crud === 'string' ? '' : `; ${bound('the CRUD reference', results.crud)}`;
  return `Reading: ${bound('Token Ledger', results.service)}${crud}. A measured rate near its bound means the run was CPU-bound.`;
}

/** Ours over each reference that ran; nothing when neither did. */
function ratioTable(service: SpendMeasurement, crud: SpendMeasurement | string, pgbench: PgbenchMeasurement | string): string[] {
  const rows = [
    ...(typeof crud === 'string' ? [] : [`| / CRUD reference | ${ratio(service.spendsPerSecond, crud.spendsPerSecond)} | ${ratio(service.processCpuUsPerRequest, crud.processCpuUsPerRequest)} | ${ratio(service.postgresCpuUsPerRequest, crud.postgresCpuUsPerRequest)} |`]),
    ...(typeof pgbench === 'string' ? [] : [`| / pgbench INSERT | ${ratio(service.spendsPerSecond, pgbench.transactionsPerSecond)} | | ${ratio(service.postgresCpuUsPerRequest, pgbench.postgresCpuUsPerTransaction)} |`]),
  ];
  return rows.length === 0 ? [] : ['', '| Token Ledger / reference | Spends/s | Server process CPU per request | PostgreSQL CPU per request |', '|---|---:|---:|---:|', ...rows];
}

function spendRow(name: string, measurement: SpendMeasurement): string {
  const cells = [
    whole(measurement.spendsPerSecond),
    milliseconds(measurement.latency.p50Ms),
    milliseconds(measurement.latency.p99Ms),
    whole(measurement.processCpuUsPerRequest),
    whole(measurement.postgresCpuUsPerRequest),
    whole(measurement.loadGeneratorCpuUsPerRequest),
    measurement.loadAverage.toFixed(2),
  ];
  return `| ${name} | ${cells.join(' | ')} |`;
}

function pgbenchRow(measurement: PgbenchMeasurement, clients: number): string {
  const cells = [
    whole(measurement.transactionsPerSecond),
    milliseconds(measurement.latency.p50Ms),
    milliseconds(measurement.latency.p99Ms),
    '',
    whole(measurement.postgresCpuUsPerTransaction),
    `${whole(measurement.pgbenchCpuUsPerTransaction)} (pgbench)`,
    measurement.loadAverage.toFixed(2),
  ];
  return `| pgbench single-row INSERT, no HTTP (\`-c ${clients} -j 2 -T 10\`) | ${cells.join(' | ')} |`;
}

export const HTTP_SECTION_HEADING = '## HTTP: spends over the built service (`npm run bench:http`)';

/**
 * `document` with the results of a run over `users` accounts in place: each account count has its
 * own block between markers, so the default run and a `--users 100000` run are both kept. A new
 * block goes at the end of the HTTP section; the section is added at the end of the document the
 * first time.
 */
export function withHttpResults(document: string, users: number, rendered: string): string {
  const start = `<!-- http-results users=${users}:start -->`;
  const end = `<!-- http-results users=${users}:end -->`;
  const block = `${start}\n${rendered}\n${end}`;
  const startAt = document.indexOf(start);
  const endAt = document.indexOf(end);
  if (startAt >= 0 && endAt > startAt) return `${document.slice(0, startAt)}${block}${document.slice(endAt + end.length)}`;
  const headingAt = document.indexOf(HTTP_SECTION_HEADING);
  if (headingAt < 0) return `${document.trimEnd()}\n\n${HTTP_SECTION_HEADING}\n\n${block}\n`;
  const nextSectionAt = document.indexOf('\n## ', headingAt + HTTP_SECTION_HEADING.length);
  const sectionEnd = nextSectionAt < 0 ? document.length : nextSectionAt;
  return `${document.slice(0, sectionEnd).trimEnd()}\n\n${block}\n${document.slice(sectionEnd)}`;
}
