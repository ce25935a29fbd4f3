import type { EventStore } from '@app/event-store';
import { decideTokenAccount, evolveTokenAccount, initialTokenAccountState, tokenAccountStreamId, type TokenAccountCommand, type TokenAccountState } from '@app/ledger';

/** A small deterministic generator (mulberry32): the same seed gives the same sequence. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A version-4-shaped UUID drawn from `random`. */
export function seededUuid(random: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16));
  hex[12] = '4';
  hex[16] = ((Number.parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  const text = hex.join('');
  return `${text.slice(0, 8)}-${text.slice(8, 12)}-${text.slice(12, 16)}-${text.slice(16, 20)}-${text.slice(20)}`;
}

export type GeneratedAccount = { readonly userId: string; state: TokenAccountState; revision: bigint };

/**
 * The next command for an account: a purchase, or a usage the balance covers. Decided by the real
 * decider, so every stream written from it is valid.
 */
export function nextCommand(random: () => number, account: GeneratedAccount, now: Date): TokenAccountCommand {
  const transactionId = seededUuid(random);
  if (account.state.balance > 0 && random() < 0.5) {
    const amount = 1 + Math.floor(random() * Math.min(account.state.balance, 500));
    return { type: 'UseTokens', data: { userId: account.userId, amount, description: random() < 0.3 ? 'usage' : null, transactionId, now } };
  }
  const amount = 1 + Math.floor(random() * 1_000);
  return { type: 'AddTokens', data: { userId: account.userId, paymentId: seededUuid(random), amount, description: random() < 0.3 ? 'pack' : null, transactionId, now } };
}

/**
 * Appends `count` decided events to `account`'s stream, one append, at its expected revision.
 * Event ids come from `random`, so a repeated run with the same seed appends nothing new.
 */
export async function appendDecided(store: EventStore, random: () => number, account: GeneratedAccount, count: number, startAt: Date): Promise<void> {
  const events = [];
  for (let index = 0; index < count; index += 1) {
    const command = nextCommand(random, account, new Date(startAt.getTime() + index * 60_000));
    for (const event of decideTokenAccount(command, account.state)) {
      account.state = evolveTokenAccount(account.state, event);
      events.push({ id: seededUuid(random), type: event.type, data: event.data });
    }
  }
  if (events.length === 0) return;
  const expectedRevision = account.revision < 0n ? 'no_stream' : account.revision;
  await store.append(tokenAccountStreamId(account.userId), events, { expectedRevision });
  account.revision += BigInt(events.length);
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
export async function seedHistory(store: EventStore, options: SeedOptions): Promise<{ readonly userIds: readonly string[] }> {
  const eventsPerAppend = options.eventsPerAppend ?? 100;
  const accounts = Array.from({ length: options.users }, (_, index) => {
    const random = seededRandom(mixSeed(options.seed, index));
    const account: GeneratedAccount = { userId: seededUuid(random), state: initialTokenAccountState, revision: -1n };
    const quota = Math.floor(options.events / options.users) + (index < options.events % options.users ? 1 : 0);
    return { account, random, remaining: quota, written: 0 };
  });
  let written = 0;
  for (;;) {
    const round = accounts.filter((entry) => entry.remaining > 0);
    if (round.length === 0) break;
    let next = 0;
    const worker = async () => {
      while (next < round.length) {
        const entry = round[next] as (typeof round)[number];
        next += 1;
        const count = Math.min(eventsPerAppend, entry.remaining);
        await appendDecided(store, entry.random, entry.account, count, new Date(SEED_EPOCH + entry.written * 60_000));
        entry.remaining -= count;
        entry.written += count;
        written += count;
        options.onProgress?.(written);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  }
  return { userIds: accounts.map((entry) => entry.account.userId) };
}

function mixSeed(seed: number, index: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
}
