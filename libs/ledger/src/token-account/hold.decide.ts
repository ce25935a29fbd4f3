import type { Decision } from '../decider.js';
import { invariant, LedgerError } from '../ledger.errors.js';
import { sameMetadata, type Metadata } from '../metadata.js';
import { ACTIVE_HOLDS_MAX, HOLD_TTL_SECONDS_MAX, HOLD_TTL_SECONDS_MIN, isLotPriority, LIVE_LOTS_MAX, LOT_PRIORITY_MAX, LOT_PRIORITY_MIN } from '../ledger.limits.js';
import { assertBalanceFits } from './balance.rules.js';
import type { GrantTokens, HoldTokens, ReleaseHold, SettleHold, VoidGrant } from './hold.commands.js';
import type { GrantVoided, HoldExpired, HoldReleased, HoldSettled, LotExpired, TokensGranted, TokensHeld } from './hold.events.js';
import { isHoldActive, type Hold, type HoldEnd } from './hold.state.js';
import { assertNoShortfall } from './dispute.decide.js';
import type { TokensRefunded } from './payment.events.js';
import { refundDescription, type Payment } from './payment.state.js';
import { compareDrawOrder, derivedTransactionId, drawDown, freeOf, isLive, takeFromDraws, type Draw, type Lot, type LotSource, type LotStatus } from './lot.state.js';
import { availableBalance, evolveTokenAccount, type TokenAccountState } from './token-account.state.js';
import { assertAmount, assertDescription, assertMetadata, assertReason } from './token-account.rules.js';

type Sweep = { readonly userId: string; readonly now: Date; readonly transactionId: string };

/**
 * The expiries due at `now`, as events: holds past their `expiresAt` first (their reservations go
 * back to the lots), then what a refunded purchase's lot got back from ended holds (taken by the
 * refund: `TokensRefunded` with `heldAtRefund`), then the unreserved remainder of every lot past its
 * `expiresAt`. Every command decides these first (and again after itself: a settle or release gives
 * tokens back), so its decision and the events it appends agree on what is held and spendable at
 * `now`. `phase` keeps the derived transaction ids of the two sweeps of one command apart.
 */
export function expiriesDue(state: TokenAccountState, sweep: Sweep, phase: string): readonly Due[] {
  return sweepExpiries(state, sweep, phase).events;
}

type Due = HoldExpired | TokensRefunded | LotExpired;

/** `expiriesDue`'s events with the state after them (see `Decision`). */
export function sweepExpiries(state: TokenAccountState, { userId, now, transactionId }: Sweep, phase: string): Decision<Due, TokenAccountState> {
  if (!anyExpiryDue(state, now)) return { events: NOTHING_DUE, state };
  const events: Due[] = [];
  let current = state;
  const apply = (event: Due) => {
    events.push(event);
    current = evolveTokenAccount(current, event);
  };
  const occurredAt = now.toISOString();
  const dueHolds = [...state.holds.values()].filter((hold) => !isHoldActive(hold, now));
  dueHolds.sort((left, right) => left.expiresAtMs - right.expiresAtMs || compareText(left.holdId, right.holdId));
  for (const hold of dueHolds) {
    const data = { userId, holdId: hold.holdId, amount: hold.amount, expiresAt: hold.expiresAt, balanceAfter: current.balance, heldAfter: current.held - hold.amount, occurredAt };
    apply({ type: 'HoldExpired', data });
  }
  // One payment at a time, each on the state the previous take left: payments bought before lots
  // share the opening lot, and what a hold gives back there goes to them in payment id order.
  for (const paymentId of [...current.refundsHeldBack.keys()].sort(compareText)) {
    const due = heldBackDueOf(current, paymentId);
    if (due === undefined) continue;
    const { lot, payment, amount } = due;
    apply({
      type: 'TokensRefunded',
      data: {
        userId,
        transactionId: derivedTransactionId(transactionId, `refund-remainder:${payment.paymentId}:${phase}`),
        paymentId: payment.paymentId,
        amount,
        description: refundDescription(payment),
        balanceAfter: current.balance - amount,
        occurredAt,
        draws: [{ lotId: lot.lotId, amount }],
        heldAfter: current.held,
        heldAtRefund: true,
      },
    });
  }
  const dueLots = [...current.lots.values()].filter((lot) => !isLive(lot, now) && freeOf(lot) > 0).sort(compareDrawOrder);
  for (const lot of dueLots) {
    const amount = freeOf(lot);
    invariant(lot.expiresAt !== null, `lot ${lot.lotId} without expiry is due`);
    apply({
      type: 'LotExpired',
      data: {
        userId,
        transactionId: derivedTransactionId(transactionId, `lot-expired:${lot.lotId}:${phase}`),
        lotId: lot.lotId,
        amount,
        expiresAt: lot.expiresAt,
        draws: [{ lotId: lot.lotId, amount }],
        balanceAfter: current.balance - amount,
        heldAfter: current.held,
        occurredAt,
      },
    });
  }
  return { events, state: current };
}

const NOTHING_DUE: readonly Due[] = Object.freeze([]);

/**
 * Whether `expiriesDue` finds anything, without its lists and sorts: the common case of every
 * command, which sweeps twice. With no hold due the lots it would look at are the state's own.
 */
function anyExpiryDue(state: TokenAccountState, now: Date): boolean {
  return (
    state.holds.some((hold) => !isHoldActive(hold, now)) ||
    state.lots.some((lot) => !isLive(lot, now) && freeOf(lot) > 0) ||
    (state.refundsHeldBack.size > 0 && state.refundsHeldBack.some((_heldBack, paymentId) => heldBackDueOf(state, paymentId) !== undefined))
  );
}

/**
 * What the refund of `paymentId` held back (`refundsHeldBack`) and can take now: the free tokens a
 * hold's end gave back to the purchase's lot, up to what is still held back. The lot's free tokens
 * are 0 from the refund on until then (the refund took them), so they are the held part coming back.
 */
function heldBackDueOf(state: TokenAccountState, paymentId: string): { readonly lot: Lot; readonly payment: Payment; readonly amount: number } | undefined {
  const heldBack = state.refundsHeldBack.get(paymentId);
  const lot = heldBack === undefined ? undefined : state.lots.get(heldBack.lotId);
  const payment = state.payments.get(paymentId);
  if (heldBack === undefined || lot === undefined || payment === undefined) return undefined;
  const amount = Math.min(heldBack.amount, freeOf(lot));
  return amount > 0 ? { lot, payment, amount } : undefined;
}

function compareText(left: string, right: string): number {
  // Stryker disable next-line ConditionalExpression: `false` is equivalent, the ids sorted are keys of one map and never equal (`true` goes out with it: "the order of expiries due together" kills it)
  if (left === right) return 0;
  // Stryker disable next-line EqualityOperator: equivalent, `<=` differs from `<` only for equal ids, answered above
  return left < right ? -1 : 1;
}

/**
 * Sets tokens aside for work whose cost is known later. A repeat of an active hold's id with the
 * same amount and description decides nothing; with another payload, or the id of an ended hold, it
 * is refused (HOLD_ID_REUSED).
 */
export function holdTokens({ data }: HoldTokens, state: TokenAccountState): readonly TokensHeld[] {
  assertAmount(data.amount);
  assertDescription(data.description);
  assertMetadata(data.metadata);
  const ttlSecondsMax = Math.min(data.ttlSecondsMax, HOLD_TTL_SECONDS_MAX);
  if (!Number.isSafeInteger(data.ttlSeconds) || data.ttlSeconds < HOLD_TTL_SECONDS_MIN || data.ttlSeconds > ttlSecondsMax) {
    throw new LedgerError('HOLD_TTL_OUT_OF_RANGE', `expiresInSeconds must be an integer from ${HOLD_TTL_SECONDS_MIN} to ${ttlSecondsMax}`, {
      expiresInSeconds: data.ttlSeconds,
      min: HOLD_TTL_SECONDS_MIN,
      max: ttlSecondsMax,
    });
  }
  const earlier = state.holds.get(data.holdId);
  if (earlier !== undefined && earlier.amount === data.amount && earlier.description === data.description && sameMetadata(earlier.metadata, data.metadata)) return [];
  if (earlier !== undefined || state.endedHolds.has(data.holdId)) {
    throw new LedgerError('HOLD_ID_REUSED', `hold ${data.holdId} was already placed with another amount, description or metadata, or has ended`, { holdId: data.holdId });
  }
  assertNoShortfall(state);
  if (state.holds.size >= ACTIVE_HOLDS_MAX) {
    throw new LedgerError('HOLD_LIMIT_REACHED', `the account has ${state.holds.size} active holds, the most it may have`, { active: state.holds.size, max: ACTIVE_HOLDS_MAX });
  }
  const draws = spendable(state, data.amount, data.now);
  return [
    {
      type: 'TokensHeld',
      data: {
        userId: data.userId,
        holdId: data.holdId,
        amount: data.amount,
        description: data.description,
        expiresAt: new Date(data.now.getTime() + data.ttlSeconds * 1000).toISOString(),
        draws,
        balanceAfter: state.balance,
        heldAfter: state.held + data.amount,
        occurredAt: data.now.toISOString(),
        ...metadataOf(data.metadata),
      },
    },
  ];
}

/**
 * Debits the actual cost from the hold's reservations (a `usage`) and releases the rest, in one
 * event (ADR 0028). A cost above the held amount is refused (SETTLE_EXCEEDS_HOLD): the caller settles
 * the hold and records the excess as a usage of its own, which draws on the available balance.
 */
export function settleHold({ data }: SettleHold, state: TokenAccountState): readonly [HoldSettled] {
  assertAmount(data.amount);
  assertDescription(data.description);
  assertMetadata(data.metadata);
  const hold = activeHold(state, data.holdId);
  if (data.amount > hold.amount) {
    throw new LedgerError('SETTLE_EXCEEDS_HOLD', `a settle of ${data.amount} exceeds the ${hold.amount} tokens of hold ${hold.holdId}`, { holdId: hold.holdId, held: hold.amount, requested: data.amount });
  }
  return [
    {
      type: 'HoldSettled',
      data: {
        userId: data.userId,
        holdId: hold.holdId,
        amount: hold.amount,
        settledAmount: data.amount,
        releasedAmount: hold.amount - data.amount,
        transactionId: data.transactionId,
        description: data.description ?? hold.description,
        draws: takeFromDraws(hold.reservations, data.amount),
        balanceAfter: state.balance - data.amount,
        heldAfter: state.held - hold.amount,
        occurredAt: data.now.toISOString(),
        ...metadataOf(data.metadata ?? hold.metadata),
      },
    },
  ];
}

/** An event's `metadata` member: present only when there is some, so events without it stay as they were. */
function metadataOf(metadata: Metadata | null | undefined): { readonly metadata?: Metadata } {
  return metadata === null || metadata === undefined ? {} : { metadata };
}

export function releaseHold({ data }: ReleaseHold, state: TokenAccountState): readonly HoldReleased[] {
  const hold = activeHold(state, data.holdId);
  return [
    {
      type: 'HoldReleased',
      data: { userId: data.userId, holdId: hold.holdId, amount: hold.amount, balanceAfter: state.balance, heldAfter: state.held - hold.amount, occurredAt: data.now.toISOString() },
    },
  ];
}

/** A promotional credit with its own lot: by default spent before paid credit (GRANT_PRIORITY_DEFAULT), optionally expiring. */
export function grantTokens({ data }: GrantTokens, state: TokenAccountState): readonly TokensGranted[] {
  assertAmount(data.amount);
  assertReason(data.reason);
  assertLotTerms(data.priority, data.expiresAt, data.now);
  assertLotRoom(state);
  assertBalanceFits(state.balance, data.amount);
  return [
    {
      type: 'TokensGranted',
      data: {
        userId: data.userId,
        transactionId: data.transactionId,
        amount: data.amount,
        reason: data.reason,
        lot: { lotId: data.transactionId, priority: data.priority, expiresAt: data.expiresAt?.toISOString() ?? null },
        balanceAfter: state.balance + data.amount,
        heldAfter: state.held,
        occurredAt: data.now.toISOString(),
      },
    },
  ];
}

/**
 * Takes back what is left of a grant. Refused while a hold has set part of it aside (LOT_HELD): settle
 * or release the hold first. `state` has the expiries due at the command's time applied; `unswept` is
 * the state before them, which still has the lots that expire at this instant.
 */
export function voidGrant({ data }: VoidGrant, state: TokenAccountState, unswept: TokenAccountState): readonly GrantVoided[] {
  assertReason(data.reason);
  const lot = lotWithTokens(state, unswept, data.lotId);
  if (lot.source !== 'grant') throw notAGrant(lot.lotId, lot.source);
  if (lot.reserved > 0) throw new LedgerError('LOT_HELD', `${lot.reserved} tokens of lot ${lot.lotId} are held`, { lotId: lot.lotId, reserved: lot.reserved });
  return [
    {
      type: 'GrantVoided',
      data: {
        userId: data.userId,
        transactionId: data.transactionId,
        lotId: lot.lotId,
        amount: lot.remaining,
        reason: data.reason,
        draws: [{ lotId: lot.lotId, amount: lot.remaining }],
        balanceAfter: state.balance - lot.remaining,
        heldAfter: state.held,
        occurredAt: data.now.toISOString(),
      },
    },
  ];
}

/**
 * The draws that take `amount` from the available tokens, or INSUFFICIENT_AVAILABLE_BALANCE. The
 * state has had its expiries applied, so available (balance less held, less what refunds in
 * progress reserved) is exactly the free tokens of the live lots.
 */
export function spendable(state: TokenAccountState, amount: number, now: Date): readonly Draw[] {
  // Tokens reserved for refunds in progress are neither spendable nor held by a hold.
  const available = availableBalance(state) - state.held;
  if (amount > available) {
    throw new LedgerError('INSUFFICIENT_AVAILABLE_BALANCE', `the available balance ${available} is less than the ${amount} tokens requested`, {
      balance: state.balance,
      held: state.held,
      available,
      requested: amount,
    });
  }
  const draws = drawDown(state.lots.values(), amount, now);
  invariant(draws !== null, `the live lots do not hold the available ${available} tokens`);
  return draws;
}

/** A credit creates a lot: refused when the account has LIVE_LOTS_MAX of them. */
export function assertLotRoom(state: TokenAccountState): void {
  if (state.lots.size >= LIVE_LOTS_MAX) {
    throw new LedgerError('LOT_LIMIT_REACHED', `the account has ${state.lots.size} credit lots with tokens left, the most it may have`, { live: state.lots.size, max: LIVE_LOTS_MAX });
  }
}

function assertLotTerms(priority: number, expiresAt: Date | null, now: Date): void {
  if (!isLotPriority(priority)) {
    throw new LedgerError('LOT_PRIORITY_OUT_OF_RANGE', `priority must be an integer from ${LOT_PRIORITY_MIN} to ${LOT_PRIORITY_MAX}`, { priority, min: LOT_PRIORITY_MIN, max: LOT_PRIORITY_MAX });
  }
  if (expiresAt !== null && !(expiresAt.getTime() > now.getTime())) {
    throw new LedgerError('LOT_EXPIRY_OUT_OF_RANGE', 'expiresAt must be a valid time after now', { expiresAt: Number.isNaN(expiresAt.getTime()) ? null : expiresAt.toISOString(), now: now.toISOString() });
  }
}

/**
 * The lot `lotId` with tokens left, or why there is none, as far as the state can tell: a lot that
 * expires at this command's time (its expiry not recorded: a refusal appends nothing) and a grant
 * voided lately are refused as `voidOfLotWithoutTokens` refuses them; anything else is LOT_NOT_FOUND,
 * which the command's handler tells apart with the account's lot list (ended lots leave the state).
 */
function lotWithTokens(state: TokenAccountState, unswept: TokenAccountState, lotId: string): Lot {
  const lot = state.lots.get(lotId);
  if (lot !== undefined) return lot;
  const expiring = unswept.lots.get(lotId);
  if (expiring !== undefined) throw voidOfLotWithoutTokens(lotId, { source: expiring.source, status: 'expired' });
  if (state.voidedGrants.includes(lotId)) throw voidOfLotWithoutTokens(lotId, { source: 'grant', status: 'voided' });
  throw new LedgerError('LOT_NOT_FOUND', `lot ${lotId} has no tokens left on this account`, { lotId });
}

/** What the account's lot list (`token_lots`, written with the events) records of a lot. */
export type RecordedLot = { readonly source: LotSource; readonly status: LotStatus };

/**
 * Why a void found no lot `lotId` with tokens left, from what the account's lot list records of it:
 * LOT_NOT_FOUND for a lot the account never had; LOT_NOT_A_GRANT for any other source, whatever the
 * lot's state (it could never be voided); LOT_NOT_ACTIVE with how a grant ended. A grant the list
 * still shows active ended after the list was written (with EventStoreDB the read models follow the
 * stream): nothing says how yet, so it stays LOT_NOT_FOUND.
 */
export function voidOfLotWithoutTokens(lotId: string, recorded: RecordedLot | undefined): LedgerError {
  if (recorded === undefined) return new LedgerError('LOT_NOT_FOUND', `this account has no lot ${lotId}`, { lotId });
  if (recorded.source !== 'grant') return notAGrant(lotId, recorded.source);
  if (recorded.status === 'active') return new LedgerError('LOT_NOT_FOUND', `lot ${lotId} has no tokens left on this account`, { lotId });
  return new LedgerError('LOT_NOT_ACTIVE', `lot ${lotId} is ${recorded.status}`, { lotId, lotStatus: recorded.status });
}

function notAGrant(lotId: string, source: LotSource): LedgerError {
  const article = source === 'purchase' ? 'a' : 'an';
  return new LedgerError('LOT_NOT_A_GRANT', `lot ${lotId} is ${article} ${source} lot; only grants can be voided`, { lotId, source });
}

/**
 * The active hold `holdId`, or why there is none: HOLD_NOT_ACTIVE with how it ended, when it is one
 * of the newest ENDED_HOLDS_REMEMBERED_MAX ended holds, else HOLD_NOT_FOUND (which the settle and
 * release handlers turn into HOLD_NOT_ACTIVE for an older ended hold, with `holdWithoutActive`).
 */
function activeHold(state: TokenAccountState, holdId: string): Hold {
  const hold = state.holds.get(holdId);
  if (hold !== undefined) return hold;
  const ended = state.endedHolds.get(holdId);
  if (ended !== undefined) throw holdNotActive(holdId, ended);
  throw new LedgerError('HOLD_NOT_FOUND', `hold ${holdId} is not active on this account and has not ended recently`, { holdId });
}

function holdNotActive(holdId: string, status: HoldEnd): LedgerError {
  return new LedgerError('HOLD_NOT_ACTIVE', `hold ${holdId} is ${status}`, { holdId, holdStatus: status });
}

/**
 * Why a settle or release found no active hold `holdId` and none among the ended holds the state
 * remembers, from the account's hold list (`token_holds.status`, written in the append's
 * transaction): HOLD_NOT_ACTIVE with how an older hold ended; HOLD_NOT_FOUND for a hold the account
 * never had (or one the list shows active: with EventStoreDB the list may lag the stream).
 */
export function holdWithoutActive(holdId: string, recordedStatus: string | undefined): LedgerError {
  if (recordedStatus === 'settled' || recordedStatus === 'released' || recordedStatus === 'expired') return holdNotActive(holdId, recordedStatus);
  return new LedgerError('HOLD_NOT_FOUND', `this account has no hold ${holdId}`, { holdId });
}
