import { randomUUID } from 'node:crypto';
import { EventIdConflictError, WrongExpectedRevisionError, type EventToAppend, type Position } from '@app/event-store';
import { fold, type Decision } from '@app/ledger';
import type { CommandRequest, HandledCommand } from './command-handling.js';
import { CONFLICT_RETRIES_MAX, conflictAfterRetries } from './event-sourcing.errors.js';
import { attemptFrom, findEarlierAttempt, recordedAttempt } from './idempotent-append.js';
import { idempotentEventId } from './idempotent-request.js';
import { storedHashOf, type DomainEvent, type LoadedStream, type StateDecider, type Verifiable } from './stream-loader.js';
import type { StreamWrites } from './stream-writes.js';

/** A decision, the state it was made on, and the state after its events when the decision computed it. */
type Decided<Event, State> = { readonly events: readonly Event[]; readonly on: LoadedStream<State>; readonly after?: { readonly state: State } };

/**
 * Commands each in a turn of their own, under their stream's lock: load (a cached state is trusted
 * without a read), decide, append at the expected revision, and on a conflict catch up and decide
 * again, a bounded number of times. A keyed request looks for its earlier attempt first and appends
 * under ids derived from its request (ADR 0008).
 */
export class LoneCommands {
  constructor(private readonly writes: StreamWrites) {}

  /**
   * One command in a turn of its own, under the stream's lock: one that must read first, a keyed
   * request alone in its group (its events get derived ids and may be found from an earlier
   * attempt), or a command of a group that could not be appended as one.
   */
  async handle<Command, Event extends DomainEvent, State>(request: CommandRequest<Command, Event, State>): Promise<HandledCommand<State, Event>> {
    const { streamId, decider, idempotency } = request;
    // Not for a key's first claim on PostgreSQL (`looksFirst`). A refusal looks again, in
    // decideVerified, and a decision of nothing below: an attempt running alongside may have
    // appended since this look, before the state was read.
    const earlier = this.writes.looksFirst(idempotency) ? await this.writes.attemptOf<Event>(streamId, idempotency) : undefined;
    if (earlier !== undefined) return this.writes.replay(streamId, decider, earlier);
    let loaded = await this.startingState(request);
    for (let attempt = 1; ; attempt += 1) {
      const decided = await this.decideVerified(request, loaded);
      if (!('on' in decided)) return decided;
      if (decided.events.length === 0) {
        const alongside = await this.writes.attemptOf<Event>(streamId, idempotency);
        if (alongside !== undefined) return this.writes.replay(streamId, decider, alongside);
        await this.writes.streams.snapshotIfDue(streamId, decider, decided.on);
        return { state: decided.on.state, events: decided.events, position: decided.on.position };
      }
      try {
        return await this.append(request, decided);
      } catch (error) {
        if (!(error instanceof WrongExpectedRevisionError)) throw error;
        if (attempt >= CONFLICT_RETRIES_MAX) throw conflictAfterRetries(streamId);
        // What moved the stream may hold an attempt of this very request, running alongside (a lapsed
        // lease): it is the answer. Deciding again would append its ids a second time, which
        // EventStoreDB writes (it checks ids only at the expected revision; PostgreSQL refuses them).
        const alongside = await this.writes.attemptOf<Event>(streamId, idempotency);
        if (alongside !== undefined) return this.writes.replay(streamId, decider, alongside);
        loaded = { ...(await this.writes.streams.catchUp(streamId, decider, decided.on)), verified: true };
      }
    }
  }

  /** A cached state is trusted without a read (one round trip per command); `readFirst` catches it up first. */
  private async startingState<Command, Event extends DomainEvent, State>(request: CommandRequest<Command, Event, State>): Promise<Verifiable<State>> {
    const cached = this.writes.streams.cached<State>(request.streamId);
    if (cached === undefined) return { ...(await this.writes.streams.load(request.streamId, request.decider)), verified: true };
    if (request.readFirst === true) return { ...(await this.writes.streams.catchUp(request.streamId, request.decider, cached)), verified: true };
    return { ...cached, verified: false };
  }

  /**
   * Decides on `loaded`. A rejection or a decision of nothing is final only on a state read from the
   * stream (a cached one may be behind, and a stale state could wrongly refuse): on a cached state it
   * reads the newer events and decides again.
   */
  private async decideVerified<Command, Event extends DomainEvent, State>(
    request: CommandRequest<Command, Event, State>,
    start: Verifiable<State>,
  ): Promise<Decided<Event, State> | HandledCommand<State, Event>> {
    const { streamId, decider, idempotency } = request;
    let loaded = start;
    for (;;) {
      let decision: readonly Event[] | Decision<Event, State>;
      try {
        decision = await request.decide(loaded.state);
      } catch (error) {
        if (!loaded.verified) {
          loaded = { ...(await this.writes.streams.catchUp(streamId, decider, loaded)), verified: true };
          continue;
        }
        // Not final when the state includes this very request, appended by an attempt running
        // alongside (a lapsed lease): its spend must not turn the retry into INSUFFICIENT_BALANCE.
        const earlier = await this.writes.attemptOf<Event>(streamId, idempotency);
        if (earlier !== undefined) return { state: loaded.state, ...earlier };
        throw error;
      }
      const events = 'events' in decision ? decision.events : decision;
      if (events.length > 0 || loaded.verified) return { events, on: loaded, ...('events' in decision ? { after: { state: decision.state } } : {}) };
      loaded = { ...(await this.writes.streams.catchUp(streamId, decider, loaded)), verified: true };
    }
  }

  /** Seals the decided events onto the stream's hash chain and appends them at the state's revision. */
  private async append<Command, Event extends DomainEvent, State>(request: CommandRequest<Command, Event, State>, decided: Decided<Event, State>): Promise<HandledCommand<State, Event>> {
    const { streamId, decider, idempotency, metadata } = request;
    const on = decided.on;
    let sealed;
    try {
      sealed = await this.writes.sealAndAppend(
        streamId,
        on,
        decided.events.map((event, index) => ({ id: idempotency === undefined ? randomUUID() : idempotentEventId(idempotency.requestId, index), type: event.type, data: event.data, metadata })),
      );
    } catch (error) {
      if (idempotency === undefined || !(error instanceof EventIdConflictError)) throw error;
      // The ids are in the stream already, elsewhere than where this decision would go: an earlier
      // attempt of the request appended them (found however long ago that was).
      const earlier = await findEarlierAttempt<Event>(this.writes.store, streamId, idempotency);
      if (earlier === undefined) throw error;
      return { state: (await this.writes.streams.catchUp(streamId, decider, on)).state, ...earlier };
    }
    const { toAppend, appended } = sealed;
    let headHash = storedHashOf(toAppend[toAppend.length - 1]?.metadata);
    if (idempotency !== undefined && appended.written !== true) {
      const attempt = await recordedAttempt(this.writes.store, streamId, toAppend, appended.nextRevision);
      if (!attempt.ours) {
        // Another attempt of the request recorded its own decision there, starting where this one
        // would have, and it may hold more events than this one (expiries swept at its later time):
        // the answer is all of it, read on from its first event while the ids follow.
        const [first] = attempt.recorded;
        if (first === undefined) throw new Error(`the store reported the events of request ${idempotency.requestId} in ${streamId}, and none is there`);
        const earlier = await attemptFrom<Event>(this.writes.store, streamId, idempotency, first);
        return { state: (await this.writes.streams.catchUp(streamId, decider, on)).state, ...earlier };
      }
      // Another attempt of this request may have appended the same events with other metadata (its
      // own request id), so another hash: the stored one is the head.
      headHash = storedHashOf(attempt.recorded[attempt.recorded.length - 1]?.metadata);
    }
    const after = afterAppend(decider, decided, toAppend, appended.nextRevision, appended.position, headHash);
    this.writes.streams.remember(streamId, after);
    await this.writes.streams.snapshotIfDue(streamId, decider, after);
    return { state: after.state, events: decided.events, position: after.position, readModelsCommitted: appended.hooksCommitted === true };
  }
}

function afterAppend<Event extends DomainEvent, State>(
  decider: StateDecider<Event, State>,
  { on, events, after }: Decided<Event, State>,
  appended: readonly EventToAppend[],
  revision: bigint,
  position: Position,
  headHash: string | undefined,
): LoadedStream<State> {
  // The state the decision computed is the fold of its events on `on`: it is not folded again.
  const state = after === undefined ? fold(decider, on.state, events) : after.state;
  return { state, revision, position, lastEventId: appended[appended.length - 1]?.id, snapshotRevision: on.snapshotRevision, headHash };
}
