import { LedgerError } from '../ledger.errors.js';
import { DESCRIPTION_LENGTH_MAX, REASON_LENGTH_MAX, TOKEN_AMOUNT_MAX, TOKEN_AMOUNT_MIN, isTokenAmount } from '../ledger.limits.js';

/** Checks of a command's values that several decisions share. */

export function assertAmount(amount: number): void {
  if (!isTokenAmount(amount)) {
    throw new LedgerError('AMOUNT_OUT_OF_RANGE', `amount must be an integer from ${TOKEN_AMOUNT_MIN} to ${TOKEN_AMOUNT_MAX}`, {
      amount,
      min: TOKEN_AMOUNT_MIN,
      max: TOKEN_AMOUNT_MAX,
    });
  }
}

export function assertDescription(description: string | null): void {
  if (description !== null && description.length > DESCRIPTION_LENGTH_MAX) {
    throw new LedgerError('DESCRIPTION_TOO_LONG', `description must be at most ${DESCRIPTION_LENGTH_MAX} characters`, {
      length: description.length,
      max: DESCRIPTION_LENGTH_MAX,
    });
  }
}

export function assertReason(reason: string): void {
  if (reason.trim() === '') throw new LedgerError('REASON_REQUIRED', 'an adjustment needs a reason that is not blank', { length: reason.length });
  if (reason.length > REASON_LENGTH_MAX) {
    throw new LedgerError('REASON_TOO_LONG', `reason must be at most ${REASON_LENGTH_MAX} characters`, { length: reason.length, max: REASON_LENGTH_MAX });
  }
}
