import { setTimeout as delay } from 'node:timers/promises';
import { comparePositions, formatPosition, START, type EventStore, type Position, type RecordedEvent } from '@app/event-store';
import type { Pool, PoolClient } from 'pg';
import { applyEventByEvent } from './event-by-event.js';
import { claimCheckpoint, readCheckpoint, writeCheckpoint } from './checkpoints.js';
import { eventsNotAppliedInline, KEYED_PLANS } from './inline-projections.js';
import { clearProjectionFailure, recordProjectionFailure, type ProjectionFailure } from './projection-failures.js';
import type { Projection } from './projection.js';

export type ProjectionState = 'stopped' | 'catching_up' | 'running' | 'failed';

export type ProjectionRunnerOptions = {
  readonly batchSizeMax: number;
  readonly retryDelayMsMin: number;
  readonly retryDelayMsMax: number;
  /**
   * Batches of at least this many events go through the projection's set-based `bulkLoad.delta`
   * (one pass of SQL over the `events` table) instead of one statement per row change. Only for a
   * store whose events are in the read models' database (PostgreSQL); unset, every batch goes event
   * by event.
   */
  readonly setBasedBatchMin?: number;
  readonly onFailure?: (projection: string, failure: ProjectionFailure) => void;
  /**
   * A batch's faster pass failed and the batch is applied again the slower way (`BatchFallback`):
   * it then applies, or fails naming its event (`onFailure`, at every try). One that then applies is
   * worth a look: a pass that fails where the slower one does not is a defect of the projection (or
   * a passing error, a lock timeout), and costs every try.
   */
  readonly onFallback?: (projection: string, fallback: BatchFallback) => void;
  /**
   * After a batch near the head whose events were all applied inline, wait this long before reading
   * on (0: not at all). The checkpoint then trails inline writes by up to this much, and an event
   * appended without the inline projection waits up to this much longer to be applied.
   */
  readonly inlineWalkPauseMs?: number;
};

/**
 * A batch applied again the slower way: after the set-based delta failed on a data error (then event
 * by event), or after a round trip of event-by-event statements failed (then one statement at a time).
 */
export type BatchFallback = { readonly from: (typeof BATCH_FALLBACK_PASSES)[number]; readonly events: number; readonly error: string };

/** The faster passes a batch falls back from. */
export const BATCH_FALLBACK_PASSES = ['set-based', 'event-by-event'] as const;

export const DEFAULT_RUNNER_OPTIONS: ProjectionRunnerOptions = { batchSizeMax: 500, retryDelayMsMin: 100, retryDelayMsMax: 30_000, inlineWalkPauseMs: 100 };

/** A batch this large is cheaper as one set-based pass than as a statement per row change (PostgreSQL store only). */
export const SET_BASED_BATCH_MIN = 50;

const IDLE = Symbol('idle');

/** Another runner moved the checkpoint: this one's batch is void and it restarts from the table. */
class CheckpointMoved extends Error {}

class EventFailed extends Error {
  constructor(
    readonly event: RecordedEvent,
    cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
  }
}

/**
 * Follows `$all` from a projection's checkpoint and applies each batch's row changes together with
 * the new checkpoint in one transaction: a crash never applies an event twice nor skips one. An event
 * that fails stops the projection at that event; it is retried with bounded backoff, never skipped.
 */
export class ProjectionRunner {
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private checkpoint: Position | undefined;
  private readonly waiters = new Set<{ readonly position: Position; readonly resolve: (reached: boolean) => void }>();
  state: ProjectionState = 'stopped';
  failure: ProjectionFailure | undefined;
  /**
   * Batches applied by the set-based delta, and event by event, since this runner was made; and the
   * event-by-event batches whose round trips failed and were applied again one statement at a time.
   */
  readonly batches = { setBased: 0, eventByEvent: 0, setBasedFailed: 0, oneAtATime: 0 };
  /** Set when the current batch's connection holds prepared statements a failed round trip left: it is discarded, not pooled. */
  private connectionSpoiled = false;

  constructor(
    private readonly store: EventStore,
    private readonly pool: Pool,
    readonly projection: Projection,
    private readonly options: ProjectionRunnerOptions = DEFAULT_RUNNER_OPTIONS,
  ) {}

  get position(): Position | undefined {
    return this.checkpoint;
  }

  start(): void {
    if (this.loop !== undefined) return;
    const controller = new AbortController();
    this.controller = controller;
    this.loop = this.runWithRetries(controller.signal);
  }

  async stop(): Promise<void> {
    this.controller?.abort();
    await this.loop;
    this.loop = undefined;
    this.state = 'stopped';
    for (const waiter of [...this.waiters]) waiter.resolve(false);
  }

  /** Resolves true once the checkpoint reaches `position`, false after `timeoutMs` or on stop. */
  waitFor(position: Position, timeoutMs: number): Promise<boolean> {
    if (this.checkpoint !== undefined && comparePositions(this.checkpoint, position) >= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        position,
        resolve: (reached: boolean) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => waiter.resolve(false), timeoutMs);
      this.waiters.add(waiter);
    });
  }

  private async runWithRetries(signal: AbortSignal): Promise<void> {
    let attempts = 0;
    while (!signal.aborted) {
      try {
        await this.follow(signal, () => {
          attempts = 0;
          this.failure = undefined;
        });
        return;
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof CheckpointMoved) {
          // Another runner, or a rebuild's swap, moved the checkpoint: not a failure, follow it from there.
          await sleep(this.options.retryDelayMsMin, signal);
          continue;
        }
        attempts += 1;
        this.state = 'failed';
        const event = error instanceof EventFailed ? error.event : undefined;
        this.failure = {
          position: event === undefined ? 'unknown' : formatPosition(event.position),
          eventType: event?.type ?? 'unknown',
          error: error instanceof Error ? error.message : String(error),
          failedAt: new Date(),
          attempts,
        };
        this.options.onFailure?.(this.projection.name, this.failure);
        await this.recordFailure(this.failure);
        const delayMs = Math.min(this.options.retryDelayMsMin * 2 ** (attempts - 1), this.options.retryDelayMsMax);
        await sleep(delayMs, signal);
      }
    }
  }

  /**
   * Records the failure for every process to see (the status route). Best effort: the database may
   * be what failed; the failure is still reported (onFailure) and kept in memory, and the next one is
   * recorded again.
   */
  private async recordFailure(failure: ProjectionFailure): Promise<void> {
    await recordProjectionFailure(this.pool, this.projection.name, failure).catch(() => undefined);
  }

  private async follow(signal: AbortSignal, onProgress: () => void): Promise<void> {
    this.checkpoint = await readCheckpoint(this.pool, this.projection.name);
    this.releaseWaiters();
    this.state = 'catching_up';
    // Its own signal, so that leaving this loop (a failed batch, a moved checkpoint) ends the
    // subscription's wait for the next event instead of hanging until one arrives.
    const subscription = new AbortController();
    const iterator = this.store.subscribeToAll({ after: this.checkpoint ?? START, signal: AbortSignal.any([signal, subscription.signal]) })[Symbol.asyncIterator]();
    let pending = readAhead(iterator);
    try {
      for (;;) {
        const first = await pending;
        if (first.done === true) return;
        const batch: RecordedEvent[] = [first.value];
        pending = readAhead(iterator);
        while (batch.length < this.options.batchSizeMax) {
          const next = await Promise.race([pending, nextTurn()]);
          if (next === IDLE || next.done === true) break;
          batch.push(next.value);
          pending = readAhead(iterator);
        }
        const applied = await this.apply(batch);
        onProgress();
        // Near the head with nothing to apply, the events were applied inline with their append:
        // walking past them need not be eager. Pausing lets the next walk cover many more of them
        // in one transaction (events that do need applying wait at most this long).
        if (applied === 0 && batch.length < this.options.batchSizeMax) await sleep(this.options.inlineWalkPauseMs ?? 0, signal);
        // Caught up when no further event is ready right now (a peek: `pending` is kept for the next batch).
        this.state = (await Promise.race([pending, nextTurn()])) === IDLE ? 'running' : 'catching_up';
      }
    } finally {
      // Let the generator finish its pending read before it is closed.
      subscription.abort();
      await pending.catch(() => undefined);
      await iterator.return?.();
    }
  }

  /** Applies what the batch holds that the tables lack, and moves the checkpoint past it; returns how many events it applied. */
  private async apply(batch: readonly RecordedEvent[]): Promise<number> {
    const last = batch[batch.length - 1];
    if (last === undefined) return 0;
    let applied = 0;
    await this.inTransaction(last, async (client) => {
      const pending = await this.notAppliedInline(client, batch);
      applied = pending.length;
      if (pending.length === 0) return;
      if (this.setBasedFits(pending) && (await this.appliedSetBased(client, last.position, pending.length))) return;
      await this.applyEventByEvent(client, pending);
      this.batches.eventByEvent += 1;
    });
    this.checkpoint = last.position;
    this.releaseWaiters();
    return applied;
  }

  /**
   * The set-based delta, under a savepoint. A data error (SQLSTATE class 22 or 23) rolls back to it
   * and answers false: event by event then applies the same rows, or stops at the event that fails
   * and names it. Anything else (a lost connection) goes to the retry loop like any failed batch.
   */
  private async appliedSetBased(client: PoolClient, upTo: Position, events: number): Promise<boolean> {
    await client.query('SAVEPOINT set_based');
    try {
      await this.applySetBased(client, upTo);
    } catch (error) {
      if (!isDataError(error)) throw error;
      await client.query('ROLLBACK TO SAVEPOINT set_based');
      this.batches.setBasedFailed += 1;
      this.fellBack('set-based', events, error);
      return false;
    }
    await client.query('RELEASE SAVEPOINT set_based');
    this.batches.setBased += 1;
    return true;
  }

  /** The events of `batch` that no inline application put in the tables already. */
  private async notAppliedInline(client: PoolClient, batch: readonly RecordedEvent[]): Promise<readonly RecordedEvent[]> {
    const table = this.projection.bulkLoad?.inline?.appliedTransactions;
    return table === undefined ? batch : eventsNotAppliedInline(client, table, batch);
  }

  /** Claims the checkpoint, applies the batch and moves the checkpoint to `last`, in one transaction. */
  private async inTransaction(last: RecordedEvent, work: (client: PoolClient) => Promise<void>): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await this.claimUnmovedCheckpoint(client);
      await work(client);
      await writeCheckpoint(client, this.projection.name, last.position);
      await this.forgetPassedInlineTransactions(client, last.position);
      // Every batch, not only after a failure of this runner's: a leader that lost its leadership while
      // recording a failure (paused past its session's keepalive, ADR 0003) may store it after this
      // runner's first batch, and it would stand, on every process's status, until the next failure.
      // A primary-key delete of a row that is usually not there.
      await clearProjectionFailure(client, this.projection.name);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release(this.connectionSpoiled);
      this.connectionSpoiled = false;
    }
  }

  /**
   * The batch's row changes many to a round trip (`applyEventByEvent`; one statement a round trip
   * left PostgreSQL waiting on this process: a runner applying every event, as with EventStoreDB,
   * did about 800 events/s, and does 2,500 so, in `npm run bench:rebuild`), under a savepoint. A failed round trip names no event, so
   * the batch is rolled back to the savepoint and applied again one statement at a time: that stops
   * at the event that fails and names it, or applies the batch when the failure does not recur.
   */
  private async applyEventByEvent(client: PoolClient, batch: readonly RecordedEvent[]): Promise<void> {
    await client.query('SAVEPOINT event_by_event');
    try {
      await applyEventByEvent(client, this.projection, batch);
    } catch (error) {
      // Its prepared statements stay with the session.
      this.connectionSpoiled = true;
      // A connection that cannot roll back (lost) fails the batch with the round trip's own error.
      const rolledBack = await client.query('ROLLBACK TO SAVEPOINT event_by_event').then(
        () => true,
        () => false,
      );
      if (!rolledBack) throw error;
      this.batches.oneAtATime += 1;
      this.fellBack('event-by-event', batch.length, error);
      await this.applyOneAtATime(client, batch);
    }
    await client.query('RELEASE SAVEPOINT event_by_event');
  }

  private fellBack(from: BatchFallback['from'], events: number, error: unknown): void {
    this.options.onFallback?.(this.projection.name, { from, events, error: error instanceof Error ? error.message : String(error) });
  }

  private async applyOneAtATime(client: PoolClient, batch: readonly RecordedEvent[]): Promise<void> {
    for (const event of batch) {
      try {
        for (const change of this.projection.project(event)) await client.query(change.text, [...change.values]);
      } catch (error) {
        throw new EventFailed(event, error);
      }
    }
  }

  /**
   * The events after the checkpoint up to `upTo`, merged by the projection's delta statements. Every
   * event up to `upTo` was visible to the `$all` read that returned it, so every one of them has
   * committed and the statements see exactly this batch.
   */
  private async applySetBased(client: PoolClient, upTo: Position): Promise<void> {
    const from = this.checkpoint ?? START;
    const values = [from.commit.toString(), from.prepare.toString(), upTo.commit.toString(), upTo.prepare.toString()];
    // Reverted with the savepoint if the batch falls back to event by event, whose statements need no help.
    await client.query(KEYED_PLANS);
    for (const statement of this.projection.bulkLoad?.delta ?? []) await client.query(statement, values);
  }

  /** Large enough, and made only of events the delta statements handle or the projection ignores. */
  private setBasedFits(batch: readonly RecordedEvent[]): boolean {
    const bulk = this.projection.bulkLoad;
    const min = this.options.setBasedBatchMin;
    if (bulk === undefined || min === undefined || batch.length < min) return false;
    const handled = new Set(bulk.eventTypes);
    return batch.every((event) => handled.has(event.type) || this.projection.project(event).length === 0);
  }

  /**
   * Records of inline transactions the checkpoint has passed are no longer needed. Strictly before
   * the checkpoint's transaction: a batch may end inside one, whose later events are still ahead.
   */
  private async forgetPassedInlineTransactions(client: PoolClient, checkpoint: Position): Promise<void> {
    const table = this.projection.bulkLoad?.inline?.appliedTransactions;
    if (table === undefined) return;
    await client.query(`DELETE FROM ${table} WHERE transaction_id < $1::text::xid8`, [checkpoint.commit.toString()]);
  }

  /** Locks the checkpoint row and checks no other runner moved it since this one read it. */
  private async claimUnmovedCheckpoint(client: PoolClient): Promise<void> {
    const current = await claimCheckpoint(client, this.projection.name);
    if (comparePositions(current, this.checkpoint ?? START) !== 0) throw new CheckpointMoved(`checkpoint of ${this.projection.name} moved to ${formatPosition(current)}`);
  }

  private releaseWaiters(): void {
    const checkpoint = this.checkpoint;
    if (checkpoint === undefined) return;
    for (const waiter of [...this.waiters]) {
      if (comparePositions(checkpoint, waiter.position) >= 0) waiter.resolve(true);
    }
  }
}

/**
 * The subscription's next event, read while a batch is applied. A read that fails meanwhile must not
 * go unhandled (that would end the process): the rejection stays in the promise, and awaiting it
 * still throws, into the retry loop.
 */
function readAhead<T>(iterator: AsyncIterator<T>): Promise<IteratorResult<T>> {
  const next = iterator.next();
  next.catch(() => undefined);
  return next;
}

function isDataError(error: unknown): boolean {
  const code = error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : '';
  return code.startsWith('22') || code.startsWith('23');
}

function nextTurn(): Promise<typeof IDLE> {
  return new Promise((resolve) => setImmediate(() => resolve(IDLE)));
}

/** Waits `ms`, or less when `signal` aborts; never rejects. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => undefined);
}
