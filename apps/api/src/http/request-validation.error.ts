import { CodedError } from '@app/ledger';
import type { ValidationError } from 'class-validator';

export const REQUEST_VALIDATION_ERROR_CODES = ['VALIDATION_FAILED'] as const;

export type RequestValidationErrorCode = (typeof REQUEST_VALIDATION_ERROR_CODES)[number];

export type FieldViolation = { readonly field: string; readonly rule: string; readonly message: string };

/** A request that breaks a DTO rule; every violated field and rule is listed. */
export class RequestValidationError extends CodedError<RequestValidationErrorCode, { readonly errors: readonly FieldViolation[] }> {
  override readonly name = 'RequestValidationError';

  constructor(readonly violations: readonly FieldViolation[]) {
    super('VALIDATION_FAILED', violations.map((violation) => violation.message).join('; '), { errors: violations });
  }

  static fromValidationErrors(errors: readonly ValidationError[]): RequestValidationError {
    return new RequestValidationError(errors.flatMap((error) => flatten(error, '')));
  }
}

function flatten(error: ValidationError, prefix: string): FieldViolation[] {
  const field = prefix === '' ? error.property : `${prefix}.${error.property}`;
  const own = Object.entries(error.constraints ?? {}).map(([rule, message]) => ({ field, rule, message }));
  return own.concat((error.children ?? []).flatMap((child) => flatten(child, field)));
}
