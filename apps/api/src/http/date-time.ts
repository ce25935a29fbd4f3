import { isDateTime } from '@app/auth';
import { ValidateBy } from 'class-validator';

/** A property that must be an RFC 3339 date-time with an offset (`isDateTime`); the rule is `isDateTime`. */
export function IsDateTime(): PropertyDecorator {
  return ValidateBy({
    name: 'isDateTime',
    validator: {
      validate: (value: unknown) => isDateTime(value),
      defaultMessage: (validation) => `${validation?.property ?? 'value'} must be an RFC 3339 date-time with an offset (Z or ±hh:mm), such as 2027-01-01T00:00:00Z, in the years 0001 to 9999 in UTC`,
    },
  });
}
