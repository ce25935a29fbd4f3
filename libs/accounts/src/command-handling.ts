import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { EventIdConflictError, READ_COUNT_MAX, WrongExpectedRevisionError, type EventMetadata, type EventStore, type JsonValue, type Position, type RecordedEvent } from '@app/event-store';
import { eventHash, HASH_METADATA_KEY, sealEvents } from '@app/audit';
import { fold, SnapshotRejected, type Decider } from '@app/ledger';
import { ConcurrencyConflictError } from './accounts.errors.js';
import { idempotentEventId, type IdempotentRequest } from './idempotent-request.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { PostgresSnapshotStore } from './snapshots/postgres-snapshot-store.js';
import { StreamStateCache } from './stream-state-cache.js';

export type DomainEvent = { readonly type: string; readonly data: JsonValue };

export type HandledCommand<State, Event> = {
  readonly state: State;
  /** The events this command appended; empty when it decided nothing (an idempotent repeat). */
  readonly events: readonly Event[];
  /** Position of the stream's last event after the command, for read-your-writes. */
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

/** A stream's state at a revision, and what a loader needs to go on from there. */
export type LoadedStream<State> = {
  readonly state: State;
  /** -1n for a stream with no events. */
  readonly revision: bigint;
  readonly position: Position | undefined;
  readonly lastEventId: string | undefined;
  /** Revision of the newest stored snapshot this process knows of; -1n for none. */
  readonly snapshotRevision: bigint;
  /**
   * The chain hash of the event at `revision` (null for a stream with no events), which the next
   * append's first event chains to. Undefined when that event was stored without one (written
   * before hashes on append): the next append computes it from the whole stream first.
   */
  readonly headHash: string | null | undefined;
};

export type CommandHandlingOptions = {
  /** Streams whose folded state stays in memory between commands (0 turns the cache off). */
  readonly cacheEntriesMax: number;
  /** Where snapshots are kept; without it, a stream not in the cache is replayed from its start. */
  readonly snapshots?: PostgresSnapshotStore;
  /** A new snapshot is written once a stream is this many events past its last one. */
  readonly snapshotIntervalEvents: number;
  /** A snapshot that was refused or could not be written; the command is unaffected. */
  readonly onSnapshotProblem?: (streamId: string, problem: string) => void;
};

export const DEFAULT_COMMAND_HANDLING_OPTIONS: CommandHandlingOptions = { cacheEntriesMax: 10_000, snapshotIntervalEvents: 500 };

export { ConcurrencyConflictError } from './accounts.errors.js';

export const CONFLICT_RETRIES_MAX = 5;

/** Events read per page while looking for an idempotent request's events. */
const FIND_PAGE_SIZE = 100;

type AnyDecider<Event, State> = Pick<Decider<unknown, Event, State>, 'evolve' | 'initialState' | 'snapshot'>;

/**
 * The whole command path: load the stream's state, decide, append at the expected revision; on a
 * conflict (another process wrote the stream), catch up and decide again, a bounded number of
 * times. Its cost does not grow with the stream: a state comes from the cache (no read at all) or a
 * verified snapshot plus the events after it.
 */
export class CommandHandling {
  private readonly locks = new KeyedMutex();
  private readonly cache: StreamStateCache<LoadedStream<unknown>>;

  constructor(
    private readonly store: EventStore,
    private readonly options: CommandHandlingOptions = DEFAULT_COMMAND_HANDLING_OPTIONS,
  ) {
    this.cache = new StreamStateCache(options.cacheEntriesMax);
  }

  async handle<Command, Event extends DomainEvent, State>(
    streamId: string,
    decider: Decider<Command, Event, State>,
    // May be async: a payment decision calls its provider under this stream's lock, so commands of
    // this process on the stream wait for it instead of racing it.
    decide: (state: State) => readonly Event[] | Promise<readonly Event[]>,
    metadata: EventMetadata,
    /**
     * A request with an Idempotency-Key: its events get ids derived from the request, and if an
     * earlier attempt of it already appended them, they are returned (`replayed`) instead of
     * deciding again. This is what makes a retry after a crash spend or credit nothing twice.
     */
    idempotent?: IdempotentRequest,
    /**
     * `readFirst`: catch up from the stream before deciding, even on a cached state. For decisions
     * with an effect outside the ledger (a provider capture or refund): the expected revision would
     * reject the append of a decision made on a stale state, but only after the effect happened.
     */
    options: { readonly readFirst?: boolean } = {},
  ): Promise<HandledCommand<State, Event>> {
    return this.locks.run(streamId, async () => {
      if (idempotent !== undefined) {
        const earlier = await this.findApplied<Event>(streamId, idempotent, idempotent.notBefore);
        if (earlier !== undefined) return { state: (await this.load(streamId, decider)).state, ...earlier };
      }
      // A cached state is trusted without a read: the append's expected revision rejects a decision
      // made on a state another process has moved past. One round trip per command in the common case.
      const cached = this.cache.get(streamId) as LoadedStream<State> | undefined;
      let loaded = cached ?? (await this.load(streamId, decider));
      let verified = cached === undefined;
      if (!verified && options.readFirst === true) {
        loaded = await this.catchUp(streamId, decider, loaded);
        verified = true;
      }
      for (let attempt = 1; ; attempt += 1) {
        let events: readonly Event[];
        try {
          events = await decide(loaded.state);
        } catch (error) {
          // A rejection is only final on a state read from the stream: a cached one may be behind.
          if (verified) {
            // ...and not when the state includes this very request, appended by an attempt running
            // alongside (a lapsed lease): its spend must not turn the retry into INSUFFICIENT_BALANCE.
            const earlier = idempotent === undefined ? undefined : await this.findApplied<Event>(streamId, idempotent, idempotent.notBefore);
            if (earlier !== undefined) return { state: loaded.state, ...earlier };
            throw error;
          }
          loaded = await this.catchUp(streamId, decider, loaded);
          verified = true;
          continue;
        }
        if (events.length === 0) {
          if (!verified) {
            loaded = await this.catchUp(streamId, decider, loaded);
          verified = true;
            continue;
          }
          await this.snapshotIfDue(streamId, decider, loaded);
          return { state: loaded.state, events, position: loaded.position };
        }
        const previousHash = loaded.headHash === undefined ? await this.recomputedHeadHash(streamId, loaded.revision) : loaded.headHash;
        loaded = { ...loaded, headHash: previousHash };
        // Sealed on the state this decision was made on: the expected revision below guarantees the
        // append extends exactly that chain, and a retry after a conflict reseals on the new state.
        const toAppend = sealEvents(
          streamId,
          loaded.revision + 1n,
          previousHash,
          events.map((event, index) => ({ id: idempotent === undefined ? randomUUID() : idempotentEventId(idempotent.requestId, index), type: event.type, data: event.data, metadata })),
        );
        try {
          const appended = await this.store.append(streamId, toAppend, { expectedRevision: loaded.revision < 0n ? 'no_stream' : loaded.revision });
          let headHash = storedHashOf(toAppend[toAppend.length - 1]?.metadata);
          if (idempotent !== undefined) {
            // Same ids at the same place are a success without a write: another attempt of this
            // request, deciding on the same state, got there first. Its events are the truth.
            const recorded = await this.store.readStream(streamId, { fromRevision: appended.nextRevision - BigInt(toAppend.length) + 1n, maxCount: toAppend.length });
            const ours = recorded.length === toAppend.length && recorded.every((event, index) => event.id === toAppend[index]?.id && event.type === toAppend[index].type && isDeepStrictEqual(event.data, toAppend[index].data));
            if (!ours) {
              const state = (await this.catchUp(streamId, decider, loaded)).state;
              return { state, events: recorded.map((event) => asEvent<Event>(event)), position: appended.position, replayed: true };
            }
            // Another attempt of this request may have appended the same events with other
            // metadata (its own request id), so another hash: the stored one is the head.
            headHash = storedHashOf(recorded[recorded.length - 1]?.metadata);
          }
          const after: LoadedStream<State> = {
            state: fold(decider, loaded.state, events),
            revision: appended.nextRevision,
            position: appended.position,
            lastEventId: toAppend[toAppend.length - 1]?.id,
            snapshotRevision: loaded.snapshotRevision,
            headHash,
          };
          this.cache.set(streamId, after);
          await this.snapshotIfDue(streamId, decider, after);
          return { state: after.state, events, position: after.position, readModelsCommitted: appended.hooksCommitted === true };
        } catch (error) {
          if (idempotent !== undefined && error instanceof EventIdConflictError) {
            // The ids are in the stream already, elsewhere than where this decision would go: an
            // earlier attempt of the request appended them (found however long ago that was).
            const earlier = await this.findApplied<Event>(streamId, idempotent, undefined);
            if (earlier === undefined) throw error;
            return { state: (await this.catchUp(streamId, decider, loaded)).state, ...earlier };
          }
          if (!(error instanceof WrongExpectedRevisionError)) throw error;
          if (attempt >= CONFLICT_RETRIES_MAX) throw new ConcurrencyConflictError(`stream ${streamId} kept changing during ${CONFLICT_RETRIES_MAX} attempts`);
          loaded = await this.catchUp(streamId, decider, loaded);
          verified = true;
        }
      }
    });
  }

  /**
   * The events an earlier attempt of `request` appended to the stream, if any: found by the derived
   * id of its first event, searching backwards from the end and stopping at events recorded before
   * `notBefore` (none of the request's can be older); without it, the whole stream.
   */
  private async findApplied<Event extends DomainEvent>(
    streamId: string,
    request: IdempotentRequest,
    notBefore: Date | undefined,
  ): Promise<{ events: readonly Event[]; position: Position; replayed: true } | undefined> {
    const firstId = idempotentEventId(request.requestId, 0);
    let from: bigint | undefined;
    for (;;) {
      const page = await this.store.readStream(streamId, { direction: 'backwards', maxCount: FIND_PAGE_SIZE, ...(from === undefined ? {} : { fromRevision: from }) });
      for (const recorded of page) {
        if (recorded.id === firstId) {
          const batch = await this.store.readStream(streamId, { fromRevision: recorded.revision, maxCount: FIND_PAGE_SIZE });
          const events: RecordedEvent[] = [];
          for (const [index, event] of batch.entries()) {
            if (event.id !== idempotentEventId(request.requestId, index)) break;
            events.push(event);
          }
          const last = events[events.length - 1] ?? recorded;
          return { events: events.map((event) => asEvent<Event>(event)), position: last.position, replayed: true };
        }
        if (notBefore !== undefined && recorded.createdAt.getTime() < notBefore.getTime()) return undefined;
      }
      const oldest = page[page.length - 1];
      if (page.length < FIND_PAGE_SIZE || oldest === undefined || oldest.revision === 0n) return undefined;
      from = oldest.revision - 1n;
    }
  }

  /** The stream's current state: from the cache or a snapshot when they can be trusted, then the newer events. */
  async load<Event extends DomainEvent, State>(streamId: string, decider: AnyDecider<Event, State>): Promise<LoadedStream<State>> {
    const start =
      (this.cache.get(streamId) as LoadedStream<State> | undefined) ??
      (await this.fromSnapshot(streamId, decider)) ?? { state: decider.initialState, revision: -1n, position: undefined, lastEventId: undefined, snapshotRevision: -1n, headHash: null };
    return this.catchUp(streamId, decider, start);
  }

  /** `start` plus the events appended after it, cached as the stream's newest known state. */
  private async catchUp<Event extends DomainEvent, State>(streamId: string, decider: AnyDecider<Event, State>, start: LoadedStream<State>): Promise<LoadedStream<State>> {
    const loaded = await this.readForward(streamId, decider, start);
    // `load` runs outside the stream's lock: a command may have cached a newer state while this read
    // ran, and an older one must never replace it.
    const cached = this.cache.get(streamId) as LoadedStream<State> | undefined;
    if (cached === undefined || cached.revision <= loaded.revision) this.cache.set(streamId, loaded);
    return loaded;
  }

  private async readForward<Event extends DomainEvent, State>(streamId: string, decider: AnyDecider<Event, State>, start: LoadedStream<State>): Promise<LoadedStream<State>> {
    let { state, revision, position, lastEventId, headHash } = start;
    for (;;) {
      const page = await this.store.readStream(streamId, { fromRevision: revision + 1n, maxCount: READ_COUNT_MAX });
      for (const recorded of page) {
        state = decider.evolve(state, asEvent<Event>(recorded));
        ({ revision, position } = recorded);
        lastEventId = recorded.id;
        headHash = storedHashOf(recorded.metadata);
      }
      if (page.length < READ_COUNT_MAX) return { state, revision, position, lastEventId, snapshotRevision: start.snapshotRevision, headHash };
    }
  }

  /**
   * The hash a stream's next event chains to when its head was stored without one: the chain over
   * revisions 0..`revision`, each hashed as if it had been sealed (the hash never covers itself), so
   * the first sealed event vouches for the whole unsealed prefix from then on. Paid once per such
   * stream: its next append stores a hash. Events up to `revision` never change, so no lock is needed.
   */
  private async recomputedHeadHash(streamId: string, revision: bigint): Promise<string | null> {
    let previous: string | null = null;
    let next = 0n;
    while (next <= revision) {
      const page = await this.store.readStream(streamId, { fromRevision: next, maxCount: READ_COUNT_MAX });
      for (const recorded of page) {
        if (next > revision) break;
        if (recorded.revision !== next) throw new Error(`stream ${streamId}: expected revision ${next}, read ${recorded.revision}`);
        previous = eventHash(recorded, previous);
        next += 1n;
      }
      if (page.length === 0) throw new Error(`stream ${streamId} ends before revision ${revision}`);
    }
    return previous;
  }

  /**
   * The stored snapshot, only if it is of the decider's schema version, intact, decodable, and still
   * matches the event at its revision (same id, and a state that agrees with it). Anything else is
   * reported and ignored: the caller replays instead.
   */
  private async fromSnapshot<Event extends DomainEvent, State>(streamId: string, decider: AnyDecider<Event, State>): Promise<LoadedStream<State> | undefined> {
    const schema = decider.snapshot;
    const store = this.options.snapshots;
    if (schema === undefined || store === undefined) return undefined;
    const stored = await store.load(streamId, schema.version);
    if (stored === undefined) return undefined;
    if (stored === 'corrupt') return this.refuse(streamId, 'checksum mismatch');
    let state: State;
    try {
      state = schema.decode(JSON.parse(stored.state));
    } catch (error) {
      if (!(error instanceof SnapshotRejected || error instanceof SyntaxError)) throw error;
      return this.refuse(streamId, error.message);
    }
    const [last] = await this.store.readStream(streamId, { fromRevision: stored.revision, maxCount: 1 });
    if (last === undefined || last.revision !== stored.revision || last.id !== stored.lastEventId) {
      return this.refuse(streamId, `revision ${stored.revision} is not event ${stored.lastEventId} in the stream`);
    }
    if (!schema.agreesWith(state, asEvent<Event>(last))) return this.refuse(streamId, `state disagrees with the event at revision ${stored.revision}`);
    return { state, revision: stored.revision, position: last.position, lastEventId: last.id, snapshotRevision: stored.revision, headHash: storedHashOf(last.metadata) };
  }

  private refuse(streamId: string, problem: string): undefined {
    this.options.onSnapshotProblem?.(streamId, `snapshot ignored, replaying: ${problem}`);
    return undefined;
  }

  private async snapshotIfDue<Event, State>(streamId: string, decider: AnyDecider<Event, State>, loaded: LoadedStream<State>): Promise<void> {
    const schema = decider.snapshot;
    const store = this.options.snapshots;
    if (schema === undefined || store === undefined || loaded.lastEventId === undefined) return;
    if (loaded.revision - loaded.snapshotRevision < BigInt(this.options.snapshotIntervalEvents)) return;
    try {
      await store.save({ streamId, schemaVersion: schema.version, revision: loaded.revision, lastEventId: loaded.lastEventId, state: JSON.stringify(schema.encode(loaded.state)) });
    } catch (error) {
      // The command has committed; a snapshot is only a shortcut, so its failure must not fail the command.
      this.options.onSnapshotProblem?.(streamId, `snapshot not written: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    this.cache.set(streamId, { ...loaded, snapshotRevision: loaded.revision });
  }
}

function storedHashOf(metadata: EventMetadata | undefined): string | undefined {
  const hash = metadata?.[HASH_METADATA_KEY];
  return typeof hash === 'string' ? hash : undefined;
}

function asEvent<Event>(recorded: RecordedEvent): Event {
  return { type: recorded.type, data: recorded.data } as Event;
}
