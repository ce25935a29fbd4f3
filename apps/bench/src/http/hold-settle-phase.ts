import { Client } from 'undici';
import { summarizeLatency, type LatencySummary } from './latency-summary.js';
import { sampleCpu, type SpendPlan, type SpendTarget } from './spend-phase.js';

export type HoldSettleMeasurement = {
  readonly pairsPerSecond: number;
  /** Of the pair: from the hold's request to the settle's response. */
  readonly latency: LatencySummary;
  /** CPU time per pair of the service's process and of its PostgreSQL (postmaster and children). */
  readonly processCpuUsPerPair: number;
  readonly postgresCpuUsPerPair: number;
  /** Settled pairs per account: each took exactly 1 token. */
  readonly pairsByAccount: Uint32Array;
};

const REQUEST_TIMEOUT_MS = 30_000;
const ERROR_BODY_LENGTH_MAX = 1_000;

/**
 * The AI-call pattern as an app would run it: reserve 2 tokens (`POST .../holds`), then settle 1
 * (`POST .../holds/{holdId}/settle`), which debits it and releases the rest in one append. Each of
 * `plan.clients` closed-loop clients runs one pair at a time on the plan's accounts (the spends'
 * sequence from its start), `plan.requests` pairs in all, timed whole. The first unexpected status
 * fails the run.
 */
export async function measureHoldSettlePairs(target: SpendTarget, plan: SpendPlan, ticksPerSecond: number): Promise<HoldSettleMeasurement> {
  const pairs = plan.requests;
  const latenciesMs = new Float64Array(pairs);
  const pairsByAccount = new Uint32Array(plan.userIds.length);
  let next = 0;
  let failure: Error | undefined;
  const post = async (connection: Client, path: string, body: string, expected: number): Promise<unknown> => {
    const response = await connection.request({ method: 'POST', path, headers: { authorization: target.authorization, 'content-type': 'application/json' }, body });
    const text = await response.body.text();
    if (response.statusCode !== expected) throw new Error(`POST ${path} answered ${response.statusCode}, not ${expected}: ${text.slice(0, ERROR_BODY_LENGTH_MAX)}`);
    return JSON.parse(text) as unknown;
  };
  const client = async () => {
    const connection = new Client(target.origin, { pipelining: 1, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
    try {
      for (let index = next++; index < pairs && failure === undefined; index = next++) {
        const account = plan.accountByRequest[index % plan.accountByRequest.length] as number;
        const userId = plan.userIds[account] as string;
        const started = performance.now();
        const hold = (await post(connection, `/v1/accounts/${userId}/holds`, '{"amount":2}', 201)) as { holdId?: unknown };
        if (typeof hold.holdId !== 'string') throw new Error(`POST /v1/accounts/${userId}/holds answered no holdId`);
        await post(connection, `/v1/accounts/${userId}/holds/${hold.holdId}/settle`, '{"amount":1}', 200);
        latenciesMs[index] = performance.now() - started;
        pairsByAccount[account] = (pairsByAccount[account] ?? 0) + 1;
      }
    } catch (error) {
      failure ??= error instanceof Error ? error : new Error(String(error));
    } finally {
      await connection.close();
    }
  };
  const before = sampleCpu(target);
  const started = performance.now();
  await Promise.all(Array.from({ length: plan.clients }, client));
  const elapsedMs = performance.now() - started;
  const after = sampleCpu(target);
  if (failure !== undefined) throw failure;
  const microsecondsPerPair = (ticks: number) => (ticks * 1_000_000) / ticksPerSecond / pairs;
  return {
    pairsPerSecond: pairs / (elapsedMs / 1_000),
    latency: summarizeLatency(latenciesMs),
    processCpuUsPerPair: microsecondsPerPair(after.processTicks - before.processTicks),
    postgresCpuUsPerPair: microsecondsPerPair(after.postgresTicks - before.postgresTicks),
    pairsByAccount,
  };
}
