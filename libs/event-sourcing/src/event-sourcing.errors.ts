import { CodedError } from '@app/ledger';

/** The command path's expected rejections. */
export const EVENT_SOURCING_ERROR_CODES = ['CONCURRENCY_CONFLICT', 'APPEND_DEADLINE_EXCEEDED'] as const;

export type EventSourcingErrorCode = (typeof EVENT_SOURCING_ERROR_CODES)[number];

/**
 * Decisions per command before CONCURRENCY_CONFLICT. Within a process commands on a stream queue
 * behind its mutex; across processes on one hot stream the one with the current state in memory
 * keeps winning and the other must read first, so it needs more tries than one race would.
 */
export const CONFLICT_RETRIES_MAX = 10;

/** Optimistic concurrency failed this many times in a row: the caller may retry the request. */
export class ConcurrencyConflictError extends CodedError<EventSourcingErrorCode> {
  override readonly name = 'ConcurrencyConflictError';

  constructor(message: string) {
    super('CONCURRENCY_CONFLICT', message, {});
  }
}

/**
 * The event store did not finish the append in time (a lock held elsewhere, a database that stopped
 * answering): the caller may retry; with an Idempotency-Key the retry applies the work at most once.
 */
export class AppendDeadlineError extends CodedError<EventSourcingErrorCode> {
  override readonly name = 'AppendDeadlineError';

  constructor(message: string, details: { readonly deadlineMs: number; readonly applied: 'no' | 'unknown' }, options?: ErrorOptions) {
    super('APPEND_DEADLINE_EXCEEDED', message, details, options);
  }
}

/** The refusal of a command whose stream changed under each of its CONFLICT_RETRIES_MAX decisions. */
export function conflictAfterRetries(streamId: string): ConcurrencyConflictError {
  return new ConcurrencyConflictError(`stream ${streamId} kept changing during ${CONFLICT_RETRIES_MAX} attempts`);
}
