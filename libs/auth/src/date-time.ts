/**
 * RFC 3339's `date-time` (OpenAPI's `format: date-time`): a full date, `T`, a time to the second with
 * an optional fraction (up to nanoseconds), and an offset, `Z` or `±hh:mm`. The letters may be lower
 * case (RFC 3339, 5.6). Nothing else: ISO 8601's week and ordinal dates, a date alone, or a time
 * without an offset (which would be read in the server's time zone) are not instants.
 */
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

/**
 * Whether `value` is an RFC 3339 date-time with an offset that names a real instant: a day the month
 * has (not 2027-02-29, which `Date` would roll over to March), hours to 23, no leap second (which
 * `Date` cannot hold), and in UTC within the years 0001 to 9999 (an offset can carry 9999-12-31 into
 * the year 10000, which `toISOString` writes `+010000-…` and PostgreSQL refuses). Such a value parses
 * with `new Date(value)` to the instant it names.
 */
export function isDateTime(value: unknown): value is string {
  const match = typeof value === 'string' ? DATE_TIME.exec(value) : null;
  if (match === null) return false;
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, offsetHour = 0, offsetMinute = 0] = match.slice(1).map((part) => Number(part ?? 0));
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const daysInMonth = month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0);
  if (!(day >= 1 && day <= daysInMonth && hour <= 23 && minute <= 59 && second <= 59 && offsetHour <= 23 && offsetMinute <= 59)) return false;
  const utcYear = new Date(value as string).getUTCFullYear();
  return utcYear >= 1 && utcYear <= 9999;
}
