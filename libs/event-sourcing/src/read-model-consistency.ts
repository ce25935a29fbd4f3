import { comparePositions, type Position } from '@app/event-store';
import { readCheckpoint, type ProjectionRunner } from '@app/projections';
import { Logger } from '@nestjs/common';
import type { Pool } from 'pg';

const POLL_INTERVAL_MS = 20;

/** Where a write landed, and whether its read-model rows committed with it (`HandledCommand` is one). */
export type Written = { readonly position: Position | undefined; readonly readModelsCommitted?: boolean };

/**
 * Read-your-writes: a write responds only once the read models include it, so the caller's next read
 * of balance or history shows it. A write whose rows committed with its events (inline projection,
 * PostgreSQL store) answers at once. Otherwise (EventStoreDB, an idempotent replay): with the
 * projection running in this process it waits on the runner; otherwise (another process leads the
 * projection) it polls the checkpoint that process writes. Bounded by `timeoutMs`: the write is
 * committed either way, and a timeout, or a checkpoint that cannot be read, is reported (`false`:
 * `readModelUpToDate: false`), not turned into a failure.
 */
export class ReadModelConsistency {
  private readonly logger = new Logger('ReadModelConsistency');

  constructor(
    private readonly pool: Pool,
    private readonly runner: ProjectionRunner | undefined,
    private readonly projectionName: string,
    private readonly timeoutMs: number,
  ) {}

  /**
   * `committedWithAppend`: the write's read-model rows committed in its own transaction (an inline
   * projection; `HandledCommand.readModelsCommitted`), so there is nothing to wait for.
   */
  async waitFor(position: Position | undefined, options: { readonly committedWithAppend?: boolean } = {}): Promise<boolean> {
    if (position === undefined || options.committedWithAppend === true) return true;
    const deadline = Date.now() + this.timeoutMs;
    let unreadable: unknown;
    if (this.runner !== undefined && this.runner.state !== 'stopped') {
      if (await this.runner.waitFor(position, this.timeoutMs)) return true;
      // The runner stopped before reaching it (this process lost the projection's leadership): the
      // process that leads it now may still reach it in time.
    }
    for (;;) {
      // A checkpoint that cannot be read (PostgreSQL unreachable) is not the write's failure: it has
      // committed, and is answered as not known to be in the read models, like a timeout. Thrown, it
      // was answered 503 DATABASE_UNAVAILABLE, which says nothing was written, and an unkeyed retry wrote twice.
      // Cut at the deadline: a server that accepts the connection and never answers (or a pool with
      // no connection free) would otherwise hold the committed write's answer past it.
      const read = readCheckpoint(this.pool, this.projectionName).catch((error: unknown) => {
        unreadable ??= error;
        return undefined;
      });
      const checkpoint = await withinMs(read, Math.max(0, deadline - Date.now()));
      if (checkpoint !== undefined && comparePositions(checkpoint, position) >= 0) return true;
      if (Date.now() >= deadline) {
        if (unreadable !== undefined) this.logger.warn(`${this.projectionName}'s checkpoint could not be read to answer a committed write (answered readModelUpToDate: false): ${unreadable instanceof Error ? unreadable.message : 'an unknown error'}`);
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    }
  }
}

/** What `promise` gives within `ms`, or undefined after `ms` (the promise is left to settle unread). */
async function withinMs<T>(promise: Promise<T | undefined>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
