import { Map as ImmutableMap } from 'immutable';
import { metadataViolation, type Metadata } from '../metadata.js';
import { SnapshotRejected, type SnapshotSchema } from '../snapshot.js';
import { BALANCE_MAX, CURRENCY_PATTERN, DESCRIPTION_LENGTH_MAX, isLotPriority, isMoneyAmount, isTokenAmount, textLength, VOIDED_GRANTS_REMEMBERED_MAX } from '../ledger.limits.js';
import type { TokenAccountEvent } from './token-account.events.js';
import type { Purchase, RefundHeldBack, TokenAccountState } from './token-account.state.js';
import { areLotTerms, PAYMENT_STATUSES, type Payment, type PaymentStatus } from './payment.state.js';
import { EndedHolds, type Hold, type HoldEnd } from './hold.state.js';
import { expiryInstant, OPENING_LOT_ID, type Draw, type Lot } from './lot.state.js';
import { DISPUTE_STATUSES, type Dispute, type DisputeStatus } from './dispute.state.js';

type EncodedTokenAccount = {
  readonly balance: number;
  readonly held: number;
  readonly purchases: readonly Purchase[];
  readonly payments: readonly Payment[];
  readonly lots: readonly Omit<Lot, 'expiresAtMs'>[];
  readonly lotsCreated: number;
  readonly holds: readonly Omit<Hold, 'expiresAtMs'>[];
  readonly endedHolds: readonly (readonly [string, HoldEnd])[];
  readonly voidedGrants: readonly string[];
  readonly disputes: readonly Dispute[];
  readonly shortfall: number;
  readonly refundsHeldBack: readonly (RefundHeldBack & { readonly paymentId: string })[];
  readonly lastOccurredAtMs: number;
};

const VERSION = 8;
/** The latest instant a JavaScript Date can hold (8.64e15 ms after 1970). */
const TIME_MS_MAX = 8.64e15;
const HOLD_ENDS: readonly HoldEnd[] = ['settled', 'released', 'expired'];
const LOT_SOURCES: readonly string[] = ['purchase', 'grant', 'adjustment', 'opening'];

/**
 * Version 8 adds the latest `occurredAt` of the stream's events (`lastOccurredAtMs`), before which no
 * decision is timed (version 7 snapshots are ignored and the stream replayed).
 * Version 7 adds what each lost dispute owed back (`tokens`), which a later refund of the payment does
 * not take again (version 6 snapshots are ignored and the stream replayed).
 * Version 6 adds what refunds the provider made on their own hold back (`refundsHeldBack`), and
 * counts in a payment's `tokensDebited` what they took later (version 5 snapshots are ignored and the
 * stream replayed, so one written by an older instance beside newer ones is never believed).
 * Version 5 added the newest voided grants (version 4 snapshots are ignored and the stream replayed).
 * Version 4 added the disputes and the shortfall of lost ones. Version 3: the balance and held total, every credited purchase (for exact `paymentId`
 * idempotency), every payment with its status, the live lots, the active holds and how the newest
 * ended holds ended (version 2 had no lots or holds, so its snapshots are ignored and replayed).
 * Decoding checks every field and that lots and holds add up to the balance and held total, so a
 * damaged snapshot is rejected rather than believed.
 */
export const tokenAccountSnapshot: SnapshotSchema<TokenAccountState, TokenAccountEvent> = {
  version: VERSION,
  encode: (state): EncodedTokenAccount => ({
    balance: state.balance,
    held: state.held,
    purchases: [...state.purchases.values()],
    payments: [...state.payments.values()],
    // Without the instants the state derives from `expiresAt`: the format stays as it was.
    lots: [...state.lots.values()].map(({ expiresAtMs: _derived, ...lot }) => lot),
    lotsCreated: state.lotsCreated,
    holds: [...state.holds.values()].map(({ expiresAtMs: _derived, ...hold }) => hold),
    endedHolds: [...state.endedHolds.entries()],
    voidedGrants: state.voidedGrants,
    disputes: [...state.disputes.values()],
    shortfall: state.shortfall,
    refundsHeldBack: [...state.refundsHeldBack.entries()].map(([paymentId, heldBack]) => ({ paymentId, ...heldBack })),
    lastOccurredAtMs: state.lastOccurredAtMs,
  }),
  decode: (encoded) => {
    const { balance, held, purchases, payments, lots, lotsCreated, holds, endedHolds, voidedGrants, disputes, shortfall, refundsHeldBack, lastOccurredAtMs } = expectRecord(encoded, 'snapshot');
    check(isCount(balance) && balance <= BALANCE_MAX, 'balance is not a valid balance');
    check(isCount(held) && held <= balance, 'held is not a valid held total');
    check(isCount(lotsCreated), 'lotsCreated is not a count');
    check(Array.isArray(purchases) && Array.isArray(payments) && Array.isArray(lots) && Array.isArray(holds) && Array.isArray(endedHolds), 'a collection is not a list');
    check(isCount(shortfall) && shortfall <= BALANCE_MAX, 'shortfall is not a count');
    check(Array.isArray(disputes), 'disputes is not a list');
    check(isVoidedGrants(voidedGrants), 'voidedGrants is not a list of distinct lot ids within its bound');
    check(isCount(lastOccurredAtMs) && lastOccurredAtMs <= TIME_MS_MAX, 'lastOccurredAtMs is not a time in milliseconds');
    const decodedPayments = byId(payments as readonly unknown[], decodePayment);
    const decodedPurchases = byId(purchases as readonly unknown[], decodePurchase);
    // Derived, not stored: the tokens of the payments whose refund is pending, as evolve keeps them.
    const reservedForRefunds = decodedPayments.reduce((total, payment) => (payment.status === 'REFUND_PENDING' ? total + payment.tokens : total), 0);
    const decodedLots = keyed(lots as readonly unknown[], decodeLot, (lot) => lot.lotId);
    const decodedHolds = keyed(holds as readonly unknown[], decodeHold, (hold) => hold.holdId);
    check(sum(decodedLots.valueSeq().map((lot) => lot.remaining)) === balance, 'lots do not add up to the balance');
    check(sum(decodedHolds.valueSeq().map((hold) => hold.amount)) === held, 'holds do not add up to the held total');
    check(sum(decodedLots.valueSeq().map((lot) => lot.reserved)) === held + reservedForRefunds, 'reservations do not add up to the held total and pending refunds');
    check(Array.isArray(refundsHeldBack), 'refundsHeldBack is not a list');
    const decodedHeldBack = ImmutableMap(
      (refundsHeldBack as readonly unknown[]).map((item): [string, RefundHeldBack] => {
        const { paymentId, lotId, amount } = expectRecord(item, 'refund held back');
        check(typeof paymentId === 'string' && decodedPayments.get(paymentId)?.status === 'REFUNDED', 'a refund held back is not of a refunded payment');
        // Not bounded by the lot's reservations now: a hold that settles spends part of them, and the
        // rest of the entry stays (what the other holds give back is taken up to it). The lot is there:
        // an entry ends with its lot.
        check(typeof lotId === 'string' && decodedLots.has(lotId) && typeof amount === 'number' && isTokenAmount(amount), 'a refund held back is not of a lot with tokens');
        check(lotId === (decodedPurchases.get(paymentId)?.lot?.lotId ?? OPENING_LOT_ID), "a refund held back is not of its purchase's lot");
        return [paymentId, { lotId, amount }];
      }),
    );
    check(decodedHeldBack.size === refundsHeldBack.length, 'a payment holds back twice');
    return {
      balance,
      held,
      reservedForRefunds,
      purchases: decodedPurchases,
      payments: decodedPayments,
      lots: decodedLots,
      lotsCreated,
      holds: decodedHolds,
      endedHolds: EndedHolds.of((endedHolds as readonly unknown[]).map(decodeEndedHold)),
      voidedGrants,
      disputes: keyed(disputes as readonly unknown[], (item) => decodeDispute(item, decodedPayments), (dispute) => dispute.disputeId),
      shortfall,
      refundsHeldBack: decodedHeldBack,
      lastOccurredAtMs,
    };
  },
  agreesWith: (state, lastEvent) => {
    if (state.lastOccurredAtMs < Date.parse(lastEvent.data.occurredAt)) return false;
    if ('shortfallAfter' in lastEvent.data && state.shortfall !== lastEvent.data.shortfallAfter) return false;
    if (lastEvent.type === 'PaymentDisputeOpened' || lastEvent.type === 'PaymentDisputeClosed') {
      const dispute = state.disputes.get(lastEvent.data.disputeId);
      if (lastEvent.type === 'PaymentDisputeOpened') return dispute?.status === 'open';
      return dispute !== undefined && dispute.status === lastEvent.data.outcome && dispute.tokens === lastEvent.data.tokens;
    }
    if ('heldAfter' in lastEvent.data && state.held !== (lastEvent.data.heldAfter ?? 0)) return false;
    if ('balanceAfter' in lastEvent.data) return state.balance === lastEvent.data.balanceAfter;
    const payment = state.payments.get(lastEvent.data.paymentId);
    return payment !== undefined && payment.updatedAt === lastEvent.data.occurredAt && payment.status === statusAfter(lastEvent.type);
  },
};

function statusAfter(type: TokenAccountEvent['type']): PaymentStatus | undefined {
  switch (type) {
    case 'PaymentInitiated':
      return 'PENDING';
    case 'PaymentCaptured':
      return 'COMPLETED';
    case 'PaymentFailed':
    case 'PaymentExpired':
      return 'FAILED';
    case 'PaymentRefundRequested':
      return 'REFUND_PENDING';
    case 'PaymentRefundFailed':
      return 'COMPLETED';
    case 'PaymentRefunded':
      return 'REFUNDED';
    case 'TokensPurchased':
    case 'TokensUsed':
    case 'TokensRefunded':
    case 'TokensAdjusted':
    case 'TokensHeld':
    case 'HoldSettled':
    case 'HoldReleased':
    case 'HoldExpired':
    case 'TokensGranted':
    case 'GrantVoided':
    case 'LotExpired':
    case 'PaymentDisputeOpened':
    case 'PaymentDisputeClosed':
    case 'TokensChargedBack':
    case 'ShortfallCovered':
      return undefined;
  }
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

function keyed<T>(items: readonly unknown[], decode: (item: unknown) => T, keyOf: (item: T) => string): ImmutableMap<string, T> {
  return ImmutableMap<string, T>().withMutations((map) => {
    for (const item of items) {
      const decoded = decode(item);
      check(!map.has(keyOf(decoded)), `${keyOf(decoded)} appears twice`);
      map.set(keyOf(decoded), decoded);
    }
  });
}

function decodeDraws(value: unknown): readonly Draw[] {
  check(Array.isArray(value), 'draws are not a list');
  return (value as readonly unknown[]).map((item) => {
    const { lotId, amount } = expectRecord(item, 'draw');
    check(typeof lotId === 'string' && typeof amount === 'number' && isTokenAmount(amount), 'a draw is not valid');
    return { lotId, amount };
  });
}

function decodeLot(item: unknown): Lot {
  const { lotId, priority, expiresAt, source, paymentId, original, remaining, reserved, sequence } = expectRecord(item, 'lot');
  check(typeof lotId === 'string' && typeof priority === 'number' && isLotPriority(priority), 'lot id or priority is not valid');
  check(expiresAt === null || isTime(expiresAt), 'lot expiresAt is not a time');
  check(typeof source === 'string' && LOT_SOURCES.includes(source), 'lot source is not valid');
  check(paymentId === null || typeof paymentId === 'string', 'lot paymentId is not valid');
  check(isCount(original) && isCount(remaining) && isCount(reserved) && isCount(sequence), 'lot amounts are not counts');
  check(remaining <= original && reserved <= remaining && remaining + reserved > 0, 'lot amounts do not fit');
  return { lotId, priority, expiresAt, source: source as Lot['source'], paymentId, original, remaining, reserved, sequence, expiresAtMs: expiryInstant(expiresAt, 'lot', lotId) };
}

function decodeHold(item: unknown): Hold {
  const { holdId, amount, description, metadata, expiresAt, createdAt, reservations } = expectRecord(item, 'hold');
  check(typeof holdId === 'string' && typeof amount === 'number' && isTokenAmount(amount), 'hold id or amount is not valid');
  check(description === null || (typeof description === 'string' && textLength(description) <= DESCRIPTION_LENGTH_MAX), 'hold description is not valid');
  check(metadata === undefined || metadataViolation(metadata) === null, 'hold metadata is not valid');
  check(isTime(expiresAt) && isTime(createdAt), 'hold times are not times');
  const draws = decodeDraws(reservations);
  check(sum(draws.map((draw) => draw.amount)) === amount, 'hold reservations do not add up to its amount');
  return { holdId, amount, description, ...(metadata === undefined ? {} : { metadata: metadata as Metadata }), expiresAt, expiresAtMs: expiryInstant(expiresAt, 'hold', holdId), createdAt, reservations: draws };
}

function decodeEndedHold(item: unknown): [string, HoldEnd] {
  check(Array.isArray(item) && item.length === 2 && typeof item[0] === 'string' && HOLD_ENDS.includes(item[1] as HoldEnd), 'an ended hold is not valid');
  return [item[0], item[1] as HoldEnd];
}

function isVoidedGrants(value: unknown): value is readonly string[] {
  return Array.isArray(value) && value.length <= VOIDED_GRANTS_REMEMBERED_MAX && value.every((lotId) => typeof lotId === 'string') && new Set(value).size === value.length;
}

function byId<T extends { readonly paymentId: string }>(items: readonly unknown[], decode: (item: unknown) => T): ImmutableMap<string, T> {
  return ImmutableMap<string, T>().withMutations((map) => {
    for (const item of items) {
      const decoded = decode(item);
      check(!map.has(decoded.paymentId), `payment ${decoded.paymentId} appears twice`);
      map.set(decoded.paymentId, decoded);
    }
  });
}

function decodePurchase(item: unknown): Purchase {
  const { userId, transactionId, paymentId, amount, description, balanceAfter, occurredAt, lot, heldAfter } = expectRecord(item, 'purchase');
  check(typeof userId === 'string' && typeof transactionId === 'string' && typeof paymentId === 'string', 'purchase ids are not strings');
  check(typeof amount === 'number' && isTokenAmount(amount), 'purchase amount is not a token amount');
  check(description === null || (typeof description === 'string' && textLength(description) <= DESCRIPTION_LENGTH_MAX), 'purchase description is not valid');
  check(typeof balanceAfter === 'number' && Number.isSafeInteger(balanceAfter) && balanceAfter >= amount, 'purchase balanceAfter is not valid');
  check(isTime(occurredAt), 'purchase occurredAt is not a time');
  check(heldAfter === undefined || isCount(heldAfter), 'purchase heldAfter is not valid');
  const purchase: Purchase = { userId, transactionId, paymentId, amount, description, balanceAfter, occurredAt };
  if (lot === undefined) return heldAfter === undefined ? purchase : { ...purchase, heldAfter };
  const terms = expectRecord(lot, 'purchase lot');
  check(typeof terms.lotId === 'string' && typeof terms.priority === 'number' && isLotPriority(terms.priority), 'purchase lot is not valid');
  check(terms.expiresAt === null || isTime(terms.expiresAt), 'purchase lot expiresAt is not valid');
  return { ...purchase, lot: { lotId: terms.lotId, priority: terms.priority, expiresAt: terms.expiresAt }, ...(heldAfter === undefined ? {} : { heldAfter }) };
}

function decodePayment(item: unknown): Payment {
  const record = expectRecord(item, 'payment');
  const { userId, paymentId, orderId, packageId, provider, tokens, amount, currency, occurredAt, expiresAt, updatedAt, status, failure } = record;
  const { failureReason, refundFailure, providerTransactionId, providerRefundId, tokensDebited } = record;
  check([userId, paymentId, orderId, packageId, provider].every((value) => typeof value === 'string'), 'payment ids are not strings');
  check(typeof tokens === 'number' && isTokenAmount(tokens), 'payment tokens is not a token amount');
  check(typeof amount === 'number' && isMoneyAmount(amount), 'payment amount is not a price');
  check(typeof currency === 'string' && CURRENCY_PATTERN.test(currency), 'payment currency is not a currency');
  check(isTime(occurredAt) && isTime(expiresAt) && isTime(updatedAt), 'payment times are not times');
  check(PAYMENT_STATUSES.includes(status as PaymentStatus), 'payment status is not a status');
  check(failure === null || failure === 'declined' || failure === 'expired', 'payment failure is not valid');
  check([failureReason, providerTransactionId, providerRefundId].every((value) => value === null || typeof value === 'string'), 'payment references are not valid');
  // Absent from snapshots written before failed refunds were recorded: none had failed.
  check(refundFailure === undefined || refundFailure === null || (typeof refundFailure === 'string' && status === 'COMPLETED'), 'payment refundFailure is not valid');
  check(tokensDebited === null || (typeof tokensDebited === 'number' && Number.isSafeInteger(tokensDebited) && tokensDebited >= 0), 'payment tokensDebited is not valid');
  // Absent from payments opened before they kept their package's lot terms.
  const { lot } = record;
  if (lot !== undefined) {
    const { priority, expiresInDays } = expectRecord(lot, 'payment lot');
    check(areLotTerms({ priority, expiresInDays }), 'payment lot is not valid');
  }
  return { ...(record as Payment), refundFailure: refundFailure ?? null };
}

function decodeDispute(item: unknown, payments: ImmutableMap<string, Payment>): Dispute {
  const { disputeId, paymentId, status, tokens, openedAt, closedAt } = expectRecord(item, 'dispute');
  check(typeof disputeId === 'string' && typeof paymentId === 'string' && payments.has(paymentId), 'dispute ids are not valid');
  check(DISPUTE_STATUSES.includes(status as DisputeStatus), 'dispute status is not a status');
  check(isTime(openedAt) && (closedAt === null || isTime(closedAt)) && (closedAt === null) === (status === 'open'), 'dispute times are not valid');
  check(isCount(tokens) && (status === 'lost' || tokens === 0), 'dispute tokens are not a count a lost dispute owed');
  return { disputeId, paymentId, status: status as DisputeStatus, tokens, openedAt, closedAt };
}

function isTime(value: unknown): value is string {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value));
}

function expectRecord(value: unknown, what: string): Record<string, unknown> {
  check(typeof value === 'object' && value !== null && !Array.isArray(value), `${what} is not an object`);
  return value as Record<string, unknown>;
}

function check(condition: boolean, reason: string): asserts condition {
  if (!condition) throw new SnapshotRejected(`token account snapshot v${VERSION}: ${reason}`);
}
