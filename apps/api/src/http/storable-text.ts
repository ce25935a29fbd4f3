import { Matches } from 'class-validator';

/**
 * Text PostgreSQL can store in a jsonb event and RFC 8785 can canonicalize: no NUL character and no
 * unpaired UTF-16 surrogate (with the `u` flag a valid pair is one code point, outside the class).
 * Without this such a string passes validation and fails at the append with a 500.
 */
export function IsStorableText(): PropertyDecorator {
  // eslint-disable-next-line no-control-regex -- matching NUL is the point
  return Matches(/^[^\u0000\uD800-\uDFFF]*$/u, { message: ({ property }) => `${property} must not contain NUL or unpaired surrogate characters` });
}
