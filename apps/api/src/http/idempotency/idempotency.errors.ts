import { CodedError, type ErrorDetails } from '@app/ledger';

/** Refusals of the Idempotency-Key hooks, answered before the request does any work. */
export const IDEMPOTENCY_ERROR_CODES = ['IDEMPOTENCY_KEY_INVALID', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_KEY_IN_PROGRESS'] as const;

export type IdempotencyErrorCode = (typeof IDEMPOTENCY_ERROR_CODES)[number];

export class IdempotencyKeyError extends CodedError<IdempotencyErrorCode> {
  override readonly name = 'IdempotencyKeyError';

  constructor(code: IdempotencyErrorCode, message: string, details: ErrorDetails = {}) {
    super(code, message, details);
  }
}
