import { sealEvents } from '@app/audit';
import { AppendDeadlineExceededError, type AppendResult, type EventStore, type EventToAppend } from '@app/event-store';
import type { HandledCommand } from './command-handling.js';
import { AppendDeadlineError } from './event-sourcing.errors.js';
import { findEarlierAttempt, type EarlierAttempt } from './idempotent-append.js';
import type { IdempotentRequest } from './idempotent-request.js';
import type { DomainEvent, LoadedStream, StateDecider, StreamLoader } from './stream-loader.js';

/**
 * What both command paths (a command in a turn of its own, `LoneCommands`; commands decided
 * together, `CommandGroups`) do on a stream besides deciding: look for a keyed request's earlier
 * attempt and answer with it, and append sealed events at the revision a decision was made on.
 */
export class StreamWrites {
  constructor(
    readonly store: EventStore,
    readonly streams: StreamLoader,
  ) {}

  /**
   * Whether a keyed command looks for its earlier attempt before deciding: all do but a key's first
   * claim (IdempotentRequest.firstClaim) on a store whose event ids are unique across it
   * (PostgreSQL), where no attempt can exist but one of a purged key, whose ids the append then
   * finds. EventStoreDB, which would append those ids again at the stream's end, always looks.
   */
  looksFirst(idempotency: IdempotentRequest | undefined): boolean {
    return idempotency !== undefined && !(idempotency.firstClaim === true && this.store.postgres !== undefined);
  }

  /** The events a keyed request's earlier attempt appended, searched no further back than its key's first claim; none for a request without a key. */
  attemptOf<Event extends DomainEvent>(streamId: string, idempotency: IdempotentRequest | undefined): Promise<EarlierAttempt<Event> | undefined> {
    return idempotency === undefined ? Promise.resolve(undefined) : findEarlierAttempt<Event>(this.store, streamId, idempotency, { notBefore: idempotency.notBefore });
  }

  /** The answer of a request whose earlier attempt was found: that attempt's events, with the stream's current state. */
  async replay<Event extends DomainEvent, State>(streamId: string, decider: StateDecider<Event, State>, attempt: EarlierAttempt<Event>): Promise<HandledCommand<State, Event>> {
    return { state: (await this.streams.load(streamId, decider)).state, ...attempt };
  }

  /**
   * Seals `events` onto the stream's hash chain after `on` and appends them at its revision. Sealed
   * on the state the decision was made on: the expected revision guarantees the append extends
   * exactly that chain, and a retry after a conflict reseals on the new state. An append past its
   * deadline fails with AppendDeadlineError (503, ADR 0018).
   */
  async sealAndAppend(streamId: string, on: LoadedStream<unknown>, events: readonly EventToAppend[]): Promise<{ readonly toAppend: readonly EventToAppend[]; readonly appended: AppendResult }> {
    const previousHash = on.headHash === undefined ? await this.streams.recomputedHeadHash(streamId, on.revision) : on.headHash;
    const toAppend = sealEvents(streamId, on.revision + 1n, previousHash, events);
    try {
      return { toAppend, appended: await this.store.append(streamId, toAppend, { expectedRevision: on.revision < 0n ? 'no_stream' : on.revision }) };
    } catch (error) {
      if (error instanceof AppendDeadlineExceededError) throw new AppendDeadlineError(error.message, { deadlineMs: error.deadlineMs, applied: error.applied }, { cause: error });
      throw error;
    }
  }
}
