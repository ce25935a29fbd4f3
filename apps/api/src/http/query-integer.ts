import { Transform } from 'class-transformer';

/**
 * A query parameter read as a number only when it is written as a decimal integer (digits and an
 * optional minus). Anything else (`2.5`, `5.0`, `0x10`, `1e3`, ` 5`, an empty value, a repeated
 * parameter) stays as it came, for IsInt to refuse; `Number()` would have read `0x10` as 16, `5.0`
 * as 5 and the empty value as 0.
 */
export function QueryInteger(): PropertyDecorator {
  return Transform(({ value }: { value: unknown }) => (typeof value === 'string' && /^-?\d{1,20}$/.test(value) ? Number(value) : value));
}
