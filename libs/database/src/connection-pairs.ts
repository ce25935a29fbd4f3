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

/** How long a task may wait for its turn, and what it fails with past that (a request's answer); no limit without it. */
export type TurnWait = { readonly waitMs: number; readonly busy: () => Error };

/** Runs `task` when one of the pool's places for work holding two connections is free (`connectionPairsMaxOf`). */
export function withConnectionPair<T>(pool: Pool, task: () => Promise<T>, wait?: TurnWait): Promise<T> {
  let slots = slotsByPool.get(pool);
  if (slots === undefined) {
    slots = new Slots(connectionPairsMaxOf(pool));
    slotsByPool.set(pool, slots);
  }
  return slots.run(task, wait);
}

const slotsByPool = new WeakMap<Pool, Slots>();

/** Runs at most `size` tasks at once, the others in arrival order as places free; one that waits past its `waitMs` leaves the line. */
class Slots {
  private readonly waiting: (() => void)[] = [];
  private running = 0;

  constructor(private readonly size: number) {}

  async run<T>(task: () => Promise<T>, wait?: TurnWait): Promise<T> {
    if (this.running >= this.size) await this.turn(wait);
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

  /** Resolves when a place passes to this task; rejects with `wait.busy()` if none has by `wait.waitMs`, the task then out of the line. */
  private turn(wait: TurnWait | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // Called by a task that ends, after the timer below is set.
      const take = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiting.push(take);
      const timer =
        wait === undefined
          ? undefined
          : setTimeout(() => {
              const index = this.waiting.indexOf(take);
              // Already handed a place (the timer lost the race): the task runs.
              if (index < 0) return;
              this.waiting.splice(index, 1);
              reject(wait.busy());
            }, wait.waitMs);
    });
  }
}
