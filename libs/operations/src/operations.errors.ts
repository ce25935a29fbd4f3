import { CodedError } from '@app/ledger';

/** The operator tools' expected rejections: the auditor's. */
export const OPERATIONS_ERROR_CODES = ['ACCOUNT_NOT_FOUND', 'CHAIN_BROKEN', 'STREAM_NOT_REPLAYABLE', 'REVISION_OUT_OF_RANGE', 'ACCOUNT_CHECKS_BUSY'] as const;

export type OperationsErrorCode = (typeof OPERATIONS_ERROR_CODES)[number];

/** The user has no stream: nothing to audit. */
export class AccountNotFoundError extends CodedError<OperationsErrorCode> {
  override readonly name = 'AccountNotFoundError';

  constructor(readonly userId: string) {
    super('ACCOUNT_NOT_FOUND', `no events for user ${userId}`, { userId });
  }
}

/** The stream's chain is broken: it can be verified (and the break reported) but not bundled. */
export class ChainBrokenError extends CodedError<OperationsErrorCode> {
  override readonly name = 'ChainBrokenError';

  constructor(
    readonly userId: string,
    readonly firstBadRevision: bigint,
    readonly reason: string,
  ) {
    super('CHAIN_BROKEN', `the hash chain of user ${userId} breaks at revision ${firstBadRevision}: ${reason}`, { firstBadRevision: firstBadRevision.toString(), reason });
  }
}

/** The stream cannot be replayed: the ledger's invariants refuse it (it was changed outside the ledger). */
export class StreamNotReplayableError extends CodedError<OperationsErrorCode> {
  override readonly name = 'StreamNotReplayableError';

  constructor(
    readonly userId: string,
    readonly reason: string,
  ) {
    super('STREAM_NOT_REPLAYABLE', `the stream of user ${userId} cannot be replayed: ${reason}`, { reason });
  }
}

/** An as-of revision past the stream's last: a balance there is not known yet, so none is made up from the last one. */
export class RevisionOutOfRangeError extends CodedError<OperationsErrorCode> {
  override readonly name = 'RevisionOutOfRangeError';

  constructor(
    readonly revision: bigint,
    readonly streamRevision: bigint,
  ) {
    super('REVISION_OUT_OF_RANGE', `revision ${revision} is past the end of the stream, whose last revision is ${streamRevision}`, {
      field: 'revision',
      revision: revision.toString(),
      streamRevision: streamRevision.toString(),
    });
  }
}

/**
 * Every place for an account's verification or rebuild in this process stayed taken for the whole
 * wait (each holds two of the pool's connections, so only so many run at once): nothing was checked
 * or changed; retry shortly.
 */
export class AccountChecksBusyError extends CodedError<OperationsErrorCode> {
  override readonly name = 'AccountChecksBusyError';

  constructor(readonly waitedMs: number) {
    super('ACCOUNT_CHECKS_BUSY', `every place for an account's verification or rebuild in this process stayed taken for ${waitedMs} ms; nothing was done, retry shortly`, { waitedMs });
  }
}
