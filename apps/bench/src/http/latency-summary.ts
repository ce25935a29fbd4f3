/** Latency percentiles of one measured phase, nearest-rank, so every reported value was observed. */
export type LatencySummary = { readonly count: number; readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number };

/**
 * The nearest-rank percentile of `sortedSamples` (ascending): the smallest sample that at least
 * `quantile` of all samples are at or below. An empty sample set or a quantile outside (0, 1] is a
 * programmer error.
 */
export function percentile(sortedSamples: ArrayLike<number>, quantile: number): number {
  if (sortedSamples.length === 0) throw new Error('percentile of no samples');
  if (!(quantile > 0 && quantile <= 1)) throw new Error(`quantile must be in (0, 1], not ${quantile}`);
  const index = Math.ceil(quantile * sortedSamples.length) - 1;
  return sortedSamples[index] as number;
}

/** p50, p99 and the maximum of `samplesMs`, which it sorts in place. */
export function summarizeLatency(samplesMs: Float64Array): LatencySummary {
  samplesMs.sort();
  return { count: samplesMs.length, p50Ms: percentile(samplesMs, 0.5), p99Ms: percentile(samplesMs, 0.99), maxMs: percentile(samplesMs, 1) };
}
