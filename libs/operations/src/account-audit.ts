import type { KeyObject } from 'node:crypto';
import { AuditBundleWriter, ChainCheck, HASH_METADATA_KEY, tokenAccountReplay, tokenAccountSummaryOf, type AsOf, type ChainVerification, type TokenAccountSummary } from '@app/audit';
import { formatPosition, readStreamPages, type EventStore, type JsonValue, type RecordedEvent } from '@app/event-store';
import { databaseUnavailableErrorOf, type TurnWait } from '@app/database';
import { tokenAccountStreamId } from '@app/ledger';
import { PROJECTIONS, type Projection } from '@app/projections';
import type { Pool } from 'pg';
import { AccountChecksBusyError, AccountNotFoundError, ChainBrokenError, RevisionOutOfRangeError, StreamNotReplayableError } from './operations.errors.js';
import { verifyAccount, type AccountDifference, type AccountFinding } from './account-verification.js';

/** A stored event as an auditor sees it: everything the store holds. */
export type AuditEvent = {
  readonly revision: string;
  /** `$all` position, `"commit/prepare"`. */
  readonly position: string;
  readonly id: string;
  readonly type: string;
  readonly data: JsonValue;
  readonly metadata: JsonValue;
  /** When the store recorded it (created_at); the domain time is `data.occurredAt`. */
  readonly time: string;
};

export type AuditEventPage = {
  readonly data: readonly AuditEvent[];
  /** The revision the store records as the stream's last. */
  readonly streamRevision: string;
  /** Where the next page starts; null after the last page. */
  readonly nextFromRevision: string | null;
};

export type ChainReport = { readonly ok: true; readonly eventCount: number; readonly headHash: string | null; readonly unsealedPrefix: number; readonly reason: string } | { readonly ok: false; readonly firstBadRevision: string; readonly reason: string };

export type AccountAuditReport = {
  readonly ok: boolean;
  readonly streamRevision: string;
  readonly chain: ChainReport;
  readonly readModels: {
    readonly differences: readonly AccountDifference[];
    /** Set when the replay itself failed (the stream breaks the ledger's invariants); nothing was compared then. */
    readonly replayError: string | null;
  };
};

export const AUDIT_PAGE_SIZE_MAX = 1_000;

/** A stream checked against its recorded revision (`AccountAudit.checkedStream`). */
type CheckedStream = {
  readonly streamRevision: bigint;
  readonly chain: ChainVerification;
  /** Why the ledger could not replay the events (only when asked to replay them). */
  readonly replayError?: string | undefined;
  /** The summary the replay gives after the last event (only when asked, and the chain is intact and the replay went through). */
  readonly ledger?: TokenAccountSummary;
};

export type AccountAuditOptions = {
  readonly projections?: readonly Projection[];
  /**
   * How long a verification waits for its turn among the pool's verifications and account rebuilds
   * before failing with AccountChecksBusyError (a request's answer); no limit without it (the CLI).
   */
  readonly turnWaitMs?: number;
};

/**
 * The auditor's view of one token account: its raw stream, the balance replayed to any point, the
 * hash chain and read models checked against it, and a signed bundle to check offline.
 */
export class AccountAudit {
  private readonly projections: readonly Projection[];
  private readonly turnWait: TurnWait | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly pool: Pool,
    options: AccountAuditOptions = {},
  ) {
    this.projections = options.projections ?? PROJECTIONS;
    this.turnWait = turnWaitOf(options.turnWaitMs);
  }

  /** Events from `fromRevision` on, at most `limit`; throws AccountNotFoundError for a user with no stream. */
  async page(userId: string, fromRevision: bigint, limit: number): Promise<AuditEventPage> {
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > AUDIT_PAGE_SIZE_MAX) throw new RangeError(`limit must be 1..${AUDIT_PAGE_SIZE_MAX}, not ${limit}`);
    const streamRevision = await this.streamRevision(userId);
    const events = await this.store.readStream(tokenAccountStreamId(userId), { fromRevision, maxCount: limit });
    const last = events[events.length - 1];
    const more = last !== undefined && events.length === limit && last.revision < streamRevision;
    return { data: events.map(auditEvent), streamRevision: streamRevision.toString(), nextFromRevision: more ? (last.revision + 1n).toString() : null };
  }

  /**
   * The whole stream, one page of `pageSize` events at a time, for streaming out: only one page is
   * in memory, and the next is read when the consumer asks for it. Checks the user exists first, so
   * a caller can answer 404 before it starts a response.
   */
  async pages(userId: string, pageSize = AUDIT_PAGE_SIZE_MAX): Promise<AsyncIterable<readonly AuditEvent[]>> {
    await this.streamRevision(userId);
    const store = this.store;
    return {
      async *[Symbol.asyncIterator]() {
        for await (const page of readStreamPages(store, tokenAccountStreamId(userId), { pageSize })) yield page.map(auditEvent);
      },
    };
  }

  /**
   * The balance, held and available totals, active holds and lots with tokens left, replayed from
   * the stream up to `asOf`, and the revision reached (-1 before the first event). A revision past
   * the stream's last is refused (RevisionOutOfRangeError), not read as the last.
   */
  async balanceAsOf(userId: string, asOf: AsOf): Promise<TokenAccountSummary & { readonly revision: string }> {
    const streamRevision = await this.streamRevision(userId);
    if ('revision' in asOf && asOf.revision > streamRevision) throw new RevisionOutOfRangeError(asOf.revision, streamRevision);
    // A page at a time, so a stream of millions of events is never in memory at once; by time, the read stops at the first event past it.
    // Only the ledger's refusals are the stream's fault: a failed read goes out as it came.
    const replay = tokenAccountReplay(asOf);
    const replayed = <T>(step: () => T): T => {
      try {
        return step();
      } catch (error) {
        // The ledger's own invariants refuse the stream (a gap, an edited amount): report, not crash.
        throw new StreamNotReplayableError(userId, error instanceof Error ? error.message : String(error));
      }
    };
    pages: for await (const page of readStreamPages(this.store, tokenAccountStreamId(userId), 'revision' in asOf ? { toRevision: asOf.revision } : {})) {
      for (const event of page) if (!replayed(() => replay.add(event))) break pages;
    }
    const { revision, ...summary } = replayed(() => tokenAccountSummaryOf(replay.replayed, asOf));
    return { ...summary, revision: revision.toString() };
  }

  /**
   * The hash chain, anchored to the stream's recorded revision, and every difference between the
   * replay and the read models. With no revision recorded, events stored are a broken chain (the
   * record removed hides them); an account with no events is checked for read-model rows alone (a
   * row of a user with no stream is `unexpected`); with none either, it is not found
   * (AccountNotFoundError).
   */
  async verify(userId: string): Promise<AccountAuditReport> {
    let anchored: CheckedStream;
    try {
      anchored = await this.checkedStream(userId, { replay: false });
    } catch (error) {
      if (!(error instanceof AccountNotFoundError)) throw error;
      // No revision recorded, yet events stored: the record was removed (or lowered below the first event), which hides them all.
      const [first] = await this.store.readStream(tokenAccountStreamId(userId), { maxCount: 1 });
      const readModels = await this.readModelsReport(userId);
      if (first !== undefined) {
        return { ok: false, streamRevision: '-1', chain: { ok: false, firstBadRevision: '0', reason: 'the stream has events but no recorded revision' }, readModels };
      }
      if (readModels.differences.length === 0 && readModels.replayError === null) throw error;
      return { ok: false, streamRevision: '-1', chain: { ok: true, eventCount: 0, headHash: null, unsealedPrefix: 0, reason: 'no events' }, readModels };
    }
    const { streamRevision } = anchored;
    const chain = chainReport(anchored.chain);
    const readModels = await this.readModelsReport(userId);
    const ok = chain.ok && readModels.differences.length === 0 && readModels.replayError === null;
    return { ok, streamRevision: streamRevision.toString(), chain, readModels };
  }

  /** The replay against the read models: their differences, or why the ledger refused the replay. */
  private async readModelsReport(userId: string): Promise<AccountAuditReport['readModels']> {
    try {
      return { differences: await verifyAccount(this.store, this.pool, this.projections, userId, this.turnWait === undefined ? {} : { turnWait: this.turnWait }), replayError: null };
    } catch (error) {
      // A database that went away or failed the check's own work is no finding about the account: answered as any read would be; so is a check that never got its turn.
      if (isDatabaseFailure(error) || error instanceof AccountChecksBusyError) throw error;
      // A tampered stream can break the ledger's invariants during the replay: that is a finding.
      return { differences: [], replayError: error instanceof Error ? error.message : String(error) };
    }
  }

  /** What `verify` finds, one finding a problem. */
  async findings(userId: string): Promise<readonly AccountFinding[]> {
    const report = await this.verify(userId);
    const findings: AccountFinding[] = [];
    if (!report.chain.ok) findings.push({ userId, projection: null, kind: 'chain', detail: report.chain.reason });
    if (report.readModels.replayError !== null) findings.push({ userId, projection: null, kind: 'replay', detail: report.readModels.replayError });
    return [...findings, ...report.readModels.differences];
  }

  /**
   * The signed NDJSON bundle of the stream, its lines produced as they are read (a page of events at
   * a time: a stream of millions of events is never one string, nor all in memory). Before the first
   * line it reads the whole stream once: it throws if the chain is not intact (a bundle never vouches
   * for a broken stream) or the ledger cannot replay it, and replays the summary the head signs. Its
   * `createdAt` is read from `clock` once the events are read, so no event in it was recorded after
   * the time the head names. The lines read the stream again, each event held to the chain checked;
   * one changed in between is a ChainBrokenError: thrown by this call when it is in the first page
   * (read before the answer starts), else by the lines before that page, so the head is never written
   * (a bundle without its head is not intact).
   */
  async bundle(userId: string, privateKey: KeyObject, clock: () => Date): Promise<{ readonly streamId: string; readonly lines: AsyncIterable<string> }> {
    const streamId = tokenAccountStreamId(userId);
    const { chain, streamRevision, replayError, ledger } = await this.checkedStream(userId, { replay: true });
    if (!chain.ok) throw new ChainBrokenError(userId, chain.firstBadRevision, chain.reason);
    if (replayError !== undefined || ledger === undefined) throw new StreamNotReplayableError(userId, replayError ?? 'the stream was not replayed');
    const { eventCount, headHash, unsealedPrefix } = chain;
    const createdAt = clock().toISOString();
    const store = this.store;
    // Events at or before the anchor never change but by a write to the database: one found changed is a broken chain.
    const changed = (revision: number, detail: string) => new ChainBrokenError(userId, BigInt(revision), `${detail} while its bundle was written`);
    async function* lines(): AsyncGenerator<string> {
      const writer = new AuditBundleWriter(streamId);
      for await (const page of readStreamPages(store, streamId, { toRevision: streamRevision })) {
        yield page
          .map((event) => {
            const index = writer.eventCount;
            const line = writer.line({ ...event, position: formatPosition(event.position), createdAt: event.createdAt.toISOString() });
            // The chain as the check found it: each event at its revision, the first `unsealedPrefix` without a hash, every other one with the hash recomputed.
            const stored: unknown = isJsonObject(event.metadata) ? event.metadata[HASH_METADATA_KEY] : null;
            if (event.revision !== BigInt(index) || stored !== (index < unsealedPrefix ? undefined : writer.headHash)) throw changed(index, `revision ${index} changed`);
            return line;
          })
          .join('');
      }
      if (writer.eventCount !== eventCount || writer.headHash !== headHash) throw changed(writer.eventCount, `the stream ended at ${writer.eventCount} events to hash ${String(writer.headHash)}, not the ${eventCount} to ${String(headHash)} checked,`);
      yield writer.head({ privateKey, createdAt, ledger, unsealedPrefix });
    }
    // The first page is read before the answer starts: a change found there is a 409 CHAIN_BROKEN, as
    // for a chain the check found broken. Found in a later page, it ends the lines before their head,
    // and the response, begun, is cut (a bundle without its head is not intact).
    const written = lines();
    const first = await written.next();
    async function* answered(): AsyncGenerator<string> {
      if (first.done === true) return;
      yield first.value;
      yield* written;
    }
    return { streamId, lines: answered() };
  }

  /**
   * The stream's recorded revision (the anchor), its events up to it checked against it a page at a
   * time, and with `replay` the summary the ledger replays from them (or why it cannot). The first
   * event stored after the anchor (the next revision, or a later one past a gap) is read too: when
   * the store still records the same revision once that event is read, it is one the record hides
   * (the revision lowered to drop the newest events from a bundle, and perhaps an event deleted
   * before them), and the chain fails with it ("goes past the anchor", or "missing" at the gap). An append writes its events and the
   * stream's revision in one transaction, so an event past a revision that a newer read records was
   * appended meanwhile, and is not this read's to judge. A chain failure is reported before a
   * replay failure, wherever each is in the stream.
   */
  private async checkedStream(userId: string, options: { readonly replay: boolean }): Promise<CheckedStream> {
    const streamRevision = await this.streamRevision(userId);
    const chain = new ChainCheck();
    const replay = options.replay ? tokenAccountReplay({ revision: streamRevision }) : undefined;
    let replayError: string | undefined;
    const streamId = tokenAccountStreamId(userId);
    pages: for await (const page of readStreamPages(this.store, streamId, { toRevision: streamRevision })) {
      for (const event of page) {
        if (!chain.add(event)) break pages;
        if (replay === undefined || replayError !== undefined) continue;
        try {
          replay.add(event);
        } catch (error) {
          replayError = error instanceof Error ? error.message : String(error);
        }
      }
    }
    // The first event stored past the anchor, wherever it is: events hidden behind a gap count too.
    const [past] = await this.store.readStream(streamId, { fromRevision: streamRevision + 1n, maxCount: 1 });
    if (past !== undefined && (await this.streamRevision(userId)) === streamRevision) chain.add(past);
    const verdict = chain.result({ anchor: { revision: streamRevision } });
    if (replay === undefined || replayError !== undefined || !verdict.ok) return { streamRevision, chain: verdict, replayError };
    try {
      const { revision: _revision, ...ledger } = tokenAccountSummaryOf(replay.replayed, { revision: streamRevision });
      return { streamRevision, chain: verdict, replayError, ledger };
    } catch (error) {
      return { streamRevision, chain: verdict, replayError: error instanceof Error ? error.message : String(error) };
    }
  }

  /**
   * The stream's last revision as the store records it. The PostgreSQL store records it apart from
   * the events, so removing the newest events is found; with EventStoreDB the last event read is the
   * only record, which cannot show that.
   */
  private async streamRevision(userId: string): Promise<bigint> {
    const streamId = tokenAccountStreamId(userId);
    const postgres = this.store.postgres;
    const revision =
      postgres === undefined ? (await this.store.readStream(streamId, { direction: 'backwards', maxCount: 1 }))[0]?.revision : await postgres.recordedStreamRevision(streamId);
    if (revision === undefined || revision < 0n) throw new AccountNotFoundError(userId);
    return revision;
  }
}

function isJsonObject(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function chainReport(chain: ChainVerification): ChainReport {
  return chain.ok ? chain : { ok: false, firstBadRevision: chain.firstBadRevision.toString(), reason: chain.reason };
}

function auditEvent(event: RecordedEvent): AuditEvent {
  return {
    revision: event.revision.toString(),
    position: formatPosition(event.position),
    id: event.id,
    type: event.type,
    data: event.data,
    metadata: event.metadata,
    time: event.createdAt.toISOString(),
  };
}

/**
 * A failure of the database that says nothing of the account checked: a lost connection (503), or,
 * on the error or a cause of it, an SQLSTATE of the check's own circumstances: 08 connection, 40
 * deadlock or serialization failure, 53 resources, 55 lock not available, 57 a timeout or cancel,
 * XX000 internal. Not XX001 and XX002 (data or an index found corrupted), which are findings.
 */
function isDatabaseFailure(error: unknown): boolean {
  if (databaseUnavailableErrorOf(error) !== undefined) return true;
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth += 1) {
    const { code, cause } = current as { readonly code?: unknown; readonly cause?: unknown };
    if (typeof code === 'string' && (/^(08|40|53|55|57)[0-9A-Z]{3}$/.test(code) || code === 'XX000')) return true;
    current = cause;
  }
  return false;
}

/** The wait for a turn among the pool's account checks, failing with AccountChecksBusyError past `waitMs`; none without it. */
export function turnWaitOf(waitMs: number | undefined): TurnWait | undefined {
  return waitMs === undefined ? undefined : { waitMs, busy: () => new AccountChecksBusyError(waitMs) };
}
