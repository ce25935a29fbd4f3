import { combinePairs, combineSpends, pairCpuRatio, roundPlan, spendsFirst, warmUpPlan } from './alternating-rounds.js';
import type { HoldSettleMeasurement } from './hold-settle-phase.js';
import type { SpendMeasurement, SpendPlan } from './spend-phase.js';

describe('roundPlan', () => {
  const plan: SpendPlan = { clients: 4, warmup: 3, requests: 10, userIds: ['a', 'b'], accountByRequest: Uint32Array.from({ length: 13 }, (_, index) => index) };

  it('gives no round a warm-up, and the rounds together exactly the timed requests after it, in order', () => {
    const rounds = [0, 1, 2].map((round) => roundPlan(plan, 3, round));
    expect(rounds.map((round) => round.warmup)).toEqual([0, 0, 0]);
    expect(rounds.map((round) => round.requests)).toEqual([4, 3, 3]);
    expect(rounds.map((round) => [...round.accountByRequest])).toEqual([
      [3, 4, 5, 6],
      [7, 8, 9],
      [10, 11, 12],
    ]);
  });

  it('is the plan without its warm-up in one round', () => {
    const only = roundPlan(plan, 1, 0);
    expect({ ...only, accountByRequest: [...only.accountByRequest] }).toEqual({ ...plan, warmup: 0, accountByRequest: [3, 4, 5, 6, 7, 8, 9, 10, 11, 12] });
  });

  it('makes the warm-up a phase of its own, from the start of the sequence, and none of no warm-up', () => {
    const warmUp = warmUpPlan(plan);
    expect(warmUp === undefined ? undefined : { ...warmUp, accountByRequest: [...warmUp.accountByRequest] }).toEqual({ ...plan, warmup: 0, requests: 3, accountByRequest: [0, 1, 2] });
    expect(warmUpPlan({ ...plan, warmup: 0 })).toBeUndefined();
  });

  it('refuses more rounds than timed requests, and a round outside them', () => {
    expect(() => roundPlan(plan, 11, 0)).toThrow('rounds must be a whole number from 1 to the 10 timed requests, not 11');
    expect(() => roundPlan(plan, 0, 0)).toThrow('rounds must be');
    expect(() => roundPlan(plan, 3, 3)).toThrow('round must be a whole number from 0 to 2, not 3');
  });
});

describe('combining rounds', () => {
  const spends = (count: number, perSecond: number, processUs: number, latencyMs: number, byAccount: number[]): SpendMeasurement => ({
    spendsPerSecond: perSecond,
    latency: { count, p50Ms: latencyMs, p99Ms: latencyMs, maxMs: latencyMs },
    latenciesMs: new Float64Array(count).fill(latencyMs),
    processCpuUsPerRequest: processUs,
    postgresCpuUsPerRequest: processUs / 2,
    loadGeneratorCpuUsPerRequest: 10,
    loadAverage: count,
    spendsByAccount: Uint32Array.from(byAccount),
  });

  it('rates spends over the summed time, CPU over every request, and latency percentiles over all samples', () => {
    // 100 spends in 1 s, then 300 in 3 s: 400 in 4 s.
    const combined = combineSpends([spends(100, 100, 1_000, 10, [60, 40]), spends(300, 100, 200, 30, [100, 200])]);
    expect(combined.spendsPerSecond).toBe(100);
    expect(combined.processCpuUsPerRequest).toBe(400);
    expect(combined.postgresCpuUsPerRequest).toBe(200);
    expect(combined.latency).toEqual({ count: 400, p50Ms: 30, p99Ms: 30, maxMs: 30 });
    expect(combined.loadAverage).toBe(100);
    expect([...combined.spendsByAccount]).toEqual([160, 240]);
  });

  it('weights each round by its time, not by its rate', () => {
    // 100 spends in 1 s and 100 in 0.5 s: 200 in 1.5 s, not the mean of 100 and 200.
    expect(combineSpends([spends(100, 100, 1, 1, [0]), spends(100, 200, 1, 1, [0])]).spendsPerSecond).toBeCloseTo(133.33, 2);
  });

  it('combines pairs the same way', () => {
    const pairs = (count: number, perSecond: number, processUs: number): HoldSettleMeasurement => ({
      pairsPerSecond: perSecond,
      latency: { count, p50Ms: 1, p99Ms: 1, maxMs: 1 },
      latenciesMs: Float64Array.from({ length: count }, (_, index) => index + 1),
      processCpuUsPerPair: processUs,
      postgresCpuUsPerPair: 2 * processUs,
      loadAverage: perSecond,
      pairsByAccount: Uint32Array.from([count]),
    });
    const combined = combinePairs([pairs(50, 50, 100), pairs(150, 150, 500)]);
    expect(combined.pairsPerSecond).toBe(100);
    expect(combined.processCpuUsPerPair).toBe(400);
    expect(combined.postgresCpuUsPerPair).toBe(800);
    // 1..50 twice, then 51..150 once: the 100th sample is 50, the 198th 148.
    expect(combined.latency).toEqual({ count: 200, p50Ms: 50, p99Ms: 148, maxMs: 150 });
    expect(combined.loadAverage).toBe(50);
    expect([...combined.pairsByAccount]).toEqual([200]);
  });

  it("compares a round's CPU per pair, process and PostgreSQL together, with two of its spends", () => {
    const spent = spends(100, 100, 300, 1, [0]);
    const paired: HoldSettleMeasurement = {
      pairsPerSecond: 50,
      latency: { count: 1, p50Ms: 1, p99Ms: 1, maxMs: 1 },
      latenciesMs: Float64Array.of(1),
      processCpuUsPerPair: 500,
      postgresCpuUsPerPair: 400,
      loadAverage: 1,
      pairsByAccount: Uint32Array.of(1),
    };
    // Two spends: 2 x (300 + 150) = 900 µs, as the pair's 500 + 400.
    expect(pairCpuRatio(spent, paired)).toBe(1);
    expect(pairCpuRatio(spent, { ...paired, postgresCpuUsPerPair: 490 })).toBeCloseTo(1.1, 10);
  });
});

describe('spendsFirst', () => {
  it('times the spends first in even rounds and the pairs first in odd ones, so neither phase always runs later', () => {
    expect([0, 1, 2, 3, 4, 5].map(spendsFirst)).toEqual([true, false, true, false, true, false]);
  });
});
