/** Small measuring tools for the benchmarks: timed loops at a concurrency, and latency percentiles. */

export type Throughput = { readonly operations: number; readonly seconds: number; readonly perSecond: number };

/**
 * Runs `operation` from `concurrency` workers until `seconds` have passed and counts completions.
 * Each worker passes its index and its own counter, so operations can spread over keys.
 */
export async function throughput(concurrency: number, seconds: number, operation: (worker: number, iteration: number) => Promise<void>): Promise<Throughput> {
  const started = performance.now();
  const deadline = started + seconds * 1_000;
  let operations = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let iteration = 0; performance.now() < deadline; iteration += 1) {
        await operation(worker, iteration);
        operations += 1;
      }
    }),
  );
  const elapsedSeconds = (performance.now() - started) / 1_000;
  return { operations, seconds: elapsedSeconds, perSecond: operations / elapsedSeconds };
}

export type Latency = { readonly count: number; readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number };

/** Runs `operation` `count` times one after another and reports its latency percentiles. */
export async function latency(count: number, operation: (iteration: number) => Promise<void>): Promise<Latency> {
  const samples: number[] = [];
  for (let iteration = 0; iteration < count; iteration += 1) {
    const started = performance.now();
    await operation(iteration);
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  const at = (quantile: number) => samples[Math.min(samples.length - 1, Math.floor(quantile * samples.length))] ?? Number.NaN;
  return { count, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: samples[samples.length - 1] ?? Number.NaN };
}

/** Peak resident set size of this process so far, in MiB. */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1_024;
}

/** The middle value (the upper of the two middles for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((left, right) => left - right);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** `count` over `milliseconds` as a whole number per second, with thousands separators. */
export function rate(count: number, milliseconds: number): string {
  return Math.round(count / Math.max(milliseconds / 1000, 0.001)).toLocaleString('en-US');
}
