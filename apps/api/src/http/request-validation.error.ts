import type { ValidationError } from 'class-validator';

export type FieldViolation = { readonly field: string; readonly rule: string; readonly message: string };

/** A request that breaks a DTO rule; every violated field and rule is listed. */
export class RequestValidationError extends Error {
  override readonly name = 'RequestValidationError';

  constructor(readonly violations: readonly FieldViolation[]) {
    super(violations.map((violation) => violation.message).join('; '));
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
