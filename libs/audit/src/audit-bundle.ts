import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import { eventHash, HASH_CHAIN_VERSION, HASH_METADATA_KEY, verifyChain, type ChainEvent, type JsonObject } from './hash-chain.js';
import { compareDisputes, compareHolds, tokenAccountSummaryAsOf, type TokenAccountSummary } from './as-of.js';

export const BUNDLE_FORMAT = 'token-ledger-audit-bundle/1';

/** A stored event as the bundle shows it: the chained fields plus what the store assigned. */
export type BundleEvent = ChainEvent & {
  /** `$all` position, `"commit/prepare"`. */
  readonly position: string;
  /** ISO 8601 time the store recorded. */
  readonly createdAt: string;
};

type EventLine = {
  readonly kind: 'event';
  readonly streamId: string;
  readonly revision: string;
  readonly position: string;
  readonly createdAt: string;
  readonly id: string;
  readonly type: string;
  readonly data: unknown;
  readonly metadata: JsonObject;
  readonly hash: string;
};

/** The last line: what the signer vouches for. */
export type BundleHead = {
  readonly kind: 'head';
  readonly format: typeof BUNDLE_FORMAT;
  readonly hashChainVersion: number;
  readonly streamId: string;
  readonly eventCount: number;
  /** "-1" for an empty stream. */
  readonly lastRevision: string;
  readonly headHash: string | null;
  /** SHA-256 of the event lines exactly as written (each with its "\n"), so fields the chain does not cover are vouched for too. */
  readonly eventLinesSha256: string;
  readonly createdAt: string;
  /** SHA-256 of the signer's public key (SPKI DER), to tell keys apart; never a reason to trust one. */
  readonly keyId: string;
  /**
   * For a token account: its balance, held total, active holds and lots with tokens left after the
   * last event, as the ledger's replay gives them; a verifier replays the events and compares.
   */
  readonly ledger?: TokenAccountSummary;
  /**
   * Present (above 0) when the stream's first events were stored without a hash (written before
   * hashes on append): the first sealed event's hash covers them, but they are only as trustworthy
   * as the stream was when they were written (ADR 0006), which the verifier tells the auditor.
   */
  readonly unsealedPrefix?: number;
  /** Ed25519 signature (base64) of the canonical JSON of this record without `signature`. */
  readonly signature: string;
};

/**
 * An audit bundle of one stream: NDJSON, one line per event (forwards from revision 0, with its
 * hash), then a head line signed with Ed25519. Throws if the events do not form an intact chain:
 * a bundle never vouches for a broken stream.
 */
export function createAuditBundle(
  events: readonly BundleEvent[],
  options: { readonly privateKey: KeyObject | string; readonly streamId: string; readonly createdAt: string; readonly ledger?: TokenAccountSummary },
): string {
  const chain = verifyChain(events);
  if (!chain.ok) throw new Error(`cannot bundle stream ${options.streamId}: ${chain.reason}`);
  if (events.some((event) => event.streamId !== options.streamId)) throw new Error(`cannot bundle stream ${options.streamId}: it holds events of another stream`);
  let previous: string | null = null;
  const lines = events
    .map((event) => {
      previous = eventHash(event, previous);
      return `${JSON.stringify(eventLine(event, previous))}\n`;
    })
    .join('');
  const privateKey = typeof options.privateKey === 'string' ? createPrivateKey(options.privateKey) : options.privateKey;
  const unsigned: Omit<BundleHead, 'signature'> = {
    kind: 'head',
    format: BUNDLE_FORMAT,
    hashChainVersion: HASH_CHAIN_VERSION,
    streamId: options.streamId,
    eventCount: events.length,
    lastRevision: (BigInt(events.length) - 1n).toString(),
    headHash: chain.headHash,
    eventLinesSha256: sha256(lines),
    createdAt: options.createdAt,
    keyId: keyId(createPublicKey(privateKey)),
    ...(options.ledger === undefined ? {} : { ledger: options.ledger }),
    ...(chain.unsealedPrefix === 0 ? {} : { unsealedPrefix: chain.unsealedPrefix }),
  };
  const signature = sign(null, Buffer.from(canonicalJson(unsigned), 'utf8'), privateKey).toString('base64');
  return `${lines}${JSON.stringify({ ...unsigned, signature })}\n`;
}

/** `hash`: the chain hash at this event; for an event of an unsealed prefix, the one its metadata would have held. */
function eventLine(event: BundleEvent, hash: string): EventLine {
  const { streamId, revision, position, createdAt, id, type, data, metadata } = event;
  return { kind: 'event', streamId, revision: revision.toString(), position, createdAt, id, type, data, metadata, hash };
}

export type BundleVerification =
  | {
      readonly ok: true;
      readonly streamId: string;
      readonly eventCount: number;
      readonly headHash: string | null;
      /** Leading events stored without a hash, covered only by the first sealed one (ADR 0006). */
      readonly unsealedPrefix: number;
      readonly reason: 'bundle intact';
    }
  | { readonly ok: false; readonly reason: string; readonly firstBadRevision?: bigint; readonly line?: number };

/**
 * Checks a bundle offline, with nothing but the signer's public key (obtained from the service's
 * operator, never from the bundle): the head's signature, the hash chain of the events (reporting
 * the first bad revision), that the chain ends at the signed head, and that the event lines are
 * byte for byte the ones signed.
 */
export function verifyAuditBundle(text: string, publicKey: KeyObject | string): BundleVerification {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  // A key that cannot check an Ed25519 signature is the caller's mistake, not a fault of the bundle.
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`bundles are signed with Ed25519; this is a ${String(key.asymmetricKeyType)} key`);
  try {
    return verified(text, key);
  } catch (error) {
    // A line the canonical form cannot hold (a lone surrogate): not intact.
    return { ok: false, reason: `the bundle could not be checked: ${error instanceof Error ? error.message : String(error)}` };
  }
}

function verified(text: string, key: KeyObject): BundleVerification {
  if (!text.endsWith('\n')) return { ok: false, reason: 'the bundle does not end with a newline: it was cut short' };
  const rawLines = text.slice(0, -1).split('\n');
  const headText = rawLines.pop();
  const parsedHead = headText === undefined ? undefined : parseLine(headText);
  if (!isHead(parsedHead)) return { ok: false, reason: 'the last line is not a head record', line: rawLines.length + 1 };
  // The signature covers the head's canonical form; the line must be exactly the head the signer
  // wrote, so that no reader of the text (a repeated key, which JSON.parse resolves to the last
  // copy) sees anything the signature does not cover.
  if (headText !== JSON.stringify(parsedHead)) return { ok: false, reason: 'the head line is not as signed: its text holds more than the head it states', line: rawLines.length + 1 };
  const head = parsedHead;
  const { signature, ...unsigned } = head;
  if (head.format !== BUNDLE_FORMAT || head.hashChainVersion !== HASH_CHAIN_VERSION) return { ok: false, reason: `unsupported bundle format ${String(head.format)}` };
  const signatureBytes = Buffer.from(signature, 'base64');
  if (signatureBytes.toString('base64') !== signature || !verify(null, Buffer.from(canonicalJson(unsigned), 'utf8'), key, signatureBytes)) {
    return { ok: false, reason: 'the head signature is not valid for this public key' };
  }
  const events: ChainEvent[] = [];
  const lineHashes: string[] = [];
  for (const [index, raw] of rawLines.entries()) {
    const line = parseLine(raw);
    if (!isEventLine(line)) return { ok: false, reason: 'not an event record', line: index + 1 };
    const stored = line.metadata[HASH_METADATA_KEY];
    if (stored !== undefined && stored !== line.hash) return { ok: false, reason: `the hash of revision ${line.revision} differs from its metadata`, line: index + 1 };
    lineHashes.push(line.hash);
    events.push({ streamId: line.streamId, revision: BigInt(line.revision), id: line.id, type: line.type, data: line.data, metadata: line.metadata });
  }
  if (events.some((event) => event.streamId !== head.streamId)) return { ok: false, reason: `the bundle holds events of a stream other than ${head.streamId}` };
  const chain = verifyChain(events, { anchor: { revision: BigInt(head.lastRevision), hash: head.headHash } });
  if (!chain.ok) return { ok: false, reason: chain.reason, firstBadRevision: chain.firstBadRevision };
  // Signed since 2026-12-06 (absent, 0, in the bundles before and for a stream sealed throughout);
  // an older bundle's unsealed prefix is still reported from the chain.
  if (head.unsealedPrefix !== undefined && head.unsealedPrefix !== chain.unsealedPrefix) {
    return { ok: false, reason: `the head says ${String(head.unsealedPrefix)} leading events were unsealed, the chain has ${chain.unsealedPrefix}` };
  }
  // Lines of an unsealed prefix carry the hash their metadata lacks: it must be the chain's too.
  let previous: string | null = null;
  for (const [index, event] of events.entries()) {
    previous = eventHash(event, previous);
    if (lineHashes[index] !== previous) return { ok: false, reason: `the hash of revision ${event.revision} is not the chain's`, firstBadRevision: event.revision, line: index + 1 };
  }
  const eventLines = rawLines.map((line) => `${line}\n`).join('');
  if (sha256(eventLines) !== head.eventLinesSha256) return { ok: false, reason: 'the event lines differ from the signed ones (a field outside the hash chain was changed)' };
  if (head.ledger !== undefined && !sameSummary(head.ledger, events)) return { ok: false, reason: 'the signed balance, holds or lots differ from the replay of the events' };
  return { ok: true, streamId: head.streamId, eventCount: events.length, headHash: chain.headHash, unsealedPrefix: chain.unsealedPrefix, reason: 'bundle intact' };
}

/**
 * Whether `newer` continues `earlier`, a bundle of the same stream kept from before: both intact
 * (`earlier` under `earlierPublicKey`, the same key unless it was rotated since), and every event
 * line `earlier` holds is in `newer` at its revision with the same members: the same hash (so the
 * same event, and the same chain before it), and the same time and position, which the hash does not
 * cover (a member a later version of the bundle adds is not compared). The hash chain alone cannot
 * show a history rewritten by someone who can write to the database and recompute every later hash,
 * and a bundle signed after such a rewrite is intact on its own: a signed head kept outside the
 * service is what shows it.
 */
export function verifyBundleContinues(newer: string, earlier: string, publicKey: KeyObject | string, earlierPublicKey: KeyObject | string = publicKey): BundleVerification {
  const checked = verifyAuditBundle(newer, publicKey);
  if (!checked.ok) return checked;
  const before = verifyAuditBundle(earlier, earlierPublicKey);
  if (!before.ok) return { ok: false, reason: `the earlier bundle is not intact: ${before.reason}` };
  if (before.streamId !== checked.streamId) return { ok: false, reason: `the earlier bundle is of ${before.streamId}, this one of ${checked.streamId}` };
  if (before.eventCount > checked.eventCount) {
    return { ok: false, firstBadRevision: BigInt(checked.eventCount), reason: `the stream ends at revision ${checked.eventCount - 1}, before the earlier bundle's last revision ${before.eventCount - 1}: events were removed` };
  }
  const [earlierLines, newerLines] = [eventLines(earlier), eventLines(newer)];
  for (const [revision, line] of earlierLines.entries()) {
    const later = newerLines[revision] ?? {};
    const changed = Object.keys(line).filter((member) => comparable(member, line[member]) !== comparable(member, later[member] ?? null));
    if (changed.length > 0) {
      return { ok: false, firstBadRevision: BigInt(revision), reason: `revision ${revision} differs from the earlier bundle's (${changed.join(', ')}): the history that bundle signed was rewritten` };
    }
  }
  return checked;
}

/**
 * A member of an event line as `verifyBundleContinues` compares it: `createdAt` as an instant (a
 * later writer may state it with another precision); `metadata` without its `hash`, which `hash`
 * states and is compared as such (an event of an unsealed prefix sealed since gains it).
 */
function comparable(member: string, value: unknown): string {
  if (member === 'createdAt' && typeof value === 'string' && !Number.isNaN(Date.parse(value))) return String(Date.parse(value));
  if (member === 'metadata' && typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const { [HASH_METADATA_KEY]: _hash, ...rest } = value as Record<string, unknown>;
    return canonicalJson(rest);
  }
  return canonicalJson(value);
}

/** The event lines of a bundle already verified, parsed, in revision order. */
function eventLines(text: string): Record<string, unknown>[] {
  return text
    .slice(0, -1)
    .split('\n')
    .slice(0, -1)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function sameSummary(signed: TokenAccountSummary, events: readonly ChainEvent[]): boolean {
  try {
    const { revision: _revision, ...replayed } = tokenAccountSummaryAsOf(events, { revision: BigInt(events.length) - 1n });
    return canonicalJson(replayed) === canonicalJson(inCodeUnitOrder(signed));
  } catch {
    // Events the ledger cannot replay vouch for no summary.
    return false;
  }
}

/**
 * A signed summary with its holds and disputes in code unit order, as the replay now gives them:
 * bundles signed before 2026-12-06 sorted them in the signing process's locale order, the same
 * members in another order.
 */
function inCodeUnitOrder(signed: TokenAccountSummary): TokenAccountSummary {
  return { ...signed, holds: [...signed.holds].sort(compareHolds), ...(signed.disputes === undefined ? {} : { disputes: [...signed.disputes].sort(compareDisputes) }) };
}

/** SHA-256 of the public key's SPKI DER, hex. */
export function keyId(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function parseLine(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isHead(value: unknown): value is BundleHead {
  return (
    isObject(value) &&
    value.kind === 'head' &&
    typeof value.streamId === 'string' &&
    typeof value.eventCount === 'number' &&
    typeof value.lastRevision === 'string' &&
    /^-?\d+$/.test(value.lastRevision) &&
    (typeof value.headHash === 'string' || value.headHash === null) &&
    typeof value.eventLinesSha256 === 'string' &&
    typeof value.signature === 'string'
  );
}

function isEventLine(value: unknown): value is EventLine {
  return (
    isObject(value) &&
    value.kind === 'event' &&
    typeof value.streamId === 'string' &&
    typeof value.revision === 'string' &&
    /^\d+$/.test(value.revision) &&
    typeof value.id === 'string' &&
    typeof value.type === 'string' &&
    'data' in value &&
    isObject(value.metadata) &&
    typeof value.hash === 'string'
  );
}
