import { CodedError } from '@app/ledger';

/** The projections admin's expected rejections. */
export const PROJECTIONS_ERROR_CODES = ['UNKNOWN_PROJECTION', 'REBUILD_IN_PROGRESS'] as const;

export type ProjectionsErrorCode = (typeof PROJECTIONS_ERROR_CODES)[number];

/** The named projection is not registered. */
export class UnknownProjectionError extends CodedError<ProjectionsErrorCode> {
  override readonly name = 'UnknownProjectionError';

  constructor(
    readonly projection: string,
    known: readonly string[],
  ) {
    super('UNKNOWN_PROJECTION', `no projection is named ${projection}; known: ${known.join(', ')}`, { projection });
  }
}

/** A rebuild of this projection is running (in this process or another). */
export class RebuildInProgressError extends CodedError<ProjectionsErrorCode> {
  override readonly name = 'RebuildInProgressError';

  constructor(
    readonly projection: string,
    /** The running rebuild, when its row could be read. */
    readonly rebuildId?: string,
  ) {
    super('REBUILD_IN_PROGRESS', `a rebuild of ${projection} is already running${rebuildId === undefined ? '' : ` (${rebuildId})`}`, { projection, rebuildId: rebuildId ?? null });
  }
}
