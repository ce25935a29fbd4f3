import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { runClosedLoop, type HttpRequest } from './closed-loop.js';
import { summarizeLatency, type LatencySummary } from './latency-summary.js';
import { readProcessTable, treeTicks } from './process-cpu.js';

/** A server under test: where to send spends, and which processes to charge the CPU to. */
export type SpendTarget = {
  readonly origin: string;
  readonly authorization: string;
  /** The server's node process; only its own time counts (the service's PostgreSQL is its child). */
  readonly processPid: number;
  readonly postmasterPid: number;
};

/** The same for every target: `accountByRequest[i]` is the account the i-th spend goes to, warm-up first. */
export type SpendPlan = {
  readonly clients: number;
  readonly warmup: number;
  readonly requests: number;
  readonly userIds: readonly string[];
  readonly accountByRequest: Uint32Array;
  /** Each spend with an Idempotency-Key of its own (a fresh UUID), as a retry-safe client sends it. */
  readonly keyed?: boolean;
};

export type SpendMeasurement = {
  readonly spendsPerSecond: number;
  readonly latency: LatencySummary;
  /** The timed requests' latencies, ascending: rounds of one run are summarized together. */
  readonly latenciesMs: Float64Array;
  readonly processCpuUsPerRequest: number;
  readonly postgresCpuUsPerRequest: number;
  readonly loadGeneratorCpuUsPerRequest: number;
  /** The 1-minute load average when the timed part started. */
  readonly loadAverage: number;
  /** 201s counted per account over the warm-up and the timed part: what each balance must have lost. */
  readonly spendsByAccount: Uint32Array;
};

export function usageRequest(userId: string, { keyed = false }: { readonly keyed?: boolean } = {}): HttpRequest {
  const request: HttpRequest = { method: 'POST', path: `/v1/accounts/${userId}/usage`, body: '{"amount":1}' };
  return keyed ? { ...request, headers: { 'idempotency-key': randomUUID() } } : request;
}

/**
 * Spends 1 token per request: `plan.warmup` requests, then `plan.requests` timed ones, during which
 * the CPU time of the target's process, of its PostgreSQL (the postmaster and all its children) and
 * of this process is measured. Every response must be 201.
 */
export async function measureSpends(target: SpendTarget, plan: SpendPlan, ticksPerSecond: number): Promise<SpendMeasurement> {
  const spendsByAccount = new Uint32Array(plan.userIds.length);
  const countSpend = (account: number) => (spendsByAccount[account] = (spendsByAccount[account] ?? 0) + 1);
  const spend = (offset: number, count: number) =>
    runClosedLoop({
      origin: target.origin,
      clients: plan.clients,
      count,
      authorization: target.authorization,
      expectedStatus: 201,
      request: (index) => usageRequest(plan.userIds[plan.accountByRequest[offset + index] as number] as string, { keyed: plan.keyed === true }),
      onExpected: (index) => countSpend(plan.accountByRequest[offset + index] as number),
    });
  if (plan.warmup > 0) await spend(0, plan.warmup);
  const loadAverage = loadavg()[0] ?? Number.NaN;
  const before = sampleCpu(target);
  const timed = await spend(plan.warmup, plan.requests);
  const after = sampleCpu(target);
  const microsecondsPerRequest = (ticks: number) => (ticks * 1_000_000) / ticksPerSecond / plan.requests;
  return {
    spendsPerSecond: plan.requests / (timed.elapsedMs / 1_000),
    latency: summarizeLatency(timed.latenciesMs),
    latenciesMs: timed.latenciesMs,
    processCpuUsPerRequest: microsecondsPerRequest(after.processTicks - before.processTicks),
    postgresCpuUsPerRequest: microsecondsPerRequest(after.postgresTicks - before.postgresTicks),
    loadGeneratorCpuUsPerRequest: (after.loadGeneratorUs - before.loadGeneratorUs) / plan.requests,
    loadAverage,
    spendsByAccount,
  };
}

export type CpuSample = { readonly processTicks: number; readonly postgresTicks: number; readonly loadGeneratorUs: number };

export function sampleCpu(target: SpendTarget): CpuSample {
  const table = readProcessTable();
  const server = table.find((entry) => entry.pid === target.processPid);
  if (server === undefined) throw new Error(`the process under test (pid ${target.processPid}) has ended`);
  if (!table.some((entry) => entry.pid === target.postmasterPid)) throw new Error(`the PostgreSQL postmaster (pid ${target.postmasterPid}) has ended`);
  const usage = process.cpuUsage();
  return { processTicks: server.ownTicks, postgresTicks: treeTicks(target.postmasterPid, table), loadGeneratorUs: usage.user + usage.system };
}
