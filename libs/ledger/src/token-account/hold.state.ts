import type { Metadata } from '../metadata.js';
import type { Draw } from './lot.state.js';

/** An active hold: tokens set aside until it is settled, released or expires. */
export type Hold = {
  readonly holdId: string;
  readonly amount: number;
  readonly description: string | null;
  /** The caller's metadata of the hold: a settle without its own takes it. Absent when none. */
  readonly metadata?: Metadata;
  readonly expiresAt: string;
  /** `expiresAt` in epoch milliseconds, parsed once when the hold enters the state (see `Lot.expiresAtMs`). */
  readonly expiresAtMs: number;
  readonly createdAt: string;
  /** The lots' tokens it set aside, in draw-down order: a settle debits from them in this order. */
  readonly reservations: readonly Draw[];
};

export type HoldEnd = 'settled' | 'released' | 'expired';

/** Whether the hold still counts as held at `now`: it stops at the instant of its `expiresAt`. */
export function isHoldActive(hold: Pick<Hold, 'expiresAtMs'>, now: Date): boolean {
  return hold.expiresAtMs > now.getTime();
}

/**
 * How the newest ended holds ended, by hold id, oldest first; `with` forgets the oldest when the
 * list grows past its bound. Persistent: a change copies the two short arrays (at most
 * ENDED_HOLDS_REMEMBERED_MAX references each), which costs far less per ended hold than an
 * Immutable OrderedMap's `set` and `delete` of its first key (its index map and its list, which it
 * re-compacts). A lookup scans from the newest (a `TokensUsed` written before ADR 0028 looks up the hold just ended).
 * It scans a third array, a 32-bit hash of each id, and compares the ids only where the hashes
 * match: comparing two distinct UUID strings costs V8 about 30 ns, so a scan of 100 ids cost about
 * 3 µs, paid by every new hold (HOLD_ID_REUSED) and every end.
 * It behaves as that OrderedMap did: ending a hold it still remembers changes its entry in place.
 */
export class EndedHolds {
  static readonly none = new EndedHolds([], [], []);

  private constructor(
    private readonly holdIds: readonly string[],
    private readonly ends: readonly HoldEnd[],
    /** `idHash` of each of `holdIds`, at the same index. */
    private readonly hashes: readonly number[],
  ) {}

  /** The ended holds of `entries`, oldest first, as a snapshot records them (a repeated id keeps its first place and its last end). */
  static of(entries: Iterable<readonly [string, HoldEnd]>): EndedHolds {
    let ended = EndedHolds.none;
    for (const [holdId, end] of entries) ended = ended.with(holdId, end, Number.POSITIVE_INFINITY);
    return ended;
  }

  get size(): number {
    return this.holdIds.length;
  }

  get(holdId: string): HoldEnd | undefined {
    const at = this.indexOf(holdId, idHash(holdId));
    // Stryker disable next-line ConditionalExpression: equivalent, `this.ends[-1]` is undefined too.
    return at < 0 ? undefined : this.ends[at];
  }

  has(holdId: string): boolean {
    return this.indexOf(holdId, idHash(holdId)) >= 0;
  }

  /** These ended holds and `holdId`'s end, the oldest forgotten when that makes more than `rememberedMax`. */
  with(holdId: string, end: HoldEnd, rememberedMax: number): EndedHolds {
    const hash = idHash(holdId);
    const at = this.indexOf(holdId, hash);
    if (at >= 0) {
      const ends = this.ends.slice();
      ends[at] = end;
      return new EndedHolds(this.holdIds, ends, this.hashes);
    }
    const forget = this.holdIds.length + 1 > rememberedMax ? 1 : 0;
    const holdIds = this.holdIds.slice(forget);
    const ends = this.ends.slice(forget);
    const hashes = this.hashes.slice(forget);
    holdIds.push(holdId);
    ends.push(end);
    hashes.push(hash);
    return new EndedHolds(holdIds, ends, hashes);
  }

  /** The index of `holdId` (whose `idHash` is `hash`), the newest first; -1 when it is not here. */
  private indexOf(holdId: string, hash: number): number {
    // Stryker disable next-line ArithmeticOperator: equivalent, a scan that starts past the end reads undefined there, which equals no hash.
    for (let index = this.hashes.length - 1; index >= 0; index -= 1) {
      if (this.hashes[index] === hash && this.holdIds[index] === holdId) return index;
    }
    return -1;
  }

  /** Every hold id with its end, oldest first. */
  *entries(): IterableIterator<[string, HoldEnd]> {
    for (let index = 0; index < this.holdIds.length; index += 1) yield [this.holdIds[index] as string, this.ends[index] as HoldEnd];
  }

  /** A plain object of the ends by hold id (as Immutable's `toJS` gives), for a test or a log to show. */
  toJS(): Record<string, HoldEnd> {
    return Object.fromEntries(this.entries());
  }
}

/** FNV-1a over the UTF-16 code units of an id: equal ids have equal hashes, so a scan compares ids only where the hashes match. */
function idHash(id: string): number {
  let hash = 0x811c9dc5;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent but for speed: hashing none of an id's code units (hold ids are UUIDs, never empty) or one past its end still gives equal ids equal hashes, and `indexOf` compares the ids themselves.
  for (let index = 0; index < id.length; index += 1) hash = Math.imul(hash ^ id.charCodeAt(index), 0x01000193);
  return hash;
}
