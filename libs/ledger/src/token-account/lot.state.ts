import { createHash } from 'node:crypto';
import { LedgerInvariantViolation } from '../ledger.errors.js';

/** Tokens taken from one credit lot by a debit (or reserved from it by a hold). */
export type Draw = { readonly lotId: string; readonly amount: number };

/** What a credit event says of the lot it creates. */
export type LotTerms = {
  readonly lotId: string;
  /** Lower is spent first. */
  readonly priority: number;
  /** When its remainder stops being spendable; null: never. */
  readonly expiresAt: string | null;
};

export type LotSource = 'purchase' | 'grant' | 'adjustment' | 'opening';

/**
 * A lot's state in the account's lot list (`token_lots.status`): active while it has tokens, else how
 * it ended. Spent by debits; expired, voided or refunded by the event that took its remainder (that
 * stays its status, though a part a hold kept is spent after it).
 */
export const LOT_STATUSES = ['active', 'spent', 'expired', 'voided', 'refunded'] as const;
export type LotStatus = (typeof LOT_STATUSES)[number];

/**
 * A credit lot with tokens left (or reserved by a hold). `remaining` counts in the balance;
 * `reserved` is the part of it active holds have set aside. A lot whose `remaining` and `reserved`
 * are both 0 leaves the state (it stays in the events and the read model).
 */
export type Lot = LotTerms & {
  readonly source: LotSource;
  readonly paymentId: string | null;
  readonly original: number;
  readonly remaining: number;
  readonly reserved: number;
  /** Creation order on the account: the last tie-breaker of the draw-down order ("oldest first"). */
  readonly sequence: number;
  /**
   * `expiresAt` in epoch milliseconds, infinity when it never expires: parsed once, when the lot
   * enters the state, so that the draw-down order and the expiry checks every command makes compare
   * numbers. Derived: neither events nor snapshots carry it.
   */
  readonly expiresAtMs: number;
};

/**
 * An `expiresAt` as the state keeps it (`Lot.expiresAtMs`, `Hold.expiresAtMs`): epoch milliseconds,
 * infinity for never. One that is not a time is refused, naming the lot or hold: as NaN it
 * would never expire, sort anywhere in the draw-down order, and fail a later rule under its name.
 */
export function expiryInstant(expiresAt: string | null, of: 'lot' | 'hold', id: string): number {
  if (expiresAt === null) return Number.POSITIVE_INFINITY;
  const instant = Date.parse(expiresAt);
  if (Number.isNaN(instant)) throw new LedgerInvariantViolation(`${of} ${id} has an expiresAt that is not a time: ${JSON.stringify(expiresAt)}`);
  return instant;
}

/**
 * The lot of every credit written before lots existed (events without `lot`), and the lot every
 * debit without `draws` drew from: such streams fold to one lot with no expiry and their balance.
 */
export const OPENING_LOT_ID = 'opening';

/** The part of a lot no hold has set aside. */
export function freeOf(lot: Lot): number {
  return lot.remaining - lot.reserved;
}

/** Whether the lot's remainder may still be spent at `now`: a lot stops being spendable at the instant of its `expiresAt`. */
export function isLive(lot: Pick<Lot, 'expiresAtMs'>, now: Date): boolean {
  return lot.expiresAtMs > now.getTime();
}

/** Draw-down order: priority (lower first), then earliest expiry (none last), then oldest. */
export function compareDrawOrder(left: Lot, right: Lot): number {
  if (left.priority !== right.priority) return left.priority - right.priority;
  // Stryker disable next-line EqualityOperator: equivalent, `<=` differs from `<` only for equal instants, answered by the line's own test.
  if (left.expiresAtMs !== right.expiresAtMs) return left.expiresAtMs < right.expiresAtMs ? -1 : 1;
  return left.sequence - right.sequence;
}

/**
 * The draws that take `amount` from the free part of the lots live at `now`, in draw-down order,
 * or null when they hold less than `amount`. One pass finds the first lot in that order; only when
 * it cannot cover `amount` alone are the live lots sorted (an account may have LIVE_LOTS_MAX lots,
 * and a usage usually draws on one).
 */
export function drawDown(lots: Iterable<Lot>, amount: number, now: Date): readonly Draw[] | null {
  if (amount === 0) return [];
  const live: Lot[] = [];
  let first: Lot | undefined;
  for (const lot of lots) {
    if (!isLive(lot, now) || freeOf(lot) <= 0) continue;
    live.push(lot);
    // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent: two lots of one account never compare equal (their sequences differ), and with no first lot found the sorted path below gives the same draw.
    if (first === undefined || compareDrawOrder(lot, first) < 0) first = lot;
  }
  // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent but for speed: the sorted path below gives the same draw.
  if (first !== undefined && freeOf(first) >= amount) return [{ lotId: first.lotId, amount }];
  const draws: Draw[] = [];
  let rest = amount;
  for (const lot of live.sort(compareDrawOrder)) {
    if (rest === 0) break;
    const taken = Math.min(freeOf(lot), rest);
    draws.push({ lotId: lot.lotId, amount: taken });
    rest -= taken;
  }
  return rest === 0 ? draws : null;
}

/** The first `amount` tokens of `draws`, in their order (a settle takes its debit from the hold's reservations this way). */
export function takeFromDraws(draws: readonly Draw[], amount: number): readonly Draw[] {
  const taken: Draw[] = [];
  let rest = amount;
  for (const draw of draws) {
    if (rest === 0) break;
    const part = Math.min(draw.amount, rest);
    taken.push({ lotId: draw.lotId, amount: part });
    rest -= part;
  }
  return taken;
}

/** The sum of the draws' amounts. */
export function drawnAmount(draws: readonly Draw[]): number {
  return draws.reduce((sum, draw) => sum + draw.amount, 0);
}

/**
 * An id for an event a command decides beside its own (a lot's expiry swept in with a usage): a
 * UUID-shaped digest of the command's transaction id and what the event is about, so deciding
 * stays pure and repeatable, and two commands never derive the same id.
 */
export function derivedTransactionId(transactionId: string, purpose: string): string {
  const hex = createHash('sha256').update(`token-ledger:${transactionId}:${purpose}`).digest('hex');
  const variant = ((Number.parseInt(hex.charAt(16), 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
