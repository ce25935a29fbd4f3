import { randomUUID } from 'node:crypto';
import { EventIdConflictError, WrongExpectedRevisionError, type EventMetadata, type Position } from '@app/event-store';
import { fold } from '@app/ledger';
import type { CommandRequest, HandledCommand } from './command-handling.js';
import { CONFLICT_RETRIES_MAX, conflictAfterRetries } from './event-sourcing.errors.js';
import { recordedAttempt } from './idempotent-append.js';
import { idempotentEventId } from './idempotent-request.js';
import type { LoneCommands } from './lone-commands.js';
import { storedHashOf, type DomainEvent, type LoadedStream, type StateDecider, type Verifiable } from './stream-loader.js';
import type { StreamWrites } from './stream-writes.js';

/** A command waiting for its stream's turn, with whoever awaits its outcome. */
export type Waiting = {
  readonly request: CommandRequest<unknown, DomainEvent, unknown>;
  readonly resolve: (handled: HandledCommand<unknown, DomainEvent>) => void;
  readonly reject: (error: unknown) => void;
};

/** A group's append: where it landed, whether its read models committed with it, and whether its events were read back (every id derived). */
type AppendedTogether = { readonly position: Position; readonly readModelsCommitted: boolean; readonly readBack: boolean };

/** One command's part of a decision taken together: its events and the state after them, or its refusal. */
type InTurn = { readonly events: readonly DomainEvent[]; readonly state: unknown } | { readonly refusal: unknown };

/**
 * Commands that queued on a stream while its previous append was in flight, decided together when
 * their turn comes: each on the state the ones before it leave, and all their events appended as
 * one, at one expected revision (ADR 0029). Keyed ones too, under ids derived from their requests
 * (ADR 0029, addendum). Whatever cannot be settled as a group is handed to `LoneCommands`.
 */
export class CommandGroups {
  constructor(
    private readonly writes: StreamWrites,
    private readonly alone: LoneCommands,
  ) {}

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
  async handle(streamId: string, group: readonly Waiting[]): Promise<void> {
    const [only] = group;
    if (only !== undefined && group.length === 1 && only.request.idempotency !== undefined) return this.eachAlone(group);
    const together = withoutRepeatedRequests(group);
    let pending = together;
    try {
      const decider = (group[0] as Waiting).request.decider;
      const cached = this.writes.streams.cached<unknown>(streamId);
      let loaded: Verifiable<unknown> = cached === undefined ? { ...(await this.writes.streams.load(streamId, decider)), verified: true } : { ...cached, verified: false };
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
            loaded = { ...(await this.writes.streams.catchUp(streamId, decider, loaded)), verified: true };
            continue;
          }
          await this.writes.streams.snapshotIfDue(streamId, decider, loaded);
          await this.settle(streamId, decider, pending, turns, { position: loaded.position });
          break;
        }
        let appended: AppendedTogether | undefined;
        try {
          appended = await this.appendTogether(streamId, decider, loaded, events, finalState(turns, loaded.state));
        } catch (error) {
          if (error instanceof EventIdConflictError) {
            // Nothing of the group was written: each command alone finds its earlier attempt, or decides again.
            await this.eachAlone(pending);
            break;
          }
          if (!(error instanceof WrongExpectedRevisionError)) throw error;
          if (attempt >= CONFLICT_RETRIES_MAX) throw conflictAfterRetries(streamId);
          attempt += 1;
          loaded = { ...(await this.writes.streams.catchUp(streamId, decider, loaded)), verified: true };
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
        waiting.resolve(await this.alone.handle(waiting.request));
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
    if (!group.some((waiting) => this.writes.looksFirst(waiting.request.idempotency))) return { others: group };
    const earlier = await Promise.all(group.map(({ request: { idempotency } }) => (this.writes.looksFirst(idempotency) ? this.writes.attemptOf(streamId, idempotency) : Promise.resolve(undefined))));
    if (earlier.every((found) => found === undefined)) return { others: group };
    const read = await this.writes.streams.load(streamId, decider);
    group.forEach((waiting, index) => {
      const found = earlier[index];
      if (found !== undefined) waiting.resolve({ state: read.state, ...found });
    });
    return { others: group.filter((_, index) => earlier[index] === undefined), read };
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
      if (decidedNothing && waiting.request.idempotency !== undefined && !this.writes.looksFirst(waiting.request.idempotency)) looks.push(this.answerUnlessAttemptFound(streamId, decider, waiting, answer));
      else answer();
    });
    await Promise.all(looks);
  }

  /** Answers the keyed command with its earlier attempt if one is in the stream, else with `answer`. Never throws. */
  private async answerUnlessAttemptFound(streamId: string, decider: StateDecider<DomainEvent, unknown>, waiting: Waiting, answer: () => void): Promise<void> {
    try {
      const found = await this.writes.attemptOf(streamId, waiting.request.idempotency);
      if (found === undefined) answer();
      else waiting.resolve(await this.writes.replay(streamId, decider, found));
    } catch (error) {
      waiting.reject(error);
    }
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
  ): Promise<AppendedTogether | undefined> {
    const { toAppend, appended } = await this.writes.sealAndAppend(
      streamId,
      on,
      events.map(({ id, event, metadata }) => ({ id: id ?? randomUUID(), type: event.type, data: event.data, metadata })),
    );
    let headHash = storedHashOf(toAppend[toAppend.length - 1]?.metadata);
    const readBack = appended.written !== true && events.every(({ id }) => id !== undefined);
    if (readBack) {
      const attempt = await recordedAttempt(this.writes.store, streamId, toAppend, appended.nextRevision);
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
    this.writes.streams.remember(streamId, after);
    await this.writes.streams.snapshotIfDue(streamId, decider, after);
    return { position: appended.position, readModelsCommitted: appended.hooksCommitted === true, readBack };
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

