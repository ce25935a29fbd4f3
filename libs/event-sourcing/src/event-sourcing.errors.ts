import { CodedError } from '@app/ledger';

/** The command path's expected rejections. */
export const EVENT_SOURCING_ERROR_CODES = ['CONCURRENCY_CONFLICT', 'APPEND_DEADLINE_EXCEEDED'] as const;

export type EventSourcingErrorCode = (typeof EVENT_SOURCING_ERROR_CODES)[number];

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
