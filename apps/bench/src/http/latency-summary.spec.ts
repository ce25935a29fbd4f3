import { percentile, summarizeLatency } from './latency-summary.js';

describe('percentile (nearest rank)', () => {
  const oneToHundred = Float64Array.from({ length: 100 }, (_, index) => index + 1);

  it('returns the smallest sample that the given share of samples are at or below', () => {
    expect(percentile(oneToHundred, 0.5)).toBe(50);
    expect(percentile(oneToHundred, 0.99)).toBe(99);
    expect(percentile(oneToHundred, 1)).toBe(100);
    expect(percentile(oneToHundred, 0.001)).toBe(1);
  });

  it('returns only observed values, rounding the rank up between samples', () => {
    expect(percentile([10, 20, 30], 0.5)).toBe(20);
    expect(percentile([10, 20, 30, 40], 0.5)).toBe(20);
    expect(percentile([10, 20, 30, 40], 0.51)).toBe(30);
    expect(percentile([7], 0.99)).toBe(7);
  });

  it('refuses no samples and quantiles outside (0, 1]', () => {
    expect(() => percentile([], 0.5)).toThrow('percentile of no samples');
    expect(() => percentile([1], 0)).toThrow('quantile must be in (0, 1], not 0');
    expect(() => percentile([1], 1.5)).toThrow('quantile must be in (0, 1], not 1.5');
    expect(() => percentile([1], Number.NaN)).toThrow('quantile must be in (0, 1], not NaN');
  });
});

describe('summarizeLatency', () => {
  it('sorts the samples numerically and reports p50, p99 and the maximum', () => {
    // 1 to 200 in a shuffled order, with values whose text order differs from their numeric order.
    const samples = Float64Array.from({ length: 200 }, (_, index) => ((index * 77) % 200) + 1);
    expect(summarizeLatency(samples)).toEqual({ count: 200, p50Ms: 100, p99Ms: 198, maxMs: 200 });
  });
});
