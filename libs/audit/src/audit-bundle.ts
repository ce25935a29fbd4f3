import { createHash, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import { eventHash, HASH_CHAIN_VERSION, verifyChain, type ChainEvent, type JsonObject } from './hash-chain.js';
import type { TokenAccountSummary } from './as-of.js';

export const BUNDLE_FORMAT = 'token-ledger-audit-bundle/1';

/** A stored event as the bundle shows it: the chained fields plus what the store assigned. */
export type BundleEvent = ChainEvent & {
  /** `$all` position, `"commit/prepare"`. */
  readonly position: string;
  /** ISO 8601 time the store recorded. */
  readonly createdAt: string;
};

export type EventLine = {
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
 * a bundle never vouches for a broken stream. (A stream too long to hold in memory is written a
 * line at a time with `AuditBundleWriter`; the text is the same.)
 */
export function createAuditBundle(
  events: readonly BundleEvent[],
  options: { readonly privateKey: KeyObject | string; readonly streamId: string; readonly createdAt: string; readonly ledger?: TokenAccountSummary },
): string {
  const chain = verifyChain(events);
  if (!chain.ok) throw new Error(`cannot bundle stream ${options.streamId}: ${chain.reason}`);
  const writer = new AuditBundleWriter(options.streamId);
  const lines = events.map((event) => writer.line(event)).join('');
  return `${lines}${writer.head({ ...options, unsealedPrefix: chain.unsealedPrefix })}`;
}

/**
 * A bundle written a line at a time, so that a stream of millions of events is never one string
 * (V8 refuses a string past about 512 MiB): `line` for each event in revision order, then `head`.
 * The caller checks the chain first (`ChainCheck`, whose `unsealedPrefix` the head states): the
 * writer recomputes each hash, it does not judge them.
 */
export class AuditBundleWriter {
  private readonly digest = createHash('sha256');
  private previous: string | null = null;
  private count = 0;

  constructor(private readonly streamId: string) {}

  /** The hash of the last event written (the head the bundle signs); null before any. */
  get headHash(): string | null {
    return this.previous;
  }

  get eventCount(): number {
    return this.count;
  }

  /** The event's line, with its newline. */
  line(event: BundleEvent): string {
    if (event.streamId !== this.streamId) throw new Error(`cannot bundle stream ${this.streamId}: it holds events of another stream`);
    this.previous = eventHash(event, this.previous);
    this.count += 1;
    const text = `${JSON.stringify(eventLine(event, this.previous))}\n`;
    this.digest.update(text, 'utf8');
    return text;
  }

  /** The signed head line, with its newline, of the lines written. */
  head(options: { readonly privateKey: KeyObject | string; readonly createdAt: string; readonly ledger?: TokenAccountSummary; readonly unsealedPrefix: number }): string {
    const privateKey = typeof options.privateKey === 'string' ? createPrivateKey(options.privateKey) : options.privateKey;
    const unsigned: Omit<BundleHead, 'signature'> = {
      kind: 'head',
      format: BUNDLE_FORMAT,
      hashChainVersion: HASH_CHAIN_VERSION,
      streamId: this.streamId,
      eventCount: this.count,
      lastRevision: (BigInt(this.count) - 1n).toString(),
      headHash: this.previous,
      eventLinesSha256: this.digest.copy().digest('hex'),
      createdAt: options.createdAt,
      keyId: keyId(createPublicKey(privateKey)),
      ...(options.ledger === undefined ? {} : { ledger: options.ledger }),
      ...(options.unsealedPrefix === 0 ? {} : { unsealedPrefix: options.unsealedPrefix }),
    };
    const signature = sign(null, Buffer.from(canonicalJson(unsigned), 'utf8'), privateKey).toString('base64');
    return `${JSON.stringify({ ...unsigned, signature })}\n`;
  }
}

/** `hash`: the chain hash at this event; for an event of an unsealed prefix, the one its metadata would have held. */
function eventLine(event: BundleEvent, hash: string): EventLine {
  const { streamId, revision, position, createdAt, id, type, data, metadata } = event;
  return { kind: 'event', streamId, revision: revision.toString(), position, createdAt, id, type, data, metadata, hash };
}

/** SHA-256 of the public key's SPKI DER, hex. */
export function keyId(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}
