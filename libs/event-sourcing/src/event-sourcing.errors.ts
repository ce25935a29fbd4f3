import { CodedError } from '@app/ledger';

/** The command path's expected rejections. */
export const EVENT_SOURCING_ERROR_CODES = ['CONCURRENCY_CONFLICT'] as const;

export type EventSourcingErrorCode = (typeof EVENT_SOURCING_ERROR_CODES)[number];

/** Optimistic concurrency failed this many times in a row: the caller may retry the request. */
export class ConcurrencyConflictError extends CodedError<EventSourcingErrorCode> {
  override readonly name = 'ConcurrencyConflictError';

  constructor(message: string) {
    super('CONCURRENCY_CONFLICT', message, {});
  }
}
