import { invariant, LedgerError } from '../ledger.errors.js';
import { sameMetadata, type Metadata } from '../metadata.js';
import { ACTIVE_HOLDS_MAX, HOLD_TTL_SECONDS_MAX, HOLD_TTL_SECONDS_MIN, isLotPriority, LIVE_LOTS_MAX, LOT_PRIORITY_MAX, LOT_PRIORITY_MIN } from '../ledger.limits.js';
import { assertBalanceFits } from './balance.rules.js';
import type { GrantTokens, HoldTokens, ReleaseHold, SettleHold, VoidGrant } from './hold.commands.js';
import type { GrantVoided, HoldReleased, HoldSettled, TokensGranted, TokensHeld } from './hold.events.js';
import type { Hold, HoldEnd } from './hold.state.js';
import { assertNoShortfall } from './dispute.decide.js';
import { drawDown, isLive, takeFromDraws, type Draw, type Lot, type LotSource, type LotStatus } from './lot.state.js';
import { availableBalance, type TokenAccountState } from './token-account.state.js';
import { assertAmount, assertDescription, assertMetadata, assertReason } from './token-account.rules.js';

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
 * or release the hold first; past its expiry, as expired (LOT_NOT_ACTIVE), held or not. `state` has the expiries due at the command's time applied; `unswept` is
 * the state before them, which still has the lots that expire at this instant.
 */
export function voidGrant({ data }: VoidGrant, state: TokenAccountState, unswept: TokenAccountState): readonly GrantVoided[] {
  assertReason(data.reason);
  const lot = lotWithTokens(state, unswept, data.lotId, data.now);
  if (lot.source !== 'grant') throw notAGrant(lot.lotId, lot.source);
  // Past its expiry, a hold still holds part of it: it expired all the same (that part stays with the hold).
  if (!isLive(lot, data.now)) throw voidOfLotWithoutTokens(lot.lotId, { source: lot.source, status: 'expired' });
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
 * The lot `lotId` with tokens left, or why there is none, as far as the state can tell: a lot the
 * sweep at this command's time ends (not recorded: a refusal appends nothing) and a grant voided
 * lately are refused as `voidOfLotWithoutTokens` refuses them; anything else is LOT_NOT_FOUND, which
 * the command's handler tells apart with the account's lot list (ended lots leave the state). The
 * sweep ends a lot by its expiry, or spends it on a shortfall of lost disputes as a hold ends, which
 * is `spent` while the lot is live and `expired` after, as the lot list records a lot emptied then.
 */
function lotWithTokens(state: TokenAccountState, unswept: TokenAccountState, lotId: string, now: Date): Lot {
  const lot = state.lots.get(lotId);
  if (lot !== undefined) return lot;
  const swept = unswept.lots.get(lotId);
  if (swept !== undefined) throw voidOfLotWithoutTokens(lotId, { source: swept.source, status: isLive(swept, now) ? 'spent' : 'expired' });
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
