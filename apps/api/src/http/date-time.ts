import { isDateTime } from '@app/auth';
import { ValidateBy } from 'class-validator';

/** A date-time whose offset's `+` became a space: what a query string's form decoding makes of a bare `+`. */
const PLUS_READ_AS_SPACE = /^\d{4}-\d{2}-\d{2}T[\d:.]+ \d{2}:\d{2}$/;

/** A property that must be an RFC 3339 date-time with an offset (`isDateTime`); the rule is `isDateTime`. */
export function IsDateTime(): PropertyDecorator {
  return ValidateBy({
    name: 'isDateTime',
    validator: {
      validate: (value: unknown) => isDateTime(value),
      defaultMessage: (validation) => {
        const rule = `${validation?.property ?? 'value'} must be an RFC 3339 date-time with an offset (Z or ±hh:mm), such as 2027-01-01T00:00:00Z, in the years 0001 to 9999 in UTC`;
        return typeof validation?.value === 'string' && PLUS_READ_AS_SPACE.test(validation.value) ? `${rule}; in a query string a + reads as a space, so send it as %2B` : rule;
      },
    },
  });
}
