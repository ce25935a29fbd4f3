import { isBlank, textLength } from '@app/ledger';
import { Matches, ValidateBy } from 'class-validator';

/**
 * Text PostgreSQL can store in a jsonb event and RFC 8785 can canonicalize: no NUL character and no
 * unpaired UTF-16 surrogate (with the `u` flag a valid pair is one code point, outside the class).
 * Without this such a string passes validation and fails at the append with a 500.
 */
export function IsStorableText(): PropertyDecorator {
  // eslint-disable-next-line no-control-regex -- matching NUL is the point
  return Matches(/^[^\u0000\uD800-\uDFFF]*$/u, { message: ({ property }) => `${property} must not contain NUL or unpaired surrogate characters` });
}

/**
 * At most `max` characters, counted as the ledger counts them (textLength: code points). Replaces
 * class-validator's MaxLength, whose count (UTF-16 units less surrogate pairs and variation
 * selectors) is neither JavaScript's nor PostgreSQL's. The rule keeps MaxLength's name.
 */
export function MaxCharacters(max: number): PropertyDecorator {
  return ValidateBy({
    name: 'maxLength',
    constraints: [max],
    validator: {
      validate: (value: unknown) => typeof value === 'string' && textLength(value) <= max,
      defaultMessage: (validation) => `${validation?.property ?? 'text'} must be at most ${max} characters`,
    },
  });
}

/**
 * Not blank as the ledger judges it (`isBlank`): some character outside white space, controls and
 * the invisible ones. Keeps IsNotEmpty's rule name, which a reason of spaces was refused with (the
 * value is trimmed first): U+0085, U+200B or a Hangul filler alone, which `trim` leaves, is refused
 * the same way.
 */
export function IsNotBlank(): PropertyDecorator {
  return ValidateBy({
    name: 'isNotEmpty',
    validator: {
      validate: (value: unknown) => typeof value === 'string' && !isBlank(value),
      defaultMessage: (validation) => `${validation?.property ?? 'text'} must not be empty or blank`,
    },
  });
}
