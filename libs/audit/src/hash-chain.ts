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
  | { readonly ok: true; readonly eventCount: number; readonly headHash: string | null; readonly reason: 'chain intact' }
  | { readonly ok: false; readonly firstBadRevision: bigint; readonly reason: string };

export type VerifyChainOptions = {
  /**
   * A head known from elsewhere (a signed bundle, the store's stream revision): the chain must
   * reach exactly this revision with exactly this hash. Without it, removing the newest events
   * cannot be told from a stream that never had them.
   */
  readonly anchor?: { readonly revision: bigint; readonly hash: string | null };
};

/**
 * Checks a whole stream, read forwards from revision 0: revisions 0, 1, 2... without gaps or
 * repeats, one stream id, and each stored hash equal to the recomputed one. Reports the first
 * revision where it fails: a changed event fails at itself, a deleted one at the revision it
 * leaves empty, an inserted or reordered one at the first place the order breaks.
 */
export function verifyChain(events: readonly ChainEvent[], options: VerifyChainOptions = {}): ChainVerification {
  let previous: string | null = null;
  for (const [index, event] of events.entries()) {
    const revision = BigInt(index);
    if (event.revision !== revision) {
      return { ok: false, firstBadRevision: revision, reason: `expected revision ${revision}, found ${event.revision}: an event is missing, inserted or out of order` };
    }
    const first = events[0];
    if (first !== undefined && event.streamId !== first.streamId) {
      return { ok: false, firstBadRevision: revision, reason: `revision ${revision} belongs to stream ${event.streamId}, not ${first.streamId}` };
    }
    const stored = storedHash(event);
    if (stored === undefined) return { ok: false, firstBadRevision: revision, reason: `revision ${revision} has no hash` };
    const computed = eventHash(event, previous);
    if (computed !== stored) {
      return { ok: false, firstBadRevision: revision, reason: `revision ${revision} does not match its hash: the event or one before it was changed` };
    }
    previous = computed;
  }
  const anchor = options.anchor;
  if (anchor !== undefined) {
    const lastRevision = BigInt(events.length) - 1n;
    if (lastRevision < anchor.revision) {
      return { ok: false, firstBadRevision: lastRevision + 1n, reason: `the stream ends at revision ${lastRevision}, the anchor is at ${anchor.revision}: events were removed` };
    }
    if (lastRevision > anchor.revision) {
      return { ok: false, firstBadRevision: anchor.revision + 1n, reason: `the stream goes past the anchor at revision ${anchor.revision}` };
    }
    if (previous !== anchor.hash) return { ok: false, firstBadRevision: anchor.revision, reason: `the head hash at revision ${anchor.revision} differs from the anchor` };
  }
  return { ok: true, eventCount: events.length, headHash: previous, reason: 'chain intact' };
}
