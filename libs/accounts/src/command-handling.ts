import { randomUUID } from 'node:crypto';
import { READ_COUNT_MAX, WrongExpectedRevisionError, type EventMetadata, type EventStore, type JsonValue, type Position } from '@app/event-store';
import { fold, type Decider } from '@app/ledger';
import { KeyedMutex } from './keyed-mutex.js';

export type DomainEvent = { readonly type: string; readonly data: JsonValue };

export type HandledCommand<State, Event> = {
  readonly state: State;
  /** The events this command appended; empty when it decided nothing (an idempotent repeat). */
  readonly events: readonly Event[];
  /** Position of the stream's last event after the command, for read-your-writes. */
  readonly position: Position | undefined;
};

export type LoadedStream<State> = { readonly state: State; readonly revision: bigint; readonly position: Position | undefined };

/** Optimistic concurrency failed this many times in a row: the caller may retry the request. */
export class ConcurrencyConflictError extends Error {
  override readonly name = 'ConcurrencyConflictError';
}

export const CONFLICT_RETRIES_MAX = 5;

/**
 * The whole command path: load the stream, fold it, decide, append at the expected revision; on a
 * conflict (another process wrote the stream), reload and decide again, a bounded number of times.
 */
export class CommandHandling {
  private readonly locks = new KeyedMutex();

  constructor(private readonly store: EventStore) {}

  async handle<Command, Event extends DomainEvent, State>(
    streamId: string,
    decider: Decider<Command, Event, State>,
    decide: (state: State) => readonly Event[],
    metadata: EventMetadata,
  ): Promise<HandledCommand<State, Event>> {
    return this.locks.run(streamId, async () => {
      for (let attempt = 1; attempt <= CONFLICT_RETRIES_MAX; attempt += 1) {
        const loaded = await this.load(streamId, decider);
        const events = decide(loaded.state);
        if (events.length === 0) return { state: loaded.state, events, position: loaded.position };
        try {
          const appended = await this.store.append(
            streamId,
            events.map((event) => ({ id: randomUUID(), type: event.type, data: event.data, metadata })),
            { expectedRevision: loaded.revision < 0n ? 'no_stream' : loaded.revision },
          );
          return { state: fold(decider, loaded.state, events), events, position: appended.position };
        } catch (error) {
          if (!(error instanceof WrongExpectedRevisionError)) throw error;
        }
      }
      throw new ConcurrencyConflictError(`stream ${streamId} kept changing during ${CONFLICT_RETRIES_MAX} attempts`);
    });
  }

  /** Folds the whole stream, page by page. */
  async load<Event extends DomainEvent, State>(streamId: string, decider: Pick<Decider<unknown, Event, State>, 'evolve' | 'initialState'>): Promise<LoadedStream<State>> {
    let state = decider.initialState;
    let revision = -1n;
    let position: Position | undefined;
    for (;;) {
      const page = await this.store.readStream(streamId, { fromRevision: revision + 1n, maxCount: READ_COUNT_MAX });
      for (const recorded of page) {
        state = decider.evolve(state, { type: recorded.type, data: recorded.data } as Event);
        revision = recorded.revision;
        position = recorded.position;
      }
      if (page.length < READ_COUNT_MAX) return { state, revision, position };
    }
  }
}
