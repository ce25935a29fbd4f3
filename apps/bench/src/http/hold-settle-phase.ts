import { loadavg } from 'node:os';
import { Client } from 'undici';
import { summarizeLatency, type LatencySummary } from './latency-summary.js';
import { sampleCpu, type SpendPlan, type SpendTarget } from './spend-phase.js';

export type HoldSettleMeasurement = {
  readonly pairsPerSecond: number;
  /** Of the pair: from the hold's request to the settle's response. */
  readonly latency: LatencySummary;
  /** The timed pairs' latencies, ascending. */
  readonly latenciesMs: Float64Array;
  /** CPU time per pair of the service's process and of its PostgreSQL (postmaster and children). */
  readonly processCpuUsPerPair: number;
  readonly postgresCpuUsPerPair: number;
  /** The 1-minute load average when the timed part started. */
  readonly loadAverage: number;
  /** Settled pairs per account, warm-up included: each took exactly 1 token. */
  readonly pairsByAccount: Uint32Array;
};

const REQUEST_TIMEOUT_MS = 30_000;
const ERROR_BODY_LENGTH_MAX = 1_000;

/**
 * The AI-call pattern as an app would run it: reserve 2 tokens (`POST .../holds`), then settle 1
 * (`POST .../holds/{holdId}/settle`), which debits it and releases the rest in one append. Each of
 * `plan.clients` closed-loop clients runs one pair at a time on the plan's accounts (the spends'
 * sequence from its start): `plan.warmup` pairs, as the spends have their warm-up, then
 * `plan.requests` pairs timed whole. The first unexpected status fails the run.
 */
export async function measureHoldSettlePairs(target: SpendTarget, plan: SpendPlan, ticksPerSecond: number): Promise<HoldSettleMeasurement> {
  const pairsByAccount = new Uint32Array(plan.userIds.length);
  /** Sends the request and checks its status; the body is read whole (and parsed) only where `read` asks, as the spends' load generator reads none. */
  const post = async (connection: Client, path: string, body: string, expected: number, read: boolean): Promise<unknown> => {
    const response = await connection.request({ method: 'POST', path, headers: { authorization: target.authorization, 'content-type': 'application/json' }, body });
    if (response.statusCode !== expected) throw new Error(`POST ${path} answered ${response.statusCode}, not ${expected}: ${(await response.body.text()).slice(0, ERROR_BODY_LENGTH_MAX)}`);
    if (!read) {
      await response.body.dump();
      return undefined;
    }
    return response.body.json();
  };
  /** Pairs `offset` to `offset + count - 1` of the plan's sequence; each one's latency, in the order of the sequence. */
  const runPairs = async (offset: number, count: number): Promise<Float64Array> => {
    const latenciesMs = new Float64Array(count);
    let next = 0;
    let failure: Error | undefined;
    const client = async () => {
      const connection = new Client(target.origin, { pipelining: 1, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
      try {
        for (let index = next++; index < count && failure === undefined; index = next++) {
          const account = plan.accountByRequest[(offset + index) % plan.accountByRequest.length] as number;
          const userId = plan.userIds[account] as string;
          const started = performance.now();
          const hold = (await post(connection, `/v1/accounts/${userId}/holds`, '{"amount":2}', 201, true)) as { holdId?: unknown };
          if (typeof hold.holdId !== 'string') throw new Error(`POST /v1/accounts/${userId}/holds answered no holdId`);
          await post(connection, `/v1/accounts/${userId}/holds/${hold.holdId}/settle`, '{"amount":1}', 200, false);
          latenciesMs[index] = performance.now() - started;
          pairsByAccount[account] = (pairsByAccount[account] ?? 0) + 1;
        }
      } catch (error) {
        failure ??= error instanceof Error ? error : new Error(String(error));
      } finally {
        await connection.close();
      }
    };
    await Promise.all(Array.from({ length: plan.clients }, client));
    if (failure !== undefined) throw failure;
    return latenciesMs;
  };
  if (plan.warmup > 0) await runPairs(0, plan.warmup);
  const loadAverage = loadavg()[0] ?? Number.NaN;
  const before = sampleCpu(target);
  const started = performance.now();
  const latenciesMs = await runPairs(plan.warmup, plan.requests);
  const elapsedMs = performance.now() - started;
  const after = sampleCpu(target);
  const microsecondsPerPair = (ticks: number) => (ticks * 1_000_000) / ticksPerSecond / plan.requests;
  return {
    pairsPerSecond: plan.requests / (elapsedMs / 1_000),
    latency: summarizeLatency(latenciesMs),
    latenciesMs,
    processCpuUsPerPair: microsecondsPerPair(after.processTicks - before.processTicks),
    postgresCpuUsPerPair: microsecondsPerPair(after.postgresTicks - before.postgresTicks),
    loadAverage,
    pairsByAccount,
  };
}
