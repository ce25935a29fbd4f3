import { randomUUID } from 'node:crypto';
import { AppendDeadlineExceededError, EventIdConflictError, WrongExpectedRevisionError, type AppendResult, type EventMetadata, type EventStore, type EventToAppend, type Position } from '@app/event-store';
import { sealEvents } from '@app/audit';
import { fold, type Decider, type Decision } from '@app/ledger';
import { AppendDeadlineError, ConcurrencyConflictError } from './event-sourcing.errors.js';
import { findEarlierAttempt, recordedAttempt, type EarlierAttempt } from './idempotent-append.js';
import { idempotentEventId, type IdempotentRequest } from './idempotent-request.js';
import { KeyedMutex } from './keyed-mutex.js';
import { asEvent, storedHashOf, StreamLoader, type DomainEvent, type LoadedStream, type StateDecider, type StreamLoaderOptions } from './stream-loader.js';

export { ConcurrencyConflictError } from './event-sourcing.errors.js';
export type { DomainEvent, LoadedStream } from './stream-loader.js';

export type HandledCommand<State, Event> = {
  readonly state: State;
  /** The events this command appended; empty when it decided nothing (an idempotent repeat). */
  readonly events: readonly Event[];
  /**
   * Position of the stream's last event after the command, for read-your-writes. For a command
   * decided together with others (ADR 0029) it is their append's, at or after its own events; its
   * `state` is the state after its own events.
   */
  readonly position: Position | undefined;
  /** True when this command's events and their read-model rows committed in one transaction (inline projections). */
  readonly readModelsCommitted?: boolean;
  /**
   * True when an idempotent request found its events already in the stream (an earlier attempt
   * appended them): `events` are those recorded events, `position` is the last one's, and nothing
   * was decided or appended now.
   */
  readonly replayed?: boolean;
};

/** One command for `CommandHandling.handle`. */
export type CommandRequest<Command, Event extends DomainEvent, State> = {
  readonly streamId: string;
  readonly decider: Decider<Command, Event, State>;
  /**
   * The decision on the stream's state. May be async: a payment decision calls its provider under
   * this stream's lock, so commands of this process on the stream wait for it instead of racing it.
   * A decide that folds its events anyway returns them with the state after them (a `Decision`),
   * which the command path then keeps instead of folding them again. A decision with an effect
   * outside the ledger must set `readFirst`: without it the command may be decided together with
   * others (ADR 0029), and decided again whenever their append conflicts.
   */
  readonly decide: (state: State) => readonly Event[] | Decision<Event, State> | Promise<readonly Event[] | Decision<Event, State>>;
  readonly metadata: EventMetadata;
  /**
   * A request with an Idempotency-Key: its events get ids derived from the request, and if an
   * earlier attempt of it already appended them, they are returned (`replayed`) instead of
   * deciding again. This is what makes a retry after a crash spend or credit nothing twice.
   */
  readonly idempotency?: IdempotentRequest;
  /**
   * Catch up from the stream before deciding, even on a cached state. For decisions with an effect
   * outside the ledger (a provider capture or refund): the expected revision would reject the append
   * of a decision made on a stale state, but only after the effect happened.
   */
  readonly readFirst?: boolean;
};

export type CommandHandlingOptions = StreamLoaderOptions;

export const DEFAULT_COMMAND_HANDLING_OPTIONS: CommandHandlingOptions = { cacheEntriesMax: 10_000, snapshotIntervalEvents: 500 };

/**
 * Decisions per command before CONCURRENCY_CONFLICT. Within a process commands on a stream queue
 * behind its mutex; across processes on one hot stream the one with the current state in memory
 * keeps winning and the other must read first, so it needs more tries than one race would.
 */
export const CONFLICT_RETRIES_MAX = 10;

/**
 * Commands decided together and appended as one at most: those that queued on a stream while its
 * previous append was in flight. Bounded so that one append stays a modest batch entry.
 */
export const TOGETHER_COMMANDS_MAX = 64;

/** A decision, the state it was made on, and the state after its events when the decision computed it. */
type Decided<Event, State> = { readonly events: readonly Event[]; readonly on: LoadedStream<State>; readonly after?: { readonly state: State } };

/** A command waiting for its stream's turn, with whoever awaits its outcome. */
type Waiting = {
  readonly request: CommandRequest<unknown, DomainEvent, unknown>;
  readonly resolve: (handled: HandledCommand<unknown, DomainEvent>) => void;
  readonly reject: (error: unknown) => void;
};

/** One command's part of a decision taken together: its events and the state after them, or its refusal. */
type InTurn = { readonly events: readonly DomainEvent[]; readonly state: unknown } | { readonly refusal: unknown };

/**
 * The whole command path: load the stream's state, decide, append at the expected revision; on a
 * conflict (another process wrote the stream), catch up and decide again, a bounded number of
 * times. Within a process, commands on one stream queue behind a per-stream mutex.
 *
 * Commands that queue on a stream while its append is in flight are decided together when their
 * turn comes: each on the state the ones before it leave, and all their events appended as one, at
 * one expected revision (a hot account then takes one append per group commit, not one per
 * command). Keyed ones too, under ids derived from their requests (ADR 0029, addendum); those
 * with `readFirst` keep a turn of their own.
 */
export class CommandHandling {
  private readonly locks = new KeyedMutex();
  private readonly streams: StreamLoader;
  /** Per stream, the group of commands that will take the next turn together, while it still takes more. */
  private readonly gathering = new Map<string, Waiting[]>();

  constructor(
    private readonly store: EventStore,
    options: CommandHandlingOptions = DEFAULT_COMMAND_HANDLING_OPTIONS,
  ) {
    this.streams = new StreamLoader(store, options);
  }

  handle<Command, Event extends DomainEvent, State>(request: CommandRequest<Command, Event, State>): Promise<HandledCommand<State, Event>> {
    if (request.readFirst !== true) {
      return new Promise<HandledCommand<State, Event>>((resolve, reject) =>
        this.gather({
          request: request as unknown as CommandRequest<unknown, DomainEvent, unknown>,
          resolve: resolve as unknown as (handled: HandledCommand<unknown, DomainEvent>) => void,
          reject,
        }),
      );
    }
    return this.locks.run(request.streamId, () => this.handleAlone(request));
  }

  /** The stream's current state (cache, snapshot and newer events), for reads that decide nothing. */
  load<Event extends DomainEvent, State>(streamId: string, decider: StateDecider<Event, State>): Promise<LoadedStream<State>> {
    return this.streams.load(streamId, decider);
  }

  /**
   * Adds the command to the group gathering on its stream, or starts one that takes the stream's
   * next turn. A group stops taking commands when its turn starts, when full, or when a command of
   * another decider arrives.
   */
  private gather(waiting: Waiting): void {
    const { streamId, decider } = waiting.request;
    const group = this.gathering.get(streamId);
    if (group !== undefined && group[0]?.request.decider === decider && group.length < TOGETHER_COMMANDS_MAX) {
      group.push(waiting);
      return;
    }
    const started = [waiting];
    this.gathering.set(streamId, started);
    void this.locks.run(streamId, () => {
      if (this.gathering.get(streamId) === started) this.gathering.delete(streamId);
      return this.handleTogether(streamId, started);
    });
  }

  /**
   * Decides the group's commands in turn and appends all their events as one. A refusal, or a
   * decision of nothing, is final only on the stream's state: once the append at the state's
   * revision commits, the state it was decided on was the stream's, however it was loaded; with no
   * events to append, a cached state is read from the stream first. On a conflict every command
   * is decided again on the caught-up state. Settles every waiting command; never throws.
   *
   * Keyed requests (ADR 0029, addendum): a keyed command alone in its group takes the lone path
   * unchanged. In a larger group each keyed command's earlier attempt is looked for before every
   * decision, after the group's last read of the stream (so a refusal never counts the request's own
   * earlier attempt), and one found is answered with it (`replayed`) and leaves the group; a key's
   * first claim on PostgreSQL is not looked for (`looksFirst`), only its refusal or decision of
   * nothing, in `settle`. The others' events get ids derived from their requests. When the store
   * refuses the group's ids (an attempt appended between the look and the append, from another
   * process), nothing of the group was written, and each command is handled alone, in order. A repeat of a request already in the
   * group waits for the group and is then handled alone, finding the first's events.
   */
  private async handleTogether(streamId: string, group: readonly Waiting[]): Promise<void> {
    const [only] = group;
    if (only !== undefined && group.length === 1 && only.request.idempotency !== undefined) return this.eachAlone(group);
    const together = withoutRepeatedRequests(group);
    let pending = together;
    try {
      const decider = (group[0] as Waiting).request.decider;
      const cached = this.streams.cached<unknown>(streamId);
      let loaded: Verifiable<unknown> = cached === undefined ? { ...(await this.streams.load(streamId, decider)), verified: true } : { ...cached, verified: false };
      for (let attempt = 1; ; ) {
        const looked = await this.answerEarlierAttempts(streamId, decider, pending);
        pending = looked.others;
        if (pending.length === 0) break;
        if (looked.read !== undefined) {
          // Some were found, by a read of the stream: decide on it, after looking again for the others.
          loaded = { ...looked.read, verified: true };
          continue;
        }
        const turns = await decideInTurn(pending, decider, loaded.state);
        const events = pending.flatMap((waiting, index) => {
          const turn = turns[index] as InTurn;
          return 'events' in turn ? turn.events.map((event, eventIndex) => ({ id: eventIdOf(waiting.request, eventIndex), event, metadata: waiting.request.metadata })) : [];
        });
        if (events.length === 0) {
          if (!loaded.verified) {
            loaded = { ...(await this.streams.catchUp(streamId, decider, loaded)), verified: true };
            continue;
          }
          await this.streams.snapshotIfDue(streamId, decider, loaded);
          await this.settle(streamId, decider, pending, turns, { position: loaded.position });
          break;
        }
        let appended: Awaited<ReturnType<CommandHandling['appendTogether']>>;
        try {
          appended = await this.appendTogether(streamId, decider, loaded, events, finalState(turns, loaded.state));
        } catch (error) {
          if (error instanceof EventIdConflictError) {
            // Nothing of the group was written: each command alone finds its earlier attempt, or decides again.
            await this.eachAlone(pending);
            break;
          }
          if (!(error instanceof WrongExpectedRevisionError)) throw error;
          if (attempt >= CONFLICT_RETRIES_MAX) throw new ConcurrencyConflictError(`stream ${streamId} kept changing during ${CONFLICT_RETRIES_MAX} attempts`);
          attempt += 1;
          loaded = { ...(await this.streams.catchUp(streamId, decider, loaded)), verified: true };
          continue;
        }
        if (appended === undefined) {
          // The store had these very ids at this place already (another process's attempts of the same
          // requests, decided otherwise): each command alone finds what was recorded.
          await this.eachAlone(pending);
          break;
        }
        if (!appended.readBack) {
          await this.settle(streamId, decider, pending, turns, appended);
          break;
        }
        // Every event's id was derived, and the store may have found them at this place without
        // writing: what those commands decided stands, but a refusal or a decision of nothing is
        // final only on a write at the revision it was decided on, so those go alone.
        const decided = turns.map((turn) => 'events' in turn && turn.events.length > 0);
        await this.settle(
          streamId,
          decider,
          pending.filter((_, index) => decided[index]),
          turns.filter((_, index) => decided[index]),
          appended,
        );
        await this.eachAlone(pending.filter((_, index) => !decided[index]));
        break;
      }
    } catch (error) {
      for (const waiting of pending) waiting.reject(error);
    }
    await this.eachAlone(group.filter((waiting) => !together.includes(waiting)));
  }

  /** Answers, in order, each command with a turn of its own (the stream's lock is held). Never throws. */
  private async eachAlone(commands: readonly Waiting[]): Promise<void> {
    for (const waiting of commands) {
      try {
        waiting.resolve(await this.handleAlone(waiting.request));
      } catch (error) {
        waiting.reject(error);
      }
    }
  }

  /**
   * Answers each keyed command whose earlier attempt is in the stream with that attempt's events,
   * on the stream's state read just after (`read`, undefined when none was found); returns the others.
   */
  private async answerEarlierAttempts(
    streamId: string,
    decider: StateDecider<DomainEvent, unknown>,
    group: readonly Waiting[],
  ): Promise<{ readonly others: readonly Waiting[]; readonly read?: LoadedStream<unknown> }> {
    if (!group.some((waiting) => this.looksFirst(waiting.request.idempotency))) return { others: group };
    const earlier = await Promise.all(group.map(({ request: { idempotency } }) => (this.looksFirst(idempotency) ? this.attemptOf(streamId, idempotency) : Promise.resolve(undefined))));
    if (earlier.every((found) => found === undefined)) return { others: group };
    const read = await this.streams.load(streamId, decider);
    group.forEach((waiting, index) => {
      const found = earlier[index];
      if (found !== undefined) waiting.resolve({ state: read.state, ...found });
    });
    return { others: group.filter((_, index) => earlier[index] === undefined), read };
  }

  /** The events a keyed request's earlier attempt appended, searched no further back than its key's first claim; none for a request without a key. */
  private attemptOf<Event extends DomainEvent>(streamId: string, idempotency: IdempotentRequest | undefined): Promise<EarlierAttempt<Event> | undefined> {
    return idempotency === undefined ? Promise.resolve(undefined) : findEarlierAttempt<Event>(this.store, streamId, idempotency, { notBefore: idempotency.notBefore });
  }

  /** The answer of a request whose earlier attempt was found: that attempt's events, with the stream's current state. */
  private async replay<Event extends DomainEvent, State>(streamId: string, decider: StateDecider<Event, State>, attempt: EarlierAttempt<Event>): Promise<HandledCommand<State, Event>> {
    return { state: (await this.streams.load(streamId, decider)).state, ...attempt };
  }

  /**
   * Answers each command of a group: its events and the state after them, at the group's position,
   * or its refusal. A command that was not looked for (`looksFirst`) and was refused or decided
   * nothing is answered last, once its earlier attempt is looked for: an attempt running alongside
   * (its lease taken over while this one ran) may have spent the balance, and is then the answer.
   * Never throws: a failed look fails only its own command.
   */
  private async settle(
    streamId: string,
    decider: StateDecider<DomainEvent, unknown>,
    group: readonly Waiting[],
    turns: readonly InTurn[],
    written: { readonly position: Position | undefined; readonly readModelsCommitted?: boolean },
  ): Promise<void> {
    const looks: Promise<void>[] = [];
    group.forEach((waiting, index) => {
      const turn = turns[index] as InTurn;
      const answer = (): void => {
        if ('refusal' in turn) waiting.reject(turn.refusal);
        else waiting.resolve({ state: turn.state, events: turn.events, position: written.position, ...(written.readModelsCommitted === undefined ? {} : { readModelsCommitted: written.readModelsCommitted }) });
      };
      const decidedNothing = 'refusal' in turn || turn.events.length === 0;
      if (decidedNothing && waiting.request.idempotency !== undefined && !this.looksFirst(waiting.request.idempotency)) looks.push(this.answerUnlessAttemptFound(streamId, decider, waiting, answer));
      else answer();
    });
    await Promise.all(looks);
  }

  /** Answers the keyed command with its earlier attempt if one is in the stream, else with `answer`. Never throws. */
  private async answerUnlessAttemptFound(streamId: string, decider: StateDecider<DomainEvent, unknown>, waiting: Waiting, answer: () => void): Promise<void> {
    try {
      const found = await this.attemptOf(streamId, waiting.request.idempotency);
      if (found === undefined) answer();
      else waiting.resolve(await this.replay(streamId, decider, found));
    } catch (error) {
      waiting.reject(error);
    }
  }

  /**
   * Whether a keyed command looks for its earlier attempt before deciding: all do but a key's first
   * claim (IdempotentRequest.firstClaim) on a store whose event ids are unique across it
   * (PostgreSQL), where no attempt can exist but one of a purged key, whose ids the append then
   * finds. EventStoreDB, which would append those ids again at the stream's end, always looks.
   */
  private looksFirst(idempotency: IdempotentRequest | undefined): boolean {
    return idempotency !== undefined && !(idempotency.firstClaim === true && this.store.postgres !== undefined);
  }

  /**
   * Seals the group's events onto the stream's hash chain, each with its command's metadata and id,
   * and appends them at the state's revision. When every id was derived from a request, the store may
   * have had them at this place already and reported success without writing: unless it says it
   * wrote them, the recorded events are then read back, and `undefined` is returned when they are
   * not these decisions.
   */
  private async appendTogether(
    streamId: string,
    decider: StateDecider<DomainEvent, unknown>,
    on: LoadedStream<unknown>,
    events: readonly { readonly id: string | undefined; readonly event: DomainEvent; readonly metadata: EventMetadata }[],
    state: unknown,
  ): Promise<{ readonly position: Position; readonly readModelsCommitted: boolean; readonly readBack: boolean } | undefined> {
    const { toAppend, appended } = await this.sealAndAppend(
      streamId,
      on,
      events.map(({ id, event, metadata }) => ({ id: id ?? randomUUID(), type: event.type, data: event.data, metadata })),
    );
    let headHash = storedHashOf(toAppend[toAppend.length - 1]?.metadata);
    const readBack = appended.written !== true && events.every(({ id }) => id !== undefined);
    if (readBack) {
      const attempt = await recordedAttempt(this.store, streamId, toAppend, appended.nextRevision);
      if (!attempt.ours) return undefined;
      // Recorded by another attempt of the same requests, its metadata (request ids) and so its hash may differ.
      headHash = storedHashOf(attempt.recorded[attempt.recorded.length - 1]?.metadata);
    }
    const after: LoadedStream<unknown> = {
      state,
      revision: appended.nextRevision,
      position: appended.position,
      lastEventId: toAppend[toAppend.length - 1]?.id,
      snapshotRevision: on.snapshotRevision,
      headHash,
    };
    this.streams.remember(streamId, after);
    await this.streams.snapshotIfDue(streamId, decider, after);
    return { position: appended.position, readModelsCommitted: appended.hooksCommitted === true, readBack };
  }

  /**
   * One command in a turn of its own, under the stream's lock: one that must read first, a keyed
   * request alone in its group (its events get derived ids and may be found from an earlier
   * attempt), or a command of a group that could not be appended as one.
   */
  private async handleAlone<Command, Event extends DomainEvent, State>(request: CommandRequest<Command, Event, State>): Promise<HandledCommand<State, Event>> {
    const { streamId, decider, idempotency } = request;
    // Not for a key's first claim on PostgreSQL (`looksFirst`). A refusal looks again, in
    // decideVerified, and a decision of nothing below: an attempt running alongside may have
    // appended since this look, before the state was read.
    const earlier = this.looksFirst(idempotency) ? await this.attemptOf<Event>(streamId, idempotency) : undefined;
    if (earlier !== undefined) return this.replay(streamId, decider, earlier);
    let loaded = await this.startingState(request);
    for (let attempt = 1; ; attempt += 1) {
      const decided = await this.decideVerified(request, loaded);
      if (!('on' in decided)) return decided;
      if (decided.events.length === 0) {
        const alongside = await this.attemptOf<Event>(streamId, idempotency);
        if (alongside !== undefined) return this.replay(streamId, decider, alongside);
        await this.streams.snapshotIfDue(streamId, decider, decided.on);
        return { state: decided.on.state, events: decided.events, position: decided.on.position };
      }
      try {
        return await this.append(request, decided);
      } catch (error) {
        if (!(error instanceof WrongExpectedRevisionError)) throw error;
        if (attempt >= CONFLICT_RETRIES_MAX) throw new ConcurrencyConflictError(`stream ${streamId} kept changing during ${CONFLICT_RETRIES_MAX} attempts`);
        loaded = { ...(await this.streams.catchUp(streamId, decider, decided.on)), verified: true };
      }
    }
  }

  /** A cached state is trusted without a read (one round trip per command); `readFirst` catches it up first. */
  private async startingState<Command, Event extends DomainEvent, State>(request: CommandRequest<Command, Event, State>): Promise<Verifiable<State>> {
    const cached = this.streams.cached<State>(request.streamId);
    if (cached === undefined) return { ...(await this.streams.load(request.streamId, request.decider)), verified: true };
    if (request.readFirst === true) return { ...(await this.streams.catchUp(request.streamId, request.decider, cached)), verified: true };
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
          loaded = { ...(await this.streams.catchUp(streamId, decider, loaded)), verified: true };
          continue;
        }
        // Not final when the state includes this very request, appended by an attempt running
        // alongside (a lapsed lease): its spend must not turn the retry into INSUFFICIENT_BALANCE.
        const earlier = await this.attemptOf<Event>(streamId, idempotency);
        if (earlier !== undefined) return { state: loaded.state, ...earlier };
        throw error;
      }
      const events = 'events' in decision ? decision.events : decision;
      if (events.length > 0 || loaded.verified) return { events, on: loaded, ...('events' in decision ? { after: { state: decision.state } } : {}) };
      loaded = { ...(await this.streams.catchUp(streamId, decider, loaded)), verified: true };
    }
  }

  /** Seals the decided events onto the stream's hash chain and appends them at the state's revision. */
  private async append<Command, Event extends DomainEvent, State>(request: CommandRequest<Command, Event, State>, decided: Decided<Event, State>): Promise<HandledCommand<State, Event>> {
    const { streamId, decider, idempotency, metadata } = request;
    const on = decided.on;
    let sealed;
    try {
      sealed = await this.sealAndAppend(
        streamId,
        on,
        decided.events.map((event, index) => ({ id: idempotency === undefined ? randomUUID() : idempotentEventId(idempotency.requestId, index), type: event.type, data: event.data, metadata })),
      );
    } catch (error) {
      if (idempotency === undefined || !(error instanceof EventIdConflictError)) throw error;
      // The ids are in the stream already, elsewhere than where this decision would go: an earlier
      // attempt of the request appended them (found however long ago that was).
      const earlier = await findEarlierAttempt<Event>(this.store, streamId, idempotency);
      if (earlier === undefined) throw error;
      return { state: (await this.streams.catchUp(streamId, decider, on)).state, ...earlier };
    }
    const { toAppend, appended } = sealed;
    let headHash = storedHashOf(toAppend[toAppend.length - 1]?.metadata);
    if (idempotency !== undefined && appended.written !== true) {
      const attempt = await recordedAttempt(this.store, streamId, toAppend, appended.nextRevision);
      if (!attempt.ours) {
        const state = (await this.streams.catchUp(streamId, decider, on)).state;
        return { state, events: attempt.recorded.map((event) => asEvent<Event>(event)), position: appended.position, replayed: true };
      }
      // Another attempt of this request may have appended the same events with other metadata (its
      // own request id), so another hash: the stored one is the head.
      headHash = storedHashOf(attempt.recorded[attempt.recorded.length - 1]?.metadata);
    }
    const after = afterAppend(decider, decided, toAppend, appended.nextRevision, appended.position, headHash);
    this.streams.remember(streamId, after);
    await this.streams.snapshotIfDue(streamId, decider, after);
    return { state: after.state, events: decided.events, position: after.position, readModelsCommitted: appended.hooksCommitted === true };
  }

  /**
   * Seals `events` onto the stream's hash chain after `on` and appends them at its revision. Sealed
   * on the state the decision was made on: the expected revision guarantees the append extends
   * exactly that chain, and a retry after a conflict reseals on the new state. An append past its
   * deadline fails with AppendDeadlineError (503, ADR 0018).
   */
  private async sealAndAppend(streamId: string, on: LoadedStream<unknown>, events: readonly EventToAppend[]): Promise<{ readonly toAppend: readonly EventToAppend[]; readonly appended: AppendResult }> {
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

/**
 * Each command of the group decided on the state the ones before it leave; a refusal leaves the
 * state as it was. A decision that folds its events returns the state after them, which is kept.
 */
async function decideInTurn(group: readonly Waiting[], decider: StateDecider<DomainEvent, unknown>, start: unknown): Promise<readonly InTurn[]> {
  const turns: InTurn[] = [];
  let state = start;
  for (const waiting of group) {
    // Folding its events belongs to the command too: if they do not fold (a bug), it fails alone.
    try {
      const decision = await waiting.request.decide(state);
      const events = 'events' in decision ? decision.events : decision;
      const after = 'events' in decision ? decision.state : fold(decider, state, events);
      turns.push({ events, state: after });
      state = after;
    } catch (refusal) {
      turns.push({ refusal });
    }
  }
  return turns;
}

/** The state after the last command of the group that decided anything, else the state the group started on. */
function finalState(turns: readonly InTurn[], start: unknown): unknown {
  for (let index = turns.length - 1; index >= 0; index -= 1) {
    const turn = turns[index] as InTurn;
    if ('state' in turn) return turn.state;
  }
  return start;
}

/** The id of a command's `index`-th event: derived from its request when it has an Idempotency-Key, else left to be random. */
function eventIdOf(request: CommandRequest<unknown, DomainEvent, unknown>, index: number): string | undefined {
  return request.idempotency === undefined ? undefined : idempotentEventId(request.idempotency.requestId, index);
}

/** The group less every keyed command that repeats the request of one before it: two attempts of one request are never decided together. */
function withoutRepeatedRequests(group: readonly Waiting[]): readonly Waiting[] {
  const requestIds = new Set<string>();
  return group.filter(({ request: { idempotency } }) => {
    if (idempotency === undefined) return true;
    if (requestIds.has(idempotency.requestId)) return false;
    requestIds.add(idempotency.requestId);
    return true;
  });
}

/** A loaded state, and whether it was read from the stream just now (else it came from the cache). */
type Verifiable<State> = LoadedStream<State> & { readonly verified: boolean };

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
