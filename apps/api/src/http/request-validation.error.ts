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
  return violationsOf(field, error).concat((error.children ?? []).flatMap((child) => flatten(child, field)));
}

/** The rules that judge a value's type: the other rules of a property (ranges, lengths, patterns) judge values of that type only. */
const TYPE_RULES: ReadonlySet<string> = new Set(['isInt', 'isNumber', 'isString', 'isBoolean', 'isArray', 'isObject']);

/**
 * What one property breaks, said once. class-validator runs every rule of a property and reports
 * each that fails, so a missing amount broke max, min and isInt, and a missing reason four rules
 * down to the NUL character. A required property that is missing (or null: IsOptional lets an
 * optional one be either) is `isDefined`, "is required"; a value of the wrong type breaks its type
 * rule only; a value of the right type gets every rule it breaks. An unknown property is named as
 * such, whatever its value.
 */
function violationsOf(field: string, error: ValidationError): FieldViolation[] {
  const rules = Object.entries(error.constraints ?? {});
  const unknownProperty = rules.some(([rule]) => rule === 'whitelistValidation');
  if (rules.length > 0 && !unknownProperty && (error.value === undefined || error.value === null)) return [{ field, rule: 'isDefined', message: `${field} is required` }];
  const typeRules = rules.filter(([rule]) => TYPE_RULES.has(rule));
  return (typeRules.length > 0 ? typeRules : rules).map(([rule, message]) => ({ field, rule, message }));
}
