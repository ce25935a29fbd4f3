import { createHash } from 'node:crypto';
import { HASH_METADATA_KEY, sealEvents } from '@app/audit';
import type { EventStore, EventToAppend } from '@app/event-store';
import {
  decideTokenAccount,
  evolveTokenAccount,
  expiriesDue,
  fold,
  initialTokenAccountState,
  isHoldActive,
  isLive,
  LedgerError,
  LIVE_LOTS_MAX,
  tokenAccountStreamId,
  type Payment,
  type PaymentStatus,
  type TokenAccountCommand,
  type TokenAccountState,
} from '@app/ledger';

/**
 * A deterministic generator (sfc32, 128 bits of state seeded from SHA-256 of the seed): the same seed
 * gives the same sequence, and different seeds give independent ones, so ids drawn from many
 * generators do not collide (a 32-bit generator's streams are shifts of one cycle and soon overlap).
 */
export function seededRandom(seed: number | string): () => number {
  const digest = createHash('sha256').update(`token-ledger-seed:${seed}`).digest();
  let [a, b, c, d] = [digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)];
  const next = () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4_294_967_296;
  };
  for (let warmUp = 0; warmUp < 12; warmUp += 1) next();
  return next;
}

/** A version-4-shaped UUID from 128 bits drawn from `random`. */
export function seededUuid(random: () => number): string {
  const words = Array.from({ length: 4 }, () => Math.floor(random() * 4_294_967_296).toString(16).padStart(8, '0'));
  const text = words.join('');
  const variant = ((Number.parseInt(text[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${text.slice(0, 8)}-${text.slice(8, 12)}-4${text.slice(13, 16)}-${variant}${text.slice(17, 20)}-${text.slice(20)}`;
}

export type GeneratedAccount = {
  readonly userId: string;
  state: TokenAccountState;
  revision: bigint;
  /** The chain hash of the event at `revision`; absent (null) before the first append. */
  headHash?: string | null;
};

/**
 * The next command for an account: a purchase, or a usage the balance covers. Decided by the real
 * decider, so every stream written from it is valid: an account with LIVE_LOTS_MAX lots left, where
 * a purchase would be refused (LOT_LIMIT_REACHED), spends instead (its lots hold tokens, so it can),
 * so a long history keeps going (about 4,000 events into one account, purchases outrun usage's
 * draw-down of the oldest lots).
 */
export function nextCommand(random: () => number, account: GeneratedAccount, now: Date): TokenAccountCommand {
  const transactionId = seededUuid(random);
  if (account.state.balance > 0 && (random() < 0.5 || account.state.lots.size >= LIVE_LOTS_MAX)) {
    const amount = 1 + Math.floor(random() * Math.min(account.state.balance, 500));
    return { type: 'UseTokens', data: { userId: account.userId, amount, description: random() < 0.3 ? 'usage' : null, transactionId, now } };
  }
  const amount = 1 + Math.floor(random() * 1_000);
  return { type: 'AddTokens', data: { userId: account.userId, paymentId: seededUuid(random), amount, description: random() < 0.3 ? 'pack' : null, transactionId, now } };
}

const PAYMENT_PACKAGES = [
  { packageId: 'starter', tokens: 100, amount: 500 },
  { packageId: 'standard', tokens: 500, amount: 2_000 },
  { packageId: 'pro', tokens: 2_000, amount: 7_000 },
] as const;
const PAYMENT_TTL_MS = 15 * 60_000;

/**
 * The next command for an account with payments: it opens payments and takes them through every
 * path the payment workflow can: captured, declined, expired (with 'Payment timed out'), an expired
 * one captured late, refunded (in part when the balance has been spent meanwhile), or left PENDING;
 * or an admin adjustment either way; otherwise a purchase or usage as `nextCommand`. Decided by the real decider, so streams are valid.
 */
export function nextCommandWithPayments(random: () => number, account: GeneratedAccount, now: Date): TokenAccountCommand {
  const userId = account.userId;
  const draw = random();
  const pending = paymentsIn(account.state, 'PENDING');
  const expired = paymentsIn(account.state, 'FAILED').filter((payment) => payment.failure === 'expired');
  const pick = (payments: readonly Payment[]) => payments[Math.floor(random() * payments.length)] as Payment;
  if (draw < 0.08 && expired.length > 0) {
    // The provider captured it after all: the late capture moves FAILED (expired) to COMPLETED.
    const outcome = { status: 'captured', providerTransactionId: `txn-${seededUuid(random)}` } as const;
    return { type: 'CapturePayment', data: { userId, paymentId: pick(expired).paymentId, outcome, transactionId: seededUuid(random), now } };
  }
  if (draw < 0.2) {
    const offer = PAYMENT_PACKAGES[Math.floor(random() * PAYMENT_PACKAGES.length)] ?? PAYMENT_PACKAGES[0];
    const paymentId = seededUuid(random);
    return {
      type: 'InitiatePayment',
      // No real cap here: a synthetic history exercises folding, not admission.
      data: { userId, paymentId, orderId: `order-${paymentId}`, ...offer, currency: 'USD', provider: 'mock', now, expiresAt: new Date(now.getTime() + PAYMENT_TTL_MS), pendingPaymentsMax: Number.MAX_SAFE_INTEGER },
    };
  }
  if (draw < 0.35 && pending.length > 0) {
    const outcome = { status: 'captured', providerTransactionId: `txn-${seededUuid(random)}` } as const;
    return { type: 'CapturePayment', data: { userId, paymentId: pick(pending).paymentId, outcome, transactionId: seededUuid(random), now } };
  }
  if (draw < 0.43 && pending.length > 0) {
    const outcome = { status: 'declined', reason: random() < 0.5 ? 'Card declined' : 'Insufficient funds' } as const;
    return { type: 'CapturePayment', data: { userId, paymentId: pick(pending).paymentId, outcome, transactionId: seededUuid(random), now } };
  }
  if (draw < 0.51 && pending.length > 0) {
    const payment = pick(pending);
    return { type: 'ExpirePayment', data: { userId, paymentId: payment.paymentId, now: new Date(Math.max(now.getTime(), Date.parse(payment.expiresAt))) } };
  }
  const completed = paymentsIn(account.state, 'COMPLETED');
  if (draw < 0.61 && completed.length > 0) {
    return { type: 'RefundPayment', data: { userId, paymentId: pick(completed).paymentId, providerRefundId: `refund-${seededUuid(random)}`, transactionId: seededUuid(random), now } };
  }
  if (draw >= 0.61 && draw < 0.69) {
    // An admin's correction, either way: a credit, or a debit the balance covers (now and then all of it).
    const balance = account.state.balance;
    const debit = balance > 0 && random() < 0.5;
    const debited = random() < 0.35 ? balance : 1 + Math.floor(random() * Math.min(balance, 300));
    const amount = debit ? -debited : 1 + Math.floor(random() * 300);
    return { type: 'AdjustTokens', data: { userId, amount, reason: debit ? 'Chargeback' : 'Goodwill credit', transactionId: seededUuid(random), now } };
  }
  return nextCommand(random, account, now);
}

/**
 * The next command for an account with holds and credit lots as well as payments: holds placed,
 * settled (for less), released and left to expire; grants with and without expiry and priorities;
 * voids; expiry runs at a later time; usage within the available balance; otherwise a command of
 * `nextCommandWithPayments` (replaced by a purchase when holds or expiries leave it refused).
 * Decided by the real decider, so streams are valid.
 */
export function nextCommandWithHoldsAndLots(random: () => number, account: GeneratedAccount, now: Date): TokenAccountCommand {
  const userId = account.userId;
  const transactionId = seededUuid(random);
  const swept = fold({ evolve: evolveTokenAccount }, account.state, expiriesDue(account.state, { userId, now, transactionId }, 'probe'));
  const available = swept.balance - swept.held;
  const holds = [...swept.holds.values()].filter((hold) => isHoldActive(hold, now));
  const draw = random();
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)] as T;
  if (draw < 0.14 && available > 0) {
    const amount = 1 + Math.floor(random() * Math.min(available, 200));
    return { type: 'HoldTokens', data: { userId, holdId: seededUuid(random), amount, description: random() < 0.5 ? 'estimate' : null, ttlSeconds: 60 + Math.floor(random() * 240), ttlSecondsMax: 3600, transactionId, now } };
  }
  if (draw < 0.24 && holds.length > 0) {
    const hold = pick(holds);
    return { type: 'SettleHold', data: { userId, holdId: hold.holdId, amount: 1 + Math.floor(random() * hold.amount), description: null, transactionId, now } };
  }
  if (draw < 0.29 && holds.length > 0) return { type: 'ReleaseHold', data: { userId, holdId: pick(holds).holdId, transactionId, now } };
  if (draw < 0.39) {
    const expiresAt = random() < 0.6 ? new Date(now.getTime() + (1 + Math.floor(random() * 5)) * 60_000) : null;
    return { type: 'GrantTokens', data: { userId, amount: 1 + Math.floor(random() * 300), reason: 'Promotion', priority: Math.floor(random() * 3) * 50, expiresAt, transactionId, now } };
  }
  const grants = [...swept.lots.values()].filter((lot) => lot.source === 'grant' && lot.reserved === 0 && isLive(lot, now));
  if (draw < 0.44 && grants.length > 0) return { type: 'VoidGrant', data: { userId, lotId: pick(grants).lotId, reason: 'Voided', transactionId, now } };
  if (draw < 0.5) return { type: 'ExpireCredits', data: { userId, transactionId, now: new Date(now.getTime() + Math.floor(random() * 10) * 60_000) } };
  if (draw < 0.62 && available > 0) return { type: 'UseTokens', data: { userId, amount: 1 + Math.floor(random() * Math.min(available, 300)), description: null, transactionId, now } };
  const command = nextCommandWithPayments(random, account, now);
  try {
    decideTokenAccount(command, account.state);
    return command;
  } catch (error) {
    if (!(error instanceof LedgerError)) throw error;
    return { type: 'AddTokens', data: { userId, paymentId: seededUuid(random), amount: 1 + Math.floor(random() * 500), description: null, transactionId, now } };
  }
}

/**
 * The next command for an account with disputes as well: now and then a dispute of a captured
 * payment reported open, won or lost (a lost one after the tokens were spent leaves a shortfall,
 * which later credits cover); otherwise a command of `nextCommandWithPayments` or
 * `nextCommandWithHoldsAndLots` (replaced by a purchase when refused). Decided by the
 * real decider, so streams are valid.
 */
export function nextCommandWithDisputes(random: () => number, account: GeneratedAccount, now: Date): TokenAccountCommand {
  const state = account.state;
  const disputed = new Set([...state.disputes.values()].map((dispute) => dispute.paymentId));
  const open = [...state.disputes.values()].filter((dispute) => dispute.status === 'open');
  const disputable = [...state.payments.values()].filter((payment) => (payment.status === 'COMPLETED' || payment.status === 'REFUNDED') && !disputed.has(payment.paymentId));
  const report = (payment: Payment, disputeId: string, status: 'open' | 'won' | 'lost'): TokenAccountCommand => ({
    type: 'RecordDispute',
    data: { userId: account.userId, paymentId: payment.paymentId, disputeId, status, amount: payment.amount, currency: payment.currency, reason: 'fraudulent', transactionId: seededUuid(random), now },
  });
  const draw = random();
  const dispute = open[Math.floor(random() * open.length)];
  const payment = dispute === undefined ? undefined : state.payments.get(dispute.paymentId);
  if (draw < 0.15 && dispute !== undefined && payment !== undefined) return report(payment, dispute.disputeId, random() < 0.5 ? 'won' : 'lost');
  const fresh = disputable[Math.floor(random() * disputable.length)];
  if (draw < 0.3 && fresh !== undefined) return report(fresh, `dp_${fresh.paymentId}`, random() < 0.6 ? 'open' : 'lost');
  // Payments more often than holds and lots, so there is more to dispute; a spend the shortfall refuses becomes a purchase.
  const command = draw < 0.65 ? nextCommandWithPayments(random, account, now) : nextCommandWithHoldsAndLots(random, account, now);
  try {
    decideTokenAccount(command, state);
    return command;
  } catch (error) {
    if (!(error instanceof LedgerError)) throw error;
    return { type: 'AddTokens', data: { userId: account.userId, paymentId: seededUuid(random), amount: 1 + Math.floor(random() * 100), description: null, transactionId: seededUuid(random), now } };
  }
}

function paymentsIn(state: TokenAccountState, status: PaymentStatus): Payment[] {
  return [...state.payments.values()].filter((payment) => payment.status === status);
}

export type CommandSource = (random: () => number, account: GeneratedAccount, now: Date) => TokenAccountCommand;

/**
 * Appends `count` commands' decided events to `account`'s stream, one append, at its expected
 * revision (a command may decide nothing). Event ids come from `random`, so a repeated run with the
 * same seed appends nothing new.
 */
export async function appendDecided(
  store: EventStore,
  random: () => number,
  account: GeneratedAccount,
  count: number,
  startAt: Date,
  commands: CommandSource = nextCommand,
): Promise<{ readonly decided: number; readonly written: number }> {
  const events: EventToAppend[] = [];
  for (let index = 0; index < count; index += 1) {
    // Never before the stream's latest event (an expiry run may have been timed ahead): the decider would decide at that time anyway.
    const command = commands(random, account, new Date(Math.max(startAt.getTime() + index * 60_000, account.state.lastOccurredAtMs)));
    for (const event of decideTokenAccount(command, account.state)) {
      account.state = evolveTokenAccount(account.state, event);
      events.push({ id: seededUuid(random), type: event.type, data: event.data });
    }
  }
  if (events.length === 0) return { decided: 0, written: 0 };
  const expectedRevision = account.revision < 0n ? 'no_stream' : account.revision;
  const streamId = tokenAccountStreamId(account.userId);
  // Sealed like every production append, so a seeded ledger verifies and bundles like a real one.
  const sealed = sealEvents(streamId, account.revision + 1n, account.headHash ?? null, events);
  const result = await store.append(streamId, sealed, { expectedRevision });
  account.revision += BigInt(events.length);
  account.headHash = sealed[sealed.length - 1]?.metadata[HASH_METADATA_KEY] as string;
  // A repeat of a seed finds the same events already there and writes nothing.
  return { decided: events.length, written: result.written === true ? events.length : 0 };
}

export type SeedOptions = {
  readonly users: number;
  readonly events: number;
  readonly seed: number;
  /** Appends in flight at once (each to a different stream). */
  readonly concurrency?: number;
  /** Events per append: streams are written in rounds of this many, so they interleave in `$all`. */
  readonly eventsPerAppend?: number;
  readonly onProgress?: (eventsWritten: number) => void;
};

export const SEED_USERS_MAX = 1_000_000;
export const SEED_EVENTS_MAX = 100_000_000;
const SEED_EPOCH = Date.parse('2026-01-01T00:00:00.000Z');

/**
 * A synthetic history: `events` events over `users` token accounts, each decided by the real decider
 * (purchases, and usage the balance covers). Deterministic: every account draws from its own
 * generator seeded by (`seed`, its index), so ids, amounts and times depend on nothing else, and
 * running it again with the same seed appends nothing (the same ids at the same revisions).
 */
export async function seedHistory(store: EventStore, options: SeedOptions): Promise<{ readonly userIds: readonly string[]; readonly eventsDecided: number; readonly eventsWritten: number }> {
  const eventsPerAppend = options.eventsPerAppend ?? 100;
  const accounts = Array.from({ length: options.users }, (_, index) => {
    const random = seededRandom(`${options.seed}:${index}`);
    const account: GeneratedAccount = { userId: seededUuid(random), state: initialTokenAccountState, revision: -1n };
    const quota = Math.floor(options.events / options.users) + (index < options.events % options.users ? 1 : 0);
    return { account, random, remaining: quota, written: 0 };
  });
  let written = 0;
  let eventsDecided = 0;
  let eventsWritten = 0;
  for (;;) {
    const round = accounts.filter((entry) => entry.remaining > 0);
    if (round.length === 0) break;
    let next = 0;
    const worker = async () => {
      while (next < round.length) {
        const entry = round[next] as (typeof round)[number];
        next += 1;
        const count = Math.min(eventsPerAppend, entry.remaining);
        const appended = await appendDecided(store, entry.random, entry.account, count, new Date(SEED_EPOCH + entry.written * 60_000));
        eventsDecided += appended.decided;
        eventsWritten += appended.written;
        entry.remaining -= count;
        entry.written += count;
        written += count;
        options.onProgress?.(written);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  }
  return { userIds: accounts.map((entry) => entry.account.userId), eventsDecided, eventsWritten };
}

/**
 * One account of `events` events, appended 100 at a time: a purchase of a million tokens, then
 * spends of 1 (a busy app's account: every spend updates its balance and its lot). Deterministic
 * by `seed`, as `seedHistory` is. Returns the account (its user id, state, revision and chain head).
 */
export async function seedLongAccount(store: EventStore, events: number, seed: number): Promise<GeneratedAccount> {
  const random = seededRandom(`${seed}:long-account`);
  const account: GeneratedAccount = { userId: seededUuid(random), state: initialTokenAccountState, revision: -1n };
  const spendOrBuy = (next: () => number, current: GeneratedAccount, now: Date): TokenAccountCommand => {
    const [userId, transactionId] = [current.userId, seededUuid(next)];
    return current.state.balance > 0
      ? { type: 'UseTokens', data: { userId, amount: 1, description: null, transactionId, now } }
      : { type: 'AddTokens', data: { userId, paymentId: seededUuid(next), amount: 1_000_000, description: null, transactionId, now } };
  };
  for (let written = 0; written < events; written += 100) await appendDecided(store, random, account, Math.min(100, events - written), new Date(Date.UTC(2026, 0, 1) + written * 60_000), spendOrBuy);
  return account;
}
