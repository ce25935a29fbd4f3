import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';

/** The metadata key that holds an event's chain hash. */
export const HASH_METADATA_KEY = 'hash';
/** Version of the hashed form; recorded in bundles so a verifier knows which rules to apply. */
export const HASH_CHAIN_VERSION = 1;

export type JsonObject = { readonly [key: string]: unknown };

/** What the chain covers of a stored event: every field its writer chose. */
export type ChainEvent = {
  readonly streamId: string;
  readonly revision: bigint;
  readonly id: string;
  readonly type: string;
  readonly data: unknown;
  readonly metadata: JsonObject;
};

/**
 * The canonical form of an event for hashing. Covered: stream id, revision (as a decimal string,
 * so it is exact beyond 2^53), event id, type, data, metadata without the hash itself, and the
 * previous event's hash (null for revision 0). Not covered: the global position and the created
 * time, which the store assigns at commit, after the writer has computed the hash. The time an
 * auditor relies on is the domain's `data.occurredAt`, which is covered.
 */
export function canonicalEventForm(event: ChainEvent, previousHash: string | null): string {
  const { [HASH_METADATA_KEY]: _hash, ...metadata } = event.metadata;
  return canonicalJson({
    streamId: event.streamId,
    revision: event.revision.toString(),
    id: event.id,
    type: event.type,
    data: event.data,
    metadata,
    previousHash,
  });
}

/** hash(n) = SHA-256(canonical form of event n with hash(n - 1)), lowercase hex. */
export function eventHash(event: ChainEvent, previousHash: string | null): string {
  return createHash('sha256').update(canonicalEventForm(event, previousHash), 'utf8').digest('hex');
}

export type EventToSeal = { readonly id: string; readonly type: string; readonly data: unknown; readonly metadata?: JsonObject };

/**
 * Adds the chain hash to the metadata of events about to be appended at `firstRevision` of
 * `streamId`, after an event whose hash is `previousHash` (null for a new stream). The append must
 * use `expectedRevision = firstRevision - 1`, so the chain it extends is the one it was sealed on.
 */
export function sealEvents<E extends EventToSeal>(streamId: string, firstRevision: bigint, previousHash: string | null, events: readonly E[]): (E & { readonly metadata: JsonObject })[] {
  let previous = previousHash;
  return events.map((event, index) => {
    const metadata = event.metadata ?? {};
    const hash = eventHash({ streamId, revision: firstRevision + BigInt(index), id: event.id, type: event.type, data: event.data, metadata }, previous);
    previous = hash;
    return { ...event, metadata: { ...metadata, [HASH_METADATA_KEY]: hash } };
  });
}

export function storedHash(event: ChainEvent): string | undefined {
  const hash = event.metadata[HASH_METADATA_KEY];
  return typeof hash === 'string' ? hash : undefined;
}

export type ChainVerification =
  | {
      readonly ok: true;
      readonly eventCount: number;
      readonly headHash: string | null;
      /**
       * Leading events stored without a hash (written before hashes on append). The first sealed
       * event's hash covers them; they are only as trustworthy as the stream was when it was written.
       */
      readonly unsealedPrefix: number;
      readonly reason: 'chain intact';
    }
  | { readonly ok: false; readonly firstBadRevision: bigint; readonly reason: string };

export type VerifyChainOptions = {
  /**
   * A head known from elsewhere (a signed bundle, the store's stream revision): the chain must
   * reach exactly this revision with exactly this hash. Without it, removing the newest events
   * cannot be told from a stream that never had them.
   */
  readonly anchor?: {
    readonly revision: bigint;
    /** Omitted when only the revision is known (the store's record of the stream's length). */
    readonly hash?: string | null;
  };
};

/**
 * Checks a whole stream, read forwards from revision 0: revisions 0, 1, 2... without gaps or
 * repeats, one stream id, and each stored hash equal to the recomputed one. Reports the first
 * revision where it fails: a changed event fails at itself, a deleted one at the revision it
 * leaves empty, an inserted or reordered one at the first place the order breaks.
 *
 * Streams written before hashes on append: a run of events without a hash is accepted only at the
 * start of the stream, and only when a sealed event follows it. Its hashes are computed exactly as
 * if they had been stored (the hash never covers itself), so the first sealed event's hash covers
 * the whole prefix. An unsealed event after a sealed one, or a stream with no sealed event at all,
 * fails: nothing vouches for it.
 */
export function verifyChain(events: Iterable<ChainEvent>, options: VerifyChainOptions = {}): ChainVerification {
  const check = new ChainCheck();
  for (const event of events) if (!check.add(event)) break;
  return check.result(options);
}

/**
 * `verifyChain` an event at a time, for a stream read in pages (a million events need not be in
 * memory at once): `add` each event in revision order until it answers false (the chain failed
 * there; later events change nothing), then `result`.
 */
export class ChainCheck {
  private previous: string | null = null;
  private count = 0;
  private unsealedPrefix = 0;
  private streamId: string | undefined;
  private failure: Extract<ChainVerification, { ok: false }> | undefined;

  /** The recomputed hash of the last event added (the chain's head so far); null before any. */
  get headHash(): string | null {
    return this.previous;
  }

  /** Events added so far (up to and including the one the chain failed at). */
  get eventCount(): number {
    return this.count;
  }

  /** Checks the next event; false once the chain has failed (at this event or before). */
  add(event: ChainEvent): boolean {
    if (this.failure !== undefined) return false;
    const index = this.count;
    const revision = BigInt(index);
    this.count += 1;
    this.streamId ??= event.streamId;
    this.failure = this.failureAt(event, revision, index);
    return this.failure === undefined;
  }

  /** The verdict on the events added, with the anchor checked against where they end. */
  result(options: VerifyChainOptions = {}): ChainVerification {
    if (this.failure !== undefined) return this.failure;
    const { unsealedPrefix, count } = this;
    if (unsealedPrefix > 0 && unsealedPrefix === count) {
      return { ok: false, firstBadRevision: 0n, reason: `revision 0 has no hash (revisions 0..${unsealedPrefix - 1} are unsealed: written before hashes on append, the next append seals them)` };
    }
    const anchor = options.anchor;
    if (anchor !== undefined) {
      const lastRevision = BigInt(count) - 1n;
      if (lastRevision < anchor.revision) {
        return { ok: false, firstBadRevision: lastRevision + 1n, reason: `the stream ends at revision ${lastRevision}, the anchor is at ${anchor.revision}: events were removed` };
      }
      if (lastRevision > anchor.revision) {
        return { ok: false, firstBadRevision: anchor.revision + 1n, reason: `the stream goes past the anchor at revision ${anchor.revision}` };
      }
      if (anchor.hash !== undefined && this.previous !== anchor.hash) return { ok: false, firstBadRevision: anchor.revision, reason: `the head hash at revision ${anchor.revision} differs from the anchor` };
    }
    return { ok: true, eventCount: count, headHash: this.previous, unsealedPrefix, reason: 'chain intact' };
  }

  private failureAt(event: ChainEvent, revision: bigint, index: number): Extract<ChainVerification, { ok: false }> | undefined {
    if (event.revision !== revision) {
      return { ok: false, firstBadRevision: revision, reason: `expected revision ${revision}, found ${event.revision}: an event is missing, inserted or out of order` };
    }
    if (event.streamId !== this.streamId) {
      return { ok: false, firstBadRevision: revision, reason: `revision ${revision} belongs to stream ${event.streamId}, not ${String(this.streamId)}` };
    }
    if (typeof event.metadata !== 'object' || event.metadata === null || Array.isArray(event.metadata)) {
      // Metadata that is not an object holds no hash and hashes as `{}`: left unchecked, it could pass for an unsealed event.
      return { ok: false, firstBadRevision: revision, reason: `revision ${revision} has metadata that is not an object: the event's metadata was changed` };
    }
    const stored = storedHash(event);
    let computed: string;
    try {
      computed = eventHash(event, this.previous);
    } catch (error) {
      // A value JSON cannot hold, as the database's JSON gives it (a number past the double's range
      // reads as Infinity): no event the ledger sealed, so a change made in the database.
      return { ok: false, firstBadRevision: revision, reason: `revision ${revision} cannot be hashed (${error instanceof Error ? error.message : String(error)}): the event was changed` };
    }
    if (stored === undefined && event.metadata[HASH_METADATA_KEY] !== undefined) {
      // A hash key that holds no text (null, a number) is a damaged hash, not an unsealed event.
      return { ok: false, firstBadRevision: revision, reason: `revision ${revision} has a hash that is not text: the event's metadata was changed` };
    }
    if (stored === undefined) {
      if (this.unsealedPrefix !== index) return { ok: false, firstBadRevision: revision, reason: `revision ${revision} has no hash` };
      this.unsealedPrefix += 1;
    } else if (computed !== stored) {
      return { ok: false, firstBadRevision: revision, reason: `revision ${revision} does not match its hash: the event or one before it was changed` };
    }
    this.previous = computed;
    return undefined;
  }
}

/**
 * The hash the next event must chain to, for a stream whose head was stored without one (written
 * before hashes on append): the chain computed over every event from revision 0, as if each had
 * been sealed. Pass events in revision order, starting at revision 0.
 */
export function recomputedHeadHash(events: readonly ChainEvent[]): string | null {
  let previous: string | null = null;
  for (const [index, event] of events.entries()) {
    if (event.revision !== BigInt(index)) throw new Error(`expected revision ${index}, found ${event.revision}`);
    previous = eventHash(event, previous);
  }
  return previous;
}
