import { createPublicKey, createHash, verify, type KeyObject } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';
import { ChainCheck, HASH_CHAIN_VERSION, HASH_METADATA_KEY, type ChainEvent } from './hash-chain.js';
import { compareDisputes, compareHolds, tokenAccountReplay, tokenAccountSummaryOf, type TokenAccountSummary } from './as-of.js';
import { BUNDLE_FORMAT, keyId, type BundleHead, type EventLine } from './audit-bundle.js';

/*
 * The offline check of a bundle (`audit-bundle.ts` writes them): a whole text, or a file a line at
 * a time, alone or against an earlier bundle of the stream.
 */

export type BundleVerification =
  | {
      readonly ok: true;
      readonly streamId: string;
      readonly eventCount: number;
      readonly headHash: string | null;
      /** Leading events stored without a hash, covered only by the first sealed one (ADR 0006). */
      readonly unsealedPrefix: number;
      /** When the head says it was signed (signed with the rest of the head), and the id of the key that signed it. */
      readonly createdAt: string;
      readonly keyId: string;
      readonly reason: 'bundle intact';
    }
  | { readonly ok: false; readonly reason: string; readonly firstBadRevision?: bigint; readonly line?: number };

/** A line of a bundle as read: its text without the newline, and whether a newline ended it (the last line of a bundle cut short has none). */
/** One line of a bundle, without its newline; `notUtf8` when its bytes are not UTF-8 (a file read strictly, `bundleFileLines`). */
export type BundleLine = { readonly text: string; readonly newline: boolean; readonly notUtf8?: boolean };

/** The lines of a bundle held as text. */
export function* bundleTextLines(text: string): Generator<BundleLine, void, undefined> {
  let start = 0;
  for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
    yield { text: text.slice(start, end), newline: true };
    start = end + 1;
  }
  if (start < text.length) yield { text: text.slice(start), newline: false };
}

/**
 * Checks a bundle offline, with nothing but the signer's public key (obtained from the service's
 * operator, never from the bundle): the head's signature, the hash chain of the events (reporting
 * the first bad revision), that the chain ends at the signed head, and that the event lines are
 * byte for byte the ones signed.
 */
export function verifyAuditBundle(text: string, publicKey: KeyObject | string): BundleVerification {
  const check = new AuditBundleCheck(publicKey);
  for (const line of bundleTextLines(text)) check.add(line);
  return check.result();
}

/** `verifyAuditBundle` of a bundle read a line at a time (a file of any length: `bundleFileLines`). */
export async function verifyAuditBundleLines(lines: AsyncIterable<BundleLine>, publicKey: KeyObject | string): Promise<BundleVerification> {
  const check = new AuditBundleCheck(publicKey);
  for await (const line of lines) check.add(line);
  return check.result();
}

/**
 * `verifyAuditBundle` a line at a time, holding no more than one line and the replay's state: every
 * line but the last is an event line (checked, hashed and replayed as it comes), the last the head.
 * The verdict is the same as for the whole text, and so is its order: a line that is not UTF-8 (read
 * from a file, strictly) first, then what is wrong with the head, the first bad event line, the
 * chain, the line hashes, the lines' digest and the signed summary.
 */
export class AuditBundleCheck {
  private readonly key: KeyObject;
  private last: BundleLine | undefined;
  private eventLines = 0;
  private lineFailure: Extract<BundleVerification, { ok: false }> | undefined;
  private firstStreamId: string | undefined;
  private mixedStreams = false;
  private readonly chain = new ChainCheck();
  private unreadable: Extract<BundleVerification, { ok: false }> | undefined;
  private lineHashFailure: Extract<BundleVerification, { ok: false }> | undefined;
  private readonly digest = createHash('sha256');
  private readonly replay = tokenAccountReplay({ revision: REPLAY_TO_THE_END });
  private replayFailed = false;
  /** Why the ledger refused to replay an event, when it did (its revision and type first): the reason a signed summary cannot be checked. */
  private replayRefusal: string | undefined;
  /** The first line whose bytes are not UTF-8: not the bytes signed, whatever a lenient reading makes of them. */
  private firstNotUtf8: number | undefined;

  constructor(publicKey: KeyObject | string) {
    const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
    // A key that cannot check an Ed25519 signature is the caller's mistake, not a fault of the bundle.
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`bundles are signed with Ed25519; this is a ${String(key.asymmetricKeyType)} key`);
    this.key = key;
  }

  /** The next line; the one before it was an event line. */
  add(line: BundleLine): void {
    if (line.notUtf8 === true) this.firstNotUtf8 ??= this.eventLines + (this.last === undefined ? 1 : 2);
    if (this.last !== undefined) this.eventLine(this.last.text);
    this.last = line;
  }

  result(): BundleVerification {
    try {
      return this.verdict();
    } catch (error) {
      // A line the canonical form cannot hold (a lone surrogate): not intact.
      return { ok: false, reason: `the bundle could not be checked: ${error instanceof Error ? error.message : String(error)}` };
    }
  }

  private eventLine(raw: string): void {
    this.eventLines += 1;
    if (this.lineFailure === undefined) this.checkEventLine(raw, this.eventLines);
  }

  private checkEventLine(raw: string, index: number): void {
    const line = parseLine(raw);
    if (!isEventLine(line)) {
      this.lineFailure = { ok: false, reason: 'not an event record', line: index };
      return;
    }
    const stored = line.metadata[HASH_METADATA_KEY];
    if (stored !== undefined && stored !== line.hash) {
      this.lineFailure = { ok: false, reason: `the hash of revision ${line.revision} differs from its metadata`, line: index };
      return;
    }
    this.digest.update(`${raw}\n`, 'utf8');
    this.firstStreamId ??= line.streamId;
    if (line.streamId !== this.firstStreamId) this.mixedStreams = true;
    const event: ChainEvent = { streamId: line.streamId, revision: BigInt(line.revision), id: line.id, type: line.type, data: line.data, metadata: line.metadata };
    if (this.unreadable !== undefined) return;
    try {
      // Lines of an unsealed prefix carry the hash their metadata lacks: it must be the chain's too.
      if (!this.chain.add(event)) {
        // The chain failed here: that is the verdict, whatever the events after it hold.
        this.replayFailed = true;
        return;
      }
      if (this.lineHashFailure === undefined && line.hash !== this.chain.headHash) {
        this.lineHashFailure = { ok: false, reason: `the hash of revision ${event.revision} is not the chain's`, firstBadRevision: event.revision, line: index };
      }
    } catch (error) {
      // A line the chain could not judge (one the canonical form cannot hold is judged by the chain itself, at its revision): not intact.
      this.unreadable = { ok: false, reason: `the bundle could not be checked: ${error instanceof Error ? error.message : String(error)}` };
      return;
    }
    if (this.replayFailed) return;
    try {
      this.replay.add(event);
    } catch (error) {
      // Events the ledger cannot replay vouch for no summary.
      this.replayFailed = true;
      this.replayRefusal = error instanceof Error ? error.message : String(error);
    }
  }

  private verdict(): BundleVerification {
    if (this.firstNotUtf8 !== undefined) return { ok: false, reason: 'a line is not UTF-8: its bytes are not the ones signed', line: this.firstNotUtf8 };
    const headLine = this.last;
    if (headLine === undefined || !headLine.newline) return { ok: false, reason: 'the bundle does not end with a newline: it was cut short' };
    const headText = headLine.text;
    const parsedHead = parseLine(headText);
    if (!isHead(parsedHead)) return { ok: false, reason: 'the last line is not a head record', line: this.eventLines + 1 };
    // The signature covers the head's canonical form; the line must be exactly the head the signer
    // wrote, so that no reader of the text (a repeated key, which JSON.parse resolves to the last
    // copy) sees anything the signature does not cover.
    if (headText !== JSON.stringify(parsedHead)) return { ok: false, reason: 'the head line is not as signed: its text holds more than the head it states', line: this.eventLines + 1 };
    const head = parsedHead;
    const { signature, ...unsigned } = head;
    // Not signed yet: quoted as JSON, so that text of the bundle's cannot pass for the checker's own words.
    if (head.format !== BUNDLE_FORMAT) return { ok: false, reason: `unsupported bundle format ${quoted(head.format)} (this checker reads ${String(BUNDLE_FORMAT)})` };
    if (head.hashChainVersion !== HASH_CHAIN_VERSION) return { ok: false, reason: `unsupported hash chain version ${quoted(head.hashChainVersion)} (this checker reads ${HASH_CHAIN_VERSION})` };
    const signatureBytes = Buffer.from(signature, 'base64');
    if (signatureBytes.toString('base64') !== signature || !verify(null, Buffer.from(canonicalJson(unsigned), 'utf8'), this.key, signatureBytes)) {
      // The head names the key it was signed with (unsigned, so shown only when it is a key id): when
      // that is another key, a wrong key given is as likely as a forged head, and the reason says so.
      const checkedWith = keyId(this.key);
      const named = typeof head.keyId === 'string' && KEY_ID.test(head.keyId) && head.keyId !== checkedWith ? `; the head names the key ${head.keyId}, and this key is ${checkedWith}: was it signed with another key?` : '';
      return { ok: false, reason: `the head signature is not valid for this public key${named}` };
    }
    if (this.lineFailure !== undefined) return this.lineFailure;
    if (this.mixedStreams || (this.firstStreamId !== undefined && this.firstStreamId !== head.streamId)) return { ok: false, reason: `the bundle holds events of a stream other than ${head.streamId}` };
    if (this.unreadable !== undefined) return this.unreadable;
    const chain = this.chain.result({ anchor: { revision: BigInt(head.lastRevision), hash: head.headHash } });
    if (!chain.ok) return { ok: false, reason: chain.reason, firstBadRevision: chain.firstBadRevision };
    // Signed since 2026-12-06 (absent, 0, in the bundles before and for a stream sealed throughout);
    // an older bundle's unsealed prefix is still reported from the chain.
    if (head.unsealedPrefix !== undefined && head.unsealedPrefix !== chain.unsealedPrefix) {
      return { ok: false, reason: `the head says ${String(head.unsealedPrefix)} leading events were unsealed, the chain has ${chain.unsealedPrefix}` };
    }
    // Signed, and written consistently by every signer since the first: a head that says otherwise was not written by this ledger.
    if (head.eventCount !== this.eventLines) return { ok: false, reason: `the head says ${head.eventCount} events, the bundle holds ${this.eventLines}` };
    if (head.keyId !== keyId(this.key)) return { ok: false, reason: "the head's keyId is not the SHA-256 of this public key" };
    if (this.lineHashFailure !== undefined) return this.lineHashFailure;
    if (this.digest.copy().digest('hex') !== head.eventLinesSha256) return { ok: false, reason: 'the event lines differ from the signed ones (a field outside the hash chain was changed)' };
    if (head.ledger !== undefined && this.replayRefusal !== undefined) return { ok: false, reason: `the signed balance, holds and lots cannot be checked: the ledger refuses to replay ${this.replayRefusal}` };
    if (head.ledger !== undefined && !this.sameSummary(head.ledger)) return { ok: false, reason: 'the signed balance, holds or lots differ from the replay of the events' };
    return { ok: true, streamId: head.streamId, eventCount: this.eventLines, headHash: chain.headHash, unsealedPrefix: chain.unsealedPrefix, createdAt: head.createdAt, keyId: head.keyId, reason: 'bundle intact' };
  }

  private sameSummary(signed: TokenAccountSummary): boolean {
    if (this.replayFailed) return false;
    try {
      const { revision: _revision, ...replayed } = tokenAccountSummaryOf(this.replay.replayed, { revision: REPLAY_TO_THE_END });
      return canonicalJson(replayed) === canonicalJson(inCodeUnitOrder(signed));
    } catch {
      return false;
    }
  }
}

/** A revision no stream reaches: replay every event. */
const REPLAY_TO_THE_END = 2n ** 63n;

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
  const earlierEvents = comparedLines(checked, verifyAuditBundle(earlier, earlierPublicKey));
  if (typeof earlierEvents !== 'number') return earlierEvents;
  const [earlierLines, newerLines] = [bundleTextLines(earlier), bundleTextLines(newer)];
  for (let revision = 0; revision < earlierEvents; revision += 1) {
    const [before, after] = [earlierLines.next(), newerLines.next()];
    const failure = lineContinues(revision, before.done === true ? '' : before.value.text, after.done === true ? '' : after.value.text);
    if (failure !== undefined) return failure;
  }
  return checked;
}

/**
 * Two bundles read once, in step: each checked alone (`newer`, `earlier`: `AuditBundleCheck`'s
 * verdicts) and the earlier one's event lines compared with the newer one's as they come, so the
 * verdict and the comparison rest on the same bytes. `verdict` is `verifyBundleContinues`'s answer, for
 * bundles read a line at a time (files of any length: `bundleFileLines`). When the earlier bundle
 * cannot be read (its iterator throws), the newer one is still read to its end: not intact, that is
 * the answer; intact, the earlier one's error is thrown. An error reading the newer one is thrown.
 */
export async function checkBundlesInStep(
  newer: AsyncIterable<BundleLine>,
  earlier: AsyncIterable<BundleLine>,
  publicKey: KeyObject | string,
  earlierPublicKey: KeyObject | string = publicKey,
): Promise<{ readonly newer: BundleVerification; readonly earlier: BundleVerification; readonly verdict: BundleVerification }> {
  const [newerCheck, earlierCheck] = [new AuditBundleCheck(publicKey), new AuditBundleCheck(earlierPublicKey)];
  const [newerLines, earlierLines] = [newer[Symbol.asyncIterator](), earlier[Symbol.asyncIterator]()];
  let [newerDone, earlierDone] = [false, false];
  let pending: { readonly earlier: string; readonly newer: string } | undefined;
  let mismatch: BundleVerification | undefined;
  let earlierUnread: { readonly error: unknown } | undefined;
  let revision = 0;
  try {
    while (!newerDone || !earlierDone) {
      let newerText = '';
      if (!newerDone) {
        const after = await newerLines.next();
        if (after.done === true) newerDone = true;
        else {
          newerCheck.add(after.value);
          newerText = after.value.text;
        }
      }
      if (earlierDone) continue;
      let before: IteratorResult<BundleLine>;
      try {
        before = await earlierLines.next();
      } catch (error) {
        // The earlier bundle cannot be read on (a file missing, unreadable): the newer one is still
        // read to its end, once (a pipe cannot be read again), and judged first.
        earlierUnread = { error };
        earlierDone = true;
        continue;
      }
      if (before.done === true) {
        earlierDone = true;
        continue;
      }
      earlierCheck.add(before.value);
      // The pair before: the earlier bundle has a line after it, so it was an event line, not its head.
      if (pending !== undefined) {
        mismatch ??= lineContinues(revision, pending.earlier, pending.newer);
        revision += 1;
      }
      pending = { earlier: before.value.text, newer: newerText };
    }
  } finally {
    await newerLines.return?.();
    await earlierLines.return?.();
  }
  const newerVerdict = newerCheck.result();
  if (earlierUnread !== undefined) {
    if (!newerVerdict.ok) return { newer: newerVerdict, earlier: { ok: false, reason: 'the earlier bundle could not be read' }, verdict: newerVerdict };
    throw earlierUnread.error;
  }
  const earlierVerdict = earlierCheck.result();
  if (!newerVerdict.ok) return { newer: newerVerdict, earlier: earlierVerdict, verdict: newerVerdict };
  const compared = comparedLines(newerVerdict, earlierVerdict);
  return { newer: newerVerdict, earlier: earlierVerdict, verdict: typeof compared === 'number' ? (mismatch ?? newerVerdict) : compared };
}

/**
 * How many event lines of two bundles to compare, the newer one intact: the earlier one's, when it
 * is intact, of the same stream and not longer; otherwise why the newer does not continue it.
 */
function comparedLines(newer: Extract<BundleVerification, { ok: true }>, earlier: BundleVerification): number | BundleVerification {
  if (!earlier.ok) return { ok: false, reason: `the earlier bundle is not intact: ${earlier.reason}` };
  if (earlier.streamId !== newer.streamId) return { ok: false, reason: `the earlier bundle is of ${earlier.streamId}, this one of ${newer.streamId}` };
  if (earlier.eventCount > newer.eventCount) {
    return { ok: false, firstBadRevision: BigInt(newer.eventCount), reason: `the stream ends at revision ${newer.eventCount - 1}, before the earlier bundle's last revision ${earlier.eventCount - 1}: events were removed` };
  }
  return earlier.eventCount;
}

/**
 * The earlier bundle's event line at `revision` against the newer one's. Lines that do not parse
 * are no finding here: a bundle holding one is not intact, which its own check reports first.
 */
function lineContinues(revision: number, earlierText: string, newerText: string): BundleVerification | undefined {
  const [line, later] = [parseLine(earlierText), parseLine(newerText)];
  if (!isObject(line) || !isObject(later)) return undefined;
  let changed: string[];
  try {
    changed = Object.keys(line).filter((member) => comparable(member, line[member]) !== comparable(member, later[member] ?? null));
  } catch {
    // A line the canonical form cannot hold (nested deeper than the stack, a lone surrogate): its bundle is not intact, which its own check reports.
    return undefined;
  }
  if (changed.length === 0) return undefined;
  return { ok: false, firstBadRevision: BigInt(revision), reason: `revision ${revision} differs from the earlier bundle's (${changed.join(', ')}): the history that bundle signed was rewritten` };
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

/**
 * A signed summary with its holds and disputes in code unit order, as the replay now gives them:
 * bundles signed before 2026-12-06 sorted them in the signing process's locale order, the same
 * members in another order.
 */
function inCodeUnitOrder(signed: TokenAccountSummary): TokenAccountSummary {
  return { ...signed, holds: [...signed.holds].sort(compareHolds), ...(signed.disputes === undefined ? {} : { disputes: [...signed.disputes].sort(compareDisputes) }) };
}
/** A key id as `keyId` writes it: the SHA-256 of the public key, in hex. */
const KEY_ID = /^[0-9a-f]{64}$/;

/** An unsigned value of a bundle, as JSON: control characters and quotes escaped. */
function quoted(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
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
