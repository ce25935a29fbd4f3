import { isDateTime } from './date-time.js';

describe('isDateTime (RFC 3339 date-time with an offset)', () => {
  it.each([
    '2027-01-01T00:00:00Z',
    '2027-01-01T00:00:00.5Z',
    '2027-01-01T00:00:00.123456789+05:30',
    '2027-01-01t00:00:00z',
    '2027-12-31T23:59:59-00:00',
    '2028-02-29T12:00:00+23:59',
    '2000-02-29T00:00:00Z',
    '9999-12-31T23:59:59.999Z',
    '9999-12-31T23:59:59+00:01',
    '0001-01-01T00:00:00Z',
    '0000-12-31T23:00:00-01:00',
  ])('takes %s', (value) => {
    expect(isDateTime(value)).toBe(true);
    expect(Number.isNaN(new Date(value).getTime())).toBe(false);
  });

  it.each([
    ['a week date', '2027-W01-1'],
    ['a week date and time', '2027-W01-1T00:00:00Z'],
    ['an ordinal date', '2027-001T00:00:00Z'],
    ['a date alone', '2027-01-01'],
    ['no offset', '2027-01-01T00:00:00'],
    ['no seconds', '2027-01-01T00:00Z'],
    ['an offset without a colon', '2027-01-01T00:00:00+0100'],
    ['an offset in hours only', '2027-01-01T00:00:00+01'],
    ['a space for the T', '2027-01-01 00:00:00Z'],
    ['a day the month lacks', '2027-02-29T00:00:00Z'],
    ['a day the century lacks', '1900-02-29T00:00:00Z'],
    ['day 0', '2027-01-00T00:00:00Z'],
    ['month 13', '2027-13-01T00:00:00Z'],
    ['hour 24', '2027-01-01T24:00:00Z'],
    ['a leap second', '2027-12-31T23:59:60Z'],
    ['an offset of 24 hours', '2027-01-01T00:00:00+24:00'],
    ['an offset of 60 minutes', '2027-01-01T00:00:00+01:60'],
    ['a fraction of ten digits', '2027-01-01T00:00:00.1234567890Z'],
    ['an expanded year', '+002027-01-01T00:00:00Z'],
    ['an instant in the year 10000 in UTC', '9999-12-31T23:59:59-23:59'],
    ['an instant in the year 0 in UTC', '0001-01-01T00:00:00+00:01'],
    ['the year 0', '0000-06-01T00:00:00Z'],
    ['text after it', '2027-01-01T00:00:00Z '],
    ['a number', 1_798_761_600_000],
    ['null', null],
  ])('refuses %s (%s)', (_label, value) => {
    expect(isDateTime(value)).toBe(false);
  });
});
