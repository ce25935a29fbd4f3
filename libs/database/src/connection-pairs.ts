import type { Pool } from 'pg';

/**
 * Work that holds one of a pool's connections and, holding it, asks the same pool for a second: an
 * account's verification or rebuild holds one for its transaction and reads the stream through the
 * store, which takes another. As many of them at once as the pool has connections would each hold
 * one and wait for one that never frees, and every read and command of the process would wait behind
 * them until the pool's timeout. At most half the pool less one (at least one) run at once on a pool,
 * verifications and rebuilds together; the others wait their turn holding no connection, in arrival
 * order (with EventStoreDB the stream is read from there and one connection is held: the cap then only
 * bounds the work and memory at once). Such work must not start another on the same pool from inside
 * (with one place it would wait for itself); none does.
 */
export function connectionPairsMaxOf(pool: Pool): number {
  return Math.max(1, Math.floor(((pool.options.max ?? 10) - 1) / 2));
}

/** Runs `task` when one of the pool's places for work holding two connections is free (`connectionPairsMaxOf`). */
export function withConnectionPair<T>(pool: Pool, task: () => Promise<T>): Promise<T> {
  let slots = slotsByPool.get(pool);
  if (slots === undefined) {
    slots = new Slots(connectionPairsMaxOf(pool));
    slotsByPool.set(pool, slots);
  }
  return slots.run(task);
}

const slotsByPool = new WeakMap<Pool, Slots>();

/** Runs at most `size` tasks at once, the others in arrival order as places free. */
class Slots {
  private readonly waiting: (() => void)[] = [];
  private running = 0;

  constructor(private readonly size: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running += 1;
    try {
      return await task();
    } finally {
      // The place passes to the next waiting task, or frees.
      const next = this.waiting.shift();
      if (next === undefined) this.running -= 1;
      else next();
    }
  }
}
