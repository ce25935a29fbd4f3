import type { EventMetadata, EventStore, Position } from '@app/event-store';
import type { Decider, Decision } from '@app/ledger';
import { CommandGroups, type Waiting } from './command-groups.js';
import type { IdempotentRequest } from './idempotent-request.js';
import { KeyedMutex } from './keyed-mutex.js';
import { LoneCommands } from './lone-commands.js';
import { StreamLoader, type DomainEvent, type LoadedStream, type StateDecider, type StreamLoaderOptions } from './stream-loader.js';
import { StreamWrites } from './stream-writes.js';

export { CONFLICT_RETRIES_MAX, ConcurrencyConflictError } from './event-sourcing.errors.js';
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
} & (
  | { readonly replayed?: false; readonly attemptRevision?: undefined }
  | {
      /**
       * An idempotent request found its events already in the stream (an earlier attempt appended
       * them): `events` are those recorded events, `position` is the last one's, and nothing was
       * decided or appended now. `state` is the stream's state now.
       */
      readonly replayed: true;
      /** The stream revision of the attempt's last event: `stateAt` there gives the state the attempt was answered on. */
      readonly attemptRevision: bigint;
    }
);

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
 * Commands decided together and appended as one at most: those that queued on a stream while its
 * previous append was in flight. Bounded so that one append stays a modest batch entry.
 */
export const TOGETHER_COMMANDS_MAX = 64;

/**
 * The command path's entry: commands on one stream queue behind a per-stream mutex, in arrival
 * order. One that must read first (`readFirst`) takes a turn of its own (`LoneCommands`: load,
 * decide, append at the expected revision; on a conflict with another process, catch up and decide
 * again, a bounded number of times). The others gather while the stream's append is in flight and
 * are decided together when their turn comes (`CommandGroups`): each on the state the ones before it
 * leave, all their events appended as one (a hot account then takes one append per group commit,
 * not one per command; ADR 0029), keyed ones under ids derived from their requests.
 */
export class CommandHandling {
  private readonly locks = new KeyedMutex();
  private readonly streams: StreamLoader;
  private readonly alone: LoneCommands;
  private readonly groups: CommandGroups;
  /** Per stream, the group of commands that will take the next turn together, while it still takes more. */
  private readonly gathering = new Map<string, Waiting[]>();

  constructor(store: EventStore, options: CommandHandlingOptions = DEFAULT_COMMAND_HANDLING_OPTIONS) {
    this.streams = new StreamLoader(store, options);
    const writes = new StreamWrites(store, this.streams);
    this.alone = new LoneCommands(writes);
    this.groups = new CommandGroups(writes, this.alone);
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
    return this.locks.run(request.streamId, () => this.alone.handle(request));
  }

  /**
   * The stream's state just after `revision` (a replayed request's `attemptRevision`): what its first
   * answer was given on, however the stream moved since. Not cached; it reads the stream up to there,
   * from the snapshot when that is not past it: undefined when more than `eventsMax` events would be folded.
   */
  stateAt<Event extends DomainEvent, State>(streamId: string, decider: StateDecider<Event, State>, revision: bigint, options: { readonly eventsMax: number }): Promise<State | undefined> {
    return this.streams.stateAt(streamId, decider, revision, options);
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
      return this.groups.handle(streamId, started);
    });
  }
}
