import { READ_COUNT_MAX, readStreamPages, type EventMetadata, type EventStore, type JsonValue, type Position, type RecordedEvent, type SnapshotRow } from '@app/event-store';
import { eventHash, HASH_METADATA_KEY } from '@app/audit';
import { SnapshotRejected, type Decider } from '@app/ledger';
import { snapshotChecksum, type PostgresSnapshotStore } from './snapshots/postgres-snapshot-store.js';
import { StreamStateCache } from './stream-state-cache.js';

export type DomainEvent = { readonly type: string; readonly data: JsonValue };

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

/** A loaded state, and whether it was read from the stream just now (else it came from the cache). */
export type Verifiable<State> = LoadedStream<State> & { readonly verified: boolean };

export type StreamLoaderOptions = {
  /** Streams whose folded state stays in memory between commands (0 turns the cache off). */
  readonly cacheEntriesMax: number;
  /** Where snapshots are kept; without it, a stream not in the cache is replayed from its start. */
  readonly snapshots?: PostgresSnapshotStore;
  /** A new snapshot is written once a stream is this many events past its last one. */
  readonly snapshotIntervalEvents: number;
  /** A snapshot that was refused or could not be written; the command is unaffected. */
  readonly onSnapshotProblem?: (streamId: string, problem: string) => void;
};

export type StateDecider<Event, State> = Pick<Decider<unknown, Event, State>, 'evolve' | 'initialState' | 'snapshot'>;

/**
 * A stream's current state, as cheaply as it can be trusted: from the in-memory cache (no read),
 * else from a verified snapshot plus the events after it, else by replaying the stream. On the
 * PostgreSQL store a stream not in memory costs one round trip (snapshot and events together).
 */
export class StreamLoader {
  private readonly cache: StreamStateCache<LoadedStream<unknown>>;

  constructor(
    private readonly store: EventStore,
    private readonly options: StreamLoaderOptions,
  ) {
    this.cache = new StreamStateCache(options.cacheEntriesMax);
  }

  /** The cached state, trusted without a read: an append's expected revision rejects a decision made on a stale one. */
  cached<State>(streamId: string): LoadedStream<State> | undefined {
    return this.cache.get(streamId) as LoadedStream<State> | undefined;
  }

  remember<State>(streamId: string, loaded: LoadedStream<State>): void {
    this.cache.set(streamId, loaded);
  }

  /** The stream's current state: from the cache or a snapshot when they can be trusted, then the newer events. */
  async load<Event extends DomainEvent, State>(streamId: string, decider: StateDecider<Event, State>): Promise<LoadedStream<State>> {
    const cached = this.cached<State>(streamId);
    if (cached !== undefined) return this.catchUp(streamId, decider, cached);
    const schema = decider.snapshot;
    const postgres = this.store.postgres;
    if (schema === undefined || this.options.snapshots === undefined || postgres === undefined) {
      return this.catchUp(streamId, decider, (await this.fromSnapshot(streamId, decider)) ?? emptyStream(decider.initialState));
    }
    const read = await postgres.readStreamFromSnapshot(streamId, schema.version, READ_COUNT_MAX);
    const pageFull = read.events.length === READ_COUNT_MAX;
    let start: LoadedStream<State> = emptyStream(decider.initialState);
    let events = read.events;
    if (read.snapshot !== undefined) {
      const snapshot = snapshotChecksum(read.snapshot.state) === read.snapshot.checksum ? read.snapshot : undefined;
      const trusted = snapshot === undefined ? this.refuse(streamId, 'checksum mismatch') : this.trusted(streamId, decider, snapshot, read.events[0]);
      // The page starts at the snapshot's revision: without a snapshot to start from, replay from 0.
      if (trusted === undefined) return this.catchUp(streamId, decider, start);
      start = trusted;
      events = read.events.slice(1);
    }
    const folded = foldRecorded(decider, start, events);
    return pageFull ? this.catchUp(streamId, decider, folded) : this.keep(streamId, folded);
  }

  /** `start` plus the events appended after it, cached as the stream's newest known state. */
  async catchUp<Event extends DomainEvent, State>(streamId: string, decider: StateDecider<Event, State>, start: LoadedStream<State>): Promise<LoadedStream<State>> {
    let loaded = start;
    for await (const page of readStreamPages(this.store, streamId, { fromRevision: start.revision + 1n })) loaded = foldRecorded(decider, loaded, page);
    return this.keep(streamId, loaded);
  }

  /**
   * The stream's state just after `revision`, not cached: the cached state when it is at that
   * revision (an attempt that was the stream's last append), else from the snapshot when it is not
   * past `revision` (and can be trusted), else from the start, folding the events up to `revision`;
   * undefined when that would fold more than `eventsMax` events (the one snapshot kept is usually
   * past an old revision, so a long stream would be read from its start).
   */
  async stateAt<Event extends DomainEvent, State>(streamId: string, decider: StateDecider<Event, State>, revision: bigint, { eventsMax }: { readonly eventsMax: number }): Promise<State | undefined> {
    const cached = this.cached<State>(streamId);
    if (cached?.revision === revision) return cached.state;
    const snapshot = await this.fromSnapshot(streamId, decider);
    let loaded = snapshot !== undefined && snapshot.revision <= revision ? snapshot : emptyStream(decider.initialState);
    const wanted = revision - loaded.revision;
    if (wanted > BigInt(eventsMax)) return undefined;
    if (wanted > 0n) {
      // Pages no larger than what is wanted: a full page would fetch events past `revision` only to leave them out.
      const pageSize = wanted < BigInt(READ_COUNT_MAX) ? Number(wanted) : READ_COUNT_MAX;
      for await (const page of readStreamPages(this.store, streamId, { fromRevision: loaded.revision + 1n, toRevision: revision, pageSize })) loaded = foldRecorded(decider, loaded, page);
    }
    if (loaded.revision !== revision) throw new Error(`stream ${streamId} ends at revision ${loaded.revision}, before revision ${revision}`);
    return loaded.state;
  }

  /**
   * The hash a stream's next event chains to when its head was stored without one: the chain over
   * revisions 0..`revision`, each hashed as if it had been sealed (the hash never covers itself), so
   * the first sealed event vouches for the whole unsealed prefix from then on. Paid once per such
   * stream: its next append stores a hash. Events up to `revision` never change, so no lock is needed.
   */
  async recomputedHeadHash(streamId: string, revision: bigint): Promise<string | null> {
    let previous: string | null = null;
    let next = 0n;
    for await (const page of readStreamPages(this.store, streamId, { toRevision: revision })) {
      for (const recorded of page) {
        if (recorded.revision !== next) throw new Error(`stream ${streamId}: expected revision ${next}, read ${recorded.revision}`);
        previous = eventHash(recorded, previous);
        next += 1n;
      }
    }
    if (next <= revision) throw new Error(`stream ${streamId} ends before revision ${revision}`);
    return previous;
  }

  /** Writes a snapshot when the stream is far enough past its last one; a failure is reported, never thrown. */
  async snapshotIfDue<Event, State>(streamId: string, decider: StateDecider<Event, State>, loaded: LoadedStream<State>): Promise<void> {
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

  /** Caches `loaded` unless a command cached a newer state meanwhile (loads run outside the stream's lock). */
  private keep<State>(streamId: string, loaded: LoadedStream<State>): LoadedStream<State> {
    const cached = this.cached<State>(streamId);
    if (cached === undefined || cached.revision <= loaded.revision) this.cache.set(streamId, loaded);
    return loaded;
  }

  /** The snapshot store's own two reads (snapshot, then the event at its revision): for stores without the one-round-trip read. */
  private async fromSnapshot<Event extends DomainEvent, State>(streamId: string, decider: StateDecider<Event, State>): Promise<LoadedStream<State> | undefined> {
    const schema = decider.snapshot;
    const store = this.options.snapshots;
    if (schema === undefined || store === undefined) return undefined;
    const stored = await store.load(streamId, schema.version);
    if (stored === undefined) return undefined;
    if (stored === 'corrupt') return this.refuse(streamId, 'checksum mismatch');
    const [last] = await this.store.readStream(streamId, { fromRevision: stored.revision, maxCount: 1 });
    return this.trusted(streamId, decider, stored, last);
  }

  /**
   * The snapshot's state (its checksum already checked), only if it decodes and still matches the event at its
   * revision (same id, and a state that agrees with it). Anything else is reported and ignored: the
   * caller replays instead, so a wrong snapshot costs time, never a wrong decision.
   */
  private trusted<Event extends DomainEvent, State>(
    streamId: string,
    decider: StateDecider<Event, State>,
    snapshot: Pick<SnapshotRow, 'revision' | 'lastEventId' | 'state'>,
    atRevision: RecordedEvent | undefined,
  ): LoadedStream<State> | undefined {
    const schema = decider.snapshot;
    if (schema === undefined) return undefined;
    let state: State;
    try {
      state = schema.decode(JSON.parse(snapshot.state));
    } catch (error) {
      if (!(error instanceof SnapshotRejected || error instanceof SyntaxError)) throw error;
      return this.refuse(streamId, error.message);
    }
    if (atRevision === undefined || atRevision.revision !== snapshot.revision || atRevision.id !== snapshot.lastEventId) {
      return this.refuse(streamId, `revision ${snapshot.revision} is not event ${snapshot.lastEventId} in the stream`);
    }
    if (!schema.agreesWith(state, asEvent<Event>(atRevision))) return this.refuse(streamId, `state disagrees with the event at revision ${snapshot.revision}`);
    return { state, revision: snapshot.revision, position: atRevision.position, lastEventId: atRevision.id, snapshotRevision: snapshot.revision, headHash: storedHashOf(atRevision.metadata) };
  }

  private refuse(streamId: string, problem: string): undefined {
    this.options.onSnapshotProblem?.(streamId, `snapshot ignored, replaying: ${problem}`);
    return undefined;
  }
}

function emptyStream<State>(initialState: State): LoadedStream<State> {
  return { state: initialState, revision: -1n, position: undefined, lastEventId: undefined, snapshotRevision: -1n, headHash: null };
}

function foldRecorded<Event extends DomainEvent, State>(decider: StateDecider<Event, State>, start: LoadedStream<State>, events: readonly RecordedEvent[]): LoadedStream<State> {
  let { state, revision, position, lastEventId, headHash } = start;
  for (const recorded of events) {
    state = decider.evolve(state, asEvent<Event>(recorded));
    ({ revision, position } = recorded);
    lastEventId = recorded.id;
    headHash = storedHashOf(recorded.metadata);
  }
  return { state, revision, position, lastEventId, snapshotRevision: start.snapshotRevision, headHash };
}

export function storedHashOf(metadata: EventMetadata | undefined): string | undefined {
  const hash = metadata?.[HASH_METADATA_KEY];
  return typeof hash === 'string' ? hash : undefined;
}

export function asEvent<Event>(recorded: RecordedEvent): Event {
  return { type: recorded.type, data: recorded.data } as Event;
}
