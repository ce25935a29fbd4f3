import { summarizeLatency } from './latency-summary.js';
import { measureHoldSettlePairs, type HoldSettleMeasurement } from './hold-settle-phase.js';
import { monotonicUs, type TimedPhase } from './profile-split.js';
import { measureSpends, type SpendMeasurement, type SpendPlan, type SpendTarget } from './spend-phase.js';

/** The spends and the hold + settle pairs of one service, measured in alternating rounds. */
export type AlternatingMeasurement = {
  readonly spends: SpendMeasurement;
  readonly pairs: HoldSettleMeasurement;
  /** Each round's pairs/s over its spends/s, in order: how much the ratio moved within the run. */
  readonly pairRatioByRound: readonly number[];
  /** Each round's CPU per pair (the service's process and its PostgreSQL) over that of two of its spends, in order. */
  readonly pairCpuRatioByRound: readonly number[];
  /** When each timed phase ran (monotonic µs, as a CPU profile's samples): `--cpu-prof` cuts the service's profile along them. */
  readonly timedPhases: readonly TimedPhase[];
};

/**
 * Whether round `round` (from 0) times its spends before its pairs: even rounds do, odd rounds time
 * the pairs first (A B, B A, ...). With the spends always first, whatever grows within a run (the
 * tables, the machine's other load) fell on the pairs of every round.
 */
export function spendsFirst(round: number): boolean {
  return round % 2 === 0;
}

/** A round's CPU per pair over that of two of its spends: the bar is at most 1. */
export function pairCpuRatio(spends: SpendMeasurement, pairs: HoldSettleMeasurement): number {
  return (pairs.processCpuUsPerPair + pairs.postgresCpuUsPerPair) / (2 * (spends.processCpuUsPerRequest + spends.postgresCpuUsPerRequest));
}

/**
 * The plan's warm-up as a phase of its own (its requests the warm-up's, from the sequence's start),
 * or undefined when it has none. measureAlternating runs it for the spends and then for the pairs
 * before either is timed: warmed only by its own kind before the first round's spends, the process
 * was colder for them than for the pairs after them, and the first round flattered the pairs.
 */
export function warmUpPlan(plan: SpendPlan): SpendPlan | undefined {
  return plan.warmup === 0 ? undefined : { ...plan, warmup: 0, requests: plan.warmup, accountByRequest: plan.accountByRequest.subarray(0, plan.warmup) };
}

/**
 * Round `round` (from 0) of `rounds`: its slice of the plan's timed requests (as even as they split;
 * the first rounds take one more), with no warm-up (warmUpPlan's goes before every round). Rounds go
 * through the plan's sequence after its warm-up, in order, so all of them together send exactly the
 * plan's timed requests.
 */
export function roundPlan(plan: SpendPlan, rounds: number, round: number): SpendPlan {
  if (!Number.isSafeInteger(rounds) || rounds < 1 || rounds > plan.requests) throw new Error(`rounds must be a whole number from 1 to the ${plan.requests} timed requests, not ${rounds}`);
  if (!Number.isSafeInteger(round) || round < 0 || round >= rounds) throw new Error(`round must be a whole number from 0 to ${rounds - 1}, not ${round}`);
  const base = Math.floor(plan.requests / rounds);
  const extra = plan.requests % rounds;
  const start = plan.warmup + round * base + Math.min(round, extra);
  const requests = base + (round < extra ? 1 : 0);
  return { ...plan, warmup: 0, requests, accountByRequest: plan.accountByRequest.subarray(start, start + requests) };
}

/** Rounds of spends as one measurement: rate over the summed time, CPU per request over every request, latencies of all. */
export function combineSpends(rounds: readonly SpendMeasurement[]): SpendMeasurement {
  const pool = pooled(rounds, (round) => round.spendsPerSecond);
  return {
    spendsPerSecond: pool.perSecond,
    latency: pool.latency,
    latenciesMs: pool.latenciesMs,
    processCpuUsPerRequest: pool.mean((round) => round.processCpuUsPerRequest),
    postgresCpuUsPerRequest: pool.mean((round) => round.postgresCpuUsPerRequest),
    loadGeneratorCpuUsPerRequest: pool.mean((round) => round.loadGeneratorCpuUsPerRequest),
    loadAverage: pool.loadAverage,
    spendsByAccount: summed(rounds.map((round) => round.spendsByAccount)),
  };
}

/** Rounds of pairs as one measurement, as combineSpends. */
export function combinePairs(rounds: readonly HoldSettleMeasurement[]): HoldSettleMeasurement {
  const pool = pooled(rounds, (round) => round.pairsPerSecond);
  return {
    pairsPerSecond: pool.perSecond,
    latency: pool.latency,
    latenciesMs: pool.latenciesMs,
    processCpuUsPerPair: pool.mean((round) => round.processCpuUsPerPair),
    postgresCpuUsPerPair: pool.mean((round) => round.postgresCpuUsPerPair),
    loadAverage: pool.loadAverage,
    pairsByAccount: summed(rounds.map((round) => round.pairsByAccount)),
  };
}

/**
 * The service's spends and pairs, alternating: the warm-up (warmUpPlan) of the spends and then of the
 * pairs, untimed; then in each of `rounds` rounds a slice of the timed spends and the same slice of
 * the sequence as pairs, in the order `spendsFirst` gives, each after `settle` (untimed). One phase
 * after the other would charge whatever drifts over a run (the machine's other load, the tables'
 * growth, the process warming up) to whichever phase ran later; alternating, in turns, spreads it
 * over both. The warm-ups' requests count in the totals per account, which the balances are checked against.
 */
export async function measureAlternating(options: {
  readonly target: SpendTarget;
  readonly plan: SpendPlan;
  readonly rounds: number;
  readonly ticksPerSecond: number;
  readonly settle: () => Promise<void>;
  readonly onRound?: (round: number, spends: SpendMeasurement, pairs: HoldSettleMeasurement) => void;
}): Promise<AlternatingMeasurement> {
  const warmUp = warmUpPlan(options.plan);
  const warmSpends = warmUp === undefined ? [] : [(await measureSpends(options.target, warmUp, options.ticksPerSecond)).spendsByAccount];
  const warmPairs = warmUp === undefined ? [] : [(await measureHoldSettlePairs(options.target, warmUp, options.ticksPerSecond)).pairsByAccount];
  const spends: SpendMeasurement[] = [];
  const pairs: HoldSettleMeasurement[] = [];
  const timedPhases: TimedPhase[] = [];
  for (let round = 0; round < options.rounds; round += 1) {
    const plan = roundPlan(options.plan, options.rounds, round);
    const timed = async <T>(kind: TimedPhase['kind'], measure: () => Promise<T>): Promise<T> => {
      await options.settle();
      const startedUs = monotonicUs();
      const measured = await measure();
      timedPhases.push({ kind, startedUs, endedUs: monotonicUs(), count: plan.requests });
      return measured;
    };
    const spend = () => timed('spends', () => measureSpends(options.target, plan, options.ticksPerSecond));
    const pair = () => timed('pairs', () => measureHoldSettlePairs(options.target, plan, options.ticksPerSecond));
    let spent: SpendMeasurement;
    let paired: HoldSettleMeasurement;
    if (spendsFirst(round)) {
      spent = await spend();
      paired = await pair();
    } else {
      paired = await pair();
      spent = await spend();
    }
    spends.push(spent);
    pairs.push(paired);
    options.onRound?.(round, spent, paired);
  }
  const combinedSpends = combineSpends(spends);
  const combinedPairs = combinePairs(pairs);
  return {
    spends: { ...combinedSpends, spendsByAccount: summed([combinedSpends.spendsByAccount, ...warmSpends]) },
    pairs: { ...combinedPairs, pairsByAccount: summed([combinedPairs.pairsByAccount, ...warmPairs]) },
    pairRatioByRound: pairs.map((paired, index) => paired.pairsPerSecond / (spends[index] as SpendMeasurement).spendsPerSecond),
    pairCpuRatioByRound: pairs.map((paired, index) => pairCpuRatio(spends[index] as SpendMeasurement, paired)),
    timedPhases,
  };
}

/**
 * What rounds of one kind share: each round's timed count is its number of latency samples, its time
 * that count over its rate; the rate is over the summed time, a per-request value the mean over every
 * request, the load average the first round's.
 */
function pooled<T extends { readonly latenciesMs: Float64Array; readonly loadAverage: number }>(rounds: readonly T[], perSecond: (round: T) => number) {
  const { loadAverage } = firstOf(rounds);
  const counts = rounds.map((round) => round.latenciesMs.length);
  const latenciesMs = concatenated(rounds.map((round) => round.latenciesMs));
  const weighted = (value: (round: T, count: number) => number) => rounds.reduce((sum, round, index) => sum + value(round, counts[index] as number), 0);
  return {
    perSecond: latenciesMs.length / weighted((round, count) => count / perSecond(round)),
    latency: summarizeLatency(latenciesMs),
    latenciesMs,
    mean: (value: (round: T) => number) => weighted((round, count) => value(round) * count) / latenciesMs.length,
    loadAverage,
  };
}

function firstOf<T>(rounds: readonly T[]): T {
  const first = rounds[0];
  if (first === undefined) throw new Error('no rounds to combine');
  return first;
}

function concatenated(parts: readonly Float64Array[]): Float64Array {
  const all = new Float64Array(parts.reduce((length, part) => length + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

function summed(parts: readonly Uint32Array[]): Uint32Array {
  const total = new Uint32Array(firstOf(parts).length);
  for (const part of parts) for (let index = 0; index < part.length; index += 1) total[index] = (total[index] as number) + (part[index] as number);
  return total;
}
