import { compareDrawOrder, decideTokenAccountWithState, tokenAccountDecider, type TokenAccountEvent, type TokenAccountState } from '@app/ledger';

/** An event as read from a stream, enough to replay it. */
export type ReplayableEvent = { readonly revision: bigint; readonly type: string; readonly data: unknown };

/** Where to stop: after the event at `revision`, or before the first event that occurred after `at` (the longest start of the stream that occurred at or before it). */
export type AsOf = { readonly revision: bigint } | { readonly at: Date };

export type StateAsOf<State> = {
  readonly state: State;
  /** The last event applied; -1n when none was. */
  readonly revision: bigint;
};

/**
 * The state of a stream at a point, replayed with the decider's `evolve`. Events are applied in
 * revision order and replay stops at the first event past the point: by time, that is the first
 * event whose `data.occurredAt` (the domain time, covered by the hash chain; not the store's
 * created time, which is not) is later than `at`. Always a prefix of the stream, so every state is
 * one the ledger really passed through, even if clocks of two writers disagreed.
 */
export function stateAsOf<Event, State>(events: Iterable<ReplayableEvent>, decider: Replayer<Event, State>, asOf: AsOf): StateAsOf<State> {
  const replay = new StreamReplay(decider, asOf);
  for (const event of events) if (!replay.add(event)) break;
  return replay.replayed;
}

type Replayer<Event, State> = { readonly evolve: (state: State, event: Event) => State; readonly initialState: State };

/**
 * `stateAsOf` a page at a time, for a stream too long to hold at once: `add` events in revision
 * order until it answers false (the event is past the point and was not applied); `replayed` is the
 * state reached so far.
 */
export class StreamReplay<Event, State> {
  private current: StateAsOf<State>;

  constructor(
    private readonly decider: Replayer<Event, State>,
    private readonly asOf: AsOf,
  ) {
    this.current = { state: decider.initialState, revision: -1n };
  }

  get replayed(): StateAsOf<State> {
    return this.current;
  }

  add(event: ReplayableEvent): boolean {
    const { asOf } = this;
    if ('revision' in asOf ? event.revision > asOf.revision : occurredAt(event) > asOf.at.getTime()) return false;
    const { state, revision } = this.current;
    if (event.revision !== revision + 1n) throw new Error(`replay expects revision ${revision + 1n}, found ${event.revision}`);
    this.current = { state: evolveAt(this.decider.evolve, state, event), revision: event.revision };
    return true;
  }
}

/**
 * An event the ledger refused to fold, named by where it is: an auditor or an operator looks at that
 * revision first. The message is the ledger's, after `revision N (Type): `.
 */
export class EventReplayError extends Error {
  constructor(
    readonly revision: bigint,
    readonly eventType: string,
    cause: unknown,
  ) {
    super(`revision ${revision} (${eventType}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'EventReplayError';
  }
}

/** `evolve(state, event)`, its refusal an EventReplayError naming the event's revision and type. */
export function evolveAt<Event, State>(evolve: (state: State, event: Event) => State, state: State, event: ReplayableEvent): State {
  try {
    return evolve(state, { type: event.type, data: event.data } as Event);
  } catch (error) {
    throw new EventReplayError(event.revision, event.type, error);
  }
}

/** What an account holds at a point: totals, the active holds and the lots with tokens left (draw-down order). */
export type TokenAccountSummary = {
  readonly balance: number;
  readonly held: number;
  readonly available: number;
  readonly holds: readonly { readonly holdId: string; readonly amount: number; readonly expiresAt: string }[];
  readonly lots: readonly {
    readonly lotId: string;
    readonly source: string;
    readonly remaining: number;
    readonly reserved: number;
    readonly priority: number;
    readonly expiresAt: string | null;
  }[];
  /**
   * Only for an account with disputes (so summaries signed before disputes existed stay the same):
   * the tokens lost disputes took back that the account did not hold (ADR 0024), and every dispute.
   */
  readonly shortfall?: number;
  readonly disputes?: readonly { readonly disputeId: string; readonly paymentId: string; readonly status: string }[];
  /**
   * Only by time, and only when some were due: the holds and lot remainders past their `expiresAt` at
   * that time whose expiry the events replayed do not record yet (the expiry job, or the next command,
   * records it later). The totals above count them expired, as every decision from that instant does;
   * during a shortfall, what those holds give back pays it first (`shortfallCovered`), a lot the
   * shortfall took before its own expiry included, so such a lot's tokens are not among `lots`.
   */
  readonly expiredUnrecorded?: {
    readonly holds: readonly { readonly holdId: string; readonly amount: number; readonly expiresAt: string }[];
    readonly lots: readonly { readonly lotId: string; readonly amount: number; readonly expiresAt: string }[];
    /** Only when there are some: what refunds held back and take as those holds give it back (ADR 0020), in the totals too. */
    readonly refunds?: readonly { readonly paymentId: string; readonly amount: number }[];
    /** Only when some: what the tokens those holds give back pay off of a shortfall of lost disputes (ADR 0024), in the totals too. */
    readonly shortfallCovered?: number;
  };
};

/**
 * A token account's summary at a point (zeros and nothing before its first event): what an auditor
 * reads as of a revision or time, and what a bundle's signed head states of its last event. As of a
 * revision, the state the events leave; as of a time, the state a decision at that instant sees: the
 * expiries due then are applied as the ledger's own sweep applies them (`expiredUnrecorded`).
 */
export function tokenAccountSummaryAsOf(events: Iterable<ReplayableEvent>, asOf: AsOf): TokenAccountSummary & { readonly revision: bigint } {
  return tokenAccountSummaryOf(stateAsOf<TokenAccountEvent, TokenAccountState>(events, tokenAccountDecider, asOf), asOf);
}

/** A token account's replay to a point, fed a page at a time (`add`, as `StreamReplay`); `tokenAccountSummaryOf(replay.replayed, asOf)` summarizes it. */
export function tokenAccountReplay(asOf: AsOf): StreamReplay<TokenAccountEvent, TokenAccountState> {
  return new StreamReplay<TokenAccountEvent, TokenAccountState>(tokenAccountDecider, asOf);
}

/** `tokenAccountSummaryAsOf` of a replay already made (`stateAsOf`, or `tokenAccountReplay` fed page by page) to `asOf`. */
export function tokenAccountSummaryOf(replayed: StateAsOf<TokenAccountState>, asOf: AsOf): TokenAccountSummary & { readonly revision: bigint } {
  const { revision } = replayed;
  // The expiry job's own decision at that instant (ExpireCredits), with what the tokens it frees pay
  // off of a shortfall. Its events are not kept: their user and transaction ids are placeholders.
  const swept = 'at' in asOf ? decideTokenAccountWithState({ type: 'ExpireCredits', data: { userId: '', transactionId: 'as-of', now: asOf.at } }, replayed.state) : { events: [], state: replayed.state };
  const state = swept.state;
  const holds = [...state.holds.values()]
    .map(({ holdId, amount, expiresAt }) => ({ holdId, amount, expiresAt }))
    .sort(compareHolds);
  const lots = [...state.lots.values()].sort(compareDrawOrder).map(({ lotId, source, remaining, reserved, priority, expiresAt }) => ({ lotId, source, remaining, reserved, priority, expiresAt }));
  const expired = swept.events;
  const refunds = expired.flatMap((event) => (event.type === 'TokensRefunded' ? [{ paymentId: event.data.paymentId, amount: event.data.amount }] : []));
  const shortfallCovered = expired.reduce((sum, event) => sum + (event.type === 'ShortfallCovered' ? event.data.amount : 0), 0);
  const summary = {
    balance: state.balance,
    held: state.held,
    available: state.balance - state.held,
    holds,
    lots,
    revision,
    ...(expired.length === 0
      ? {}
      : {
          expiredUnrecorded: {
            holds: expired.flatMap((event) => (event.type === 'HoldExpired' ? [{ holdId: event.data.holdId, amount: event.data.amount, expiresAt: event.data.expiresAt }] : [])),
            lots: expired.flatMap((event) => (event.type === 'LotExpired' ? [{ lotId: event.data.lotId, amount: event.data.amount, expiresAt: event.data.expiresAt }] : [])),
            ...(refunds.length === 0 ? {} : { refunds }),
            ...(shortfallCovered === 0 ? {} : { shortfallCovered }),
          },
        }),
  };
  if (state.disputes.size === 0) return summary;
  const disputes = [...state.disputes.values()].map(({ disputeId, paymentId, status }) => ({ disputeId, paymentId, status })).sort(compareDisputes);
  return { ...summary, shortfall: state.shortfall, disputes };
}

/** A token account's balance at a point (0 before its first event), as `tokenAccountSummaryAsOf` counts it. */
export function tokenAccountBalanceAsOf(events: Iterable<ReplayableEvent>, asOf: AsOf): { readonly balance: number; readonly revision: bigint } {
  const { balance, revision } = tokenAccountSummaryAsOf(events, asOf);
  return { balance, revision };
}

function occurredAt(event: ReplayableEvent): number {
  const value = typeof event.data === 'object' && event.data !== null ? (event.data as { occurredAt?: unknown }).occurredAt : undefined;
  const time = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(time)) throw new Error(`revision ${event.revision} (${event.type}) has no valid data.occurredAt`);
  return time;
}

/**
 * Text in UTF-16 code unit order, as RFC 8785 orders keys and as any verifier can reproduce: not
 * `localeCompare`, whose order follows the process's locale (until 2026-12-06 the summary's holds and
 * disputes were sorted so, and a bundle signed under one locale could fail under another).
 */
export function compareCodeUnits(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

/** The summary's holds: by expiry, then id. */
export function compareHolds(left: { readonly expiresAt: string; readonly holdId: string }, right: { readonly expiresAt: string; readonly holdId: string }): number {
  return compareCodeUnits(left.expiresAt, right.expiresAt) || compareCodeUnits(left.holdId, right.holdId);
}

/** The summary's disputes: by id. */
export function compareDisputes(left: { readonly disputeId: string }, right: { readonly disputeId: string }): number {
  return compareCodeUnits(left.disputeId, right.disputeId);
}
