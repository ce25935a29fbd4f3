import { invariant } from '../ledger.errors.js';
import { BALANCE_MAX, ENDED_HOLDS_REMEMBERED_MAX, isLotPriority, LOT_PRIORITY_DEFAULT, LOT_PRIORITY_MAX, LOT_PRIORITY_MIN, VOIDED_GRANTS_REMEMBERED_MAX } from '../ledger.limits.js';
import type { HoldEnd, Hold } from './hold.state.js';
import type { TokensHeld } from './hold.events.js';
import { drawnAmount, expiryInstant, freeOf, OPENING_LOT_ID, type Draw, type Lot, type LotSource, type LotTerms } from './lot.state.js';
import type { TokenAccountState } from './token-account.state.js';

/**
 * How `evolve` applies credits, debits and holds to the lots, re-checking what `decide` promised
 * (the balance and held total each event records, every draw within its lot's free tokens): a
 * stream that breaks one is corrupt and fails loudly.
 */

/** An event's signed change of the balance and the balance and held total it records after it. */
export type LedgerMovement = { readonly change: number; readonly balanceAfter: number; readonly heldAfter: number; readonly occurredAt: string };

function checkTotals(state: TokenAccountState, { change, balanceAfter, heldAfter }: LedgerMovement): number {
  const balance = state.balance + change;
  invariant(balance >= 0 && balance <= BALANCE_MAX, `a change of ${change} drives the balance ${state.balance} out of range`);
  invariant(balance === balanceAfter, `an event records balanceAfter ${balanceAfter}, replay gives ${balance}`);
  invariant(state.held === heldAfter, `an event records heldAfter ${heldAfter}, replay gives ${state.held}`);
  return balance;
}

/** A credit: a new lot with its terms, or (an event written before lots) more tokens in the opening lot. */
export function creditLot(state: TokenAccountState, movement: LedgerMovement, source: LotSource, terms: LotTerms | undefined, paymentId: string | null): TokenAccountState {
  invariant(Number.isSafeInteger(movement.change) && movement.change > 0, `a credit of ${movement.change} tokens`);
  invariant(terms === undefined || isLotPriority(terms.priority), `lot ${terms?.lotId ?? ''} has priority ${String(terms?.priority)}, outside ${LOT_PRIORITY_MIN} to ${LOT_PRIORITY_MAX}`);
  const balance = checkTotals(state, movement);
  const opening = state.lots.get(OPENING_LOT_ID);
  if (terms === undefined && opening !== undefined) {
    const grown: Lot = { ...opening, original: opening.original + movement.change, remaining: opening.remaining + movement.change };
    return { ...state, balance, lots: state.lots.set(OPENING_LOT_ID, grown) };
  }
  const lotTerms = terms ?? { lotId: OPENING_LOT_ID, priority: LOT_PRIORITY_DEFAULT, expiresAt: null };
  invariant(!state.lots.has(lotTerms.lotId), `lot ${lotTerms.lotId} created twice`);
  const lot: Lot = {
    lotId: lotTerms.lotId,
    priority: lotTerms.priority,
    expiresAt: lotTerms.expiresAt,
    source: terms === undefined ? 'opening' : source,
    paymentId: terms === undefined ? null : paymentId,
    original: movement.change,
    remaining: movement.change,
    reserved: 0,
    sequence: state.lotsCreated,
    expiresAtMs: expiryInstant(lotTerms.expiresAt, 'lot', lotTerms.lotId),
  };
  return { ...state, balance, lots: state.lots.set(lot.lotId, lot), lotsCreated: state.lotsCreated + 1 };
}

/** A debit from the free tokens of the lots it names (an event written before lots: from the opening lot). */
export function debitLots(state: TokenAccountState, movement: LedgerMovement, recorded: readonly Draw[] | undefined): TokenAccountState {
  invariant(movement.change < 0, `a debit of ${-movement.change} tokens`);
  const balance = checkTotals(state, movement);
  const draws = recorded ?? [{ lotId: OPENING_LOT_ID, amount: -movement.change }];
  invariant(drawnAmount(draws) === -movement.change, `draws of ${drawnAmount(draws)} tokens for a debit of ${-movement.change}`);
  let ended = false;
  const lots = state.lots.withMutations((map) => {
    for (const draw of draws) {
      const lot = map.get(draw.lotId);
      invariant(lot !== undefined, `a draw from lot ${draw.lotId} that has nothing left`);
      invariant(Number.isSafeInteger(draw.amount) && draw.amount > 0 && draw.amount <= freeOf(lot), `a draw of ${draw.amount} from lot ${lot.lotId} with ${freeOf(lot)} free`);
      const remaining = lot.remaining - draw.amount;
      if (remaining === 0 && lot.reserved === 0) {
        map.delete(lot.lotId);
        ended = true;
      } else map.set(lot.lotId, { ...lot, remaining });
    }
  });
  // What a refund held back in a lot that ended can never come back to it.
  const refundsHeldBack = ended && state.refundsHeldBack.size > 0 ? state.refundsHeldBack.filter((heldBack) => lots.has(heldBack.lotId)) : state.refundsHeldBack;
  return { ...state, balance, lots, refundsHeldBack };
}

/** A new hold: its reservations set aside in their lots, its amount added to `held`. */
export function evolveHold(state: TokenAccountState, { data }: TokensHeld): TokenAccountState {
  invariant(!state.holds.has(data.holdId), `hold ${data.holdId} placed twice`);
  // The decider refuses an id it remembers ended (HOLD_ID_REUSED), and remembers as many as replay does.
  invariant(!state.endedHolds.has(data.holdId), `hold ${data.holdId} placed again after it ended`);
  invariant(drawnAmount(data.draws) === data.amount && data.amount > 0, `hold ${data.holdId} reserves ${drawnAmount(data.draws)} of ${data.amount} tokens`);
  invariant(data.balanceAfter === state.balance, `hold records balanceAfter ${data.balanceAfter}, replay gives ${state.balance}`);
  const held = state.held + data.amount;
  invariant(held === data.heldAfter && held <= state.balance, `hold records heldAfter ${data.heldAfter}, replay gives ${held} of a balance ${state.balance}`);
  const lots = state.lots.withMutations((map) => {
    for (const draw of data.draws) {
      const lot = map.get(draw.lotId);
      invariant(lot !== undefined && Number.isSafeInteger(draw.amount) && draw.amount > 0 && draw.amount <= freeOf(lot), `hold ${data.holdId} reserves ${draw.amount} from lot ${draw.lotId} without them`);
      map.set(lot.lotId, { ...lot, reserved: lot.reserved + draw.amount });
    }
  });
  const hold: Hold = {
    holdId: data.holdId,
    amount: data.amount,
    description: data.description,
    ...(data.metadata === undefined ? {} : { metadata: data.metadata }),
    expiresAt: data.expiresAt,
    expiresAtMs: expiryInstant(data.expiresAt, 'hold', data.holdId),
    createdAt: data.occurredAt,
    reservations: data.draws,
  };
  // A hold lives at least HOLD_TTL_SECONDS_MIN: one that expires when or before it is placed was never held.
  invariant(hold.expiresAtMs > Date.parse(data.occurredAt), `hold ${hold.holdId} expires at ${hold.expiresAt}, not after it was placed (${data.occurredAt})`);
  return { ...state, held, lots, holds: state.holds.set(hold.holdId, hold) };
}

export function holdOf(state: TokenAccountState, holdId: string): Hold {
  const hold = state.holds.get(holdId);
  invariant(hold !== undefined, `hold ${holdId} ended but is not active`);
  return hold;
}

/** A hold's end: its reservations go back to their lots, its amount leaves `held`, and how it ended is remembered (boundedly). */
export function endHold(
  state: TokenAccountState,
  data: { readonly holdId: string; readonly amount: number; readonly balanceAfter: number; readonly heldAfter: number },
  end: HoldEnd,
): TokenAccountState {
  const hold = holdOf(state, data.holdId);
  invariant(hold.amount === data.amount, `hold ${hold.holdId} of ${hold.amount} ends as ${data.amount}`);
  const held = state.held - hold.amount;
  invariant(held === data.heldAfter && state.balance === data.balanceAfter, `the end of hold ${hold.holdId} records totals replay does not give`);
  const lots = state.lots.withMutations((map) => {
    for (const reservation of hold.reservations) {
      const lot = map.get(reservation.lotId);
      invariant(lot !== undefined && lot.reserved >= reservation.amount, `hold ${hold.holdId} returns ${reservation.amount} to lot ${reservation.lotId} that holds less`);
      // Returning a reservation empties no lot: a lot in the state always has tokens (`remaining`, at
      // least `reserved`, which this reservation is part of); a debit that empties one removes it.
      map.set(lot.lotId, { ...lot, reserved: lot.reserved - reservation.amount });
    }
  });
  return { ...state, held, lots, holds: state.holds.delete(hold.holdId), endedHolds: state.endedHolds.with(hold.holdId, end, ENDED_HOLDS_REMEMBERED_MAX) };
}

/** Sets `amount` tokens of a lot aside for a refund in progress (a negative amount gives them back). */
export function reserveInLot(state: TokenAccountState, lotId: string, amount: number): TokenAccountState {
  const lot = state.lots.get(lotId);
  invariant(lot !== undefined && lot.reserved + amount >= 0 && lot.reserved + amount <= lot.remaining, `a refund reserves ${amount} tokens of lot ${lotId} that cannot hold them`);
  // Only `reserved` changes, so the lot keeps its tokens (see endHold).
  return { ...state, lots: state.lots.set(lotId, { ...lot, reserved: lot.reserved + amount }) };
}

/** The voided grants with `lotId` the newest, the oldest forgotten past VOIDED_GRANTS_REMEMBERED_MAX. */
export function withVoidedGrant(voidedGrants: readonly string[], lotId: string): readonly string[] {
  return [...voidedGrants.slice(voidedGrants.length >= VOIDED_GRANTS_REMEMBERED_MAX ? 1 : 0), lotId];
}

/** The tokens of lot `lotId` the active holds have set aside (a lot's `reserved` also counts pending refunds). */
export function heldIn(state: TokenAccountState, lotId: string): number {
  let held = 0;
  for (const hold of state.holds.values()) {
    for (const reservation of hold.reservations) if (reservation.lotId === lotId) held += reservation.amount;
  }
  return held;
}

/** What refunds hold back in lot `lotId`, to take as its holds give it back. */
export function heldBackIn(state: TokenAccountState, lotId: string): number {
  let heldBack = 0;
  for (const entry of state.refundsHeldBack.values()) if (entry.lotId === lotId) heldBack += entry.amount;
  return heldBack;
}
