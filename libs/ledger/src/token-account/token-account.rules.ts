import { invariant, LedgerError } from '../ledger.errors.js';
import { metadataViolation, type Metadata } from '../metadata.js';
import { DESCRIPTION_LENGTH_MAX, REASON_LENGTH_MAX, TOKEN_AMOUNT_MAX, TOKEN_AMOUNT_MIN, isBlank, isTokenAmount, textLength } from '../ledger.limits.js';

/** Checks of a command's values that several decisions share. Text is measured in characters (code points), as validation and PostgreSQL count it. */

export function assertAmount(amount: number, amountMax: number = TOKEN_AMOUNT_MAX): void {
  invariant(isTokenAmount(amountMax), `an amount cap of ${amountMax} is not a token amount`);
  if (!isTokenAmount(amount) || amount > amountMax) {
    throw new LedgerError('AMOUNT_OUT_OF_RANGE', `amount must be an integer from ${TOKEN_AMOUNT_MIN} to ${amountMax}`, {
      field: 'amount',
      amount,
      min: TOKEN_AMOUNT_MIN,
      max: amountMax,
    });
  }
}

export function assertDescription(description: string | null): void {
  if (description !== null && textLength(description) > DESCRIPTION_LENGTH_MAX) {
    throw new LedgerError('DESCRIPTION_TOO_LONG', `description must be at most ${DESCRIPTION_LENGTH_MAX} characters`, {
      length: textLength(description),
      max: DESCRIPTION_LENGTH_MAX,
    });
  }
}

/** The caller's metadata, when given: a flat object within the bounds of `metadataViolation`; the refusal names the rule broken. */
export function assertMetadata(metadata: Metadata | null | undefined): void {
  if (metadata === null || metadata === undefined) return;
  const violation = metadataViolation(metadata);
  if (violation !== null) throw new LedgerError('METADATA_INVALID', violation.message, { field: violation.field, rule: violation.rule });
}

export function assertReason(reason: string): void {
  if (isBlank(reason)) throw new LedgerError('REASON_REQUIRED', 'an adjustment needs a reason that is not blank', { length: textLength(reason) });
  if (textLength(reason) > REASON_LENGTH_MAX) {
    throw new LedgerError('REASON_TOO_LONG', `reason must be at most ${REASON_LENGTH_MAX} characters`, { length: textLength(reason), max: REASON_LENGTH_MAX });
  }
}
