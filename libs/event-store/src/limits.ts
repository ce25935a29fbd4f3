import { APPEND_COUNT_MAX, READ_COUNT_MAX } from './event-store.port.js';

/** The number of events a read returns at most: 1 to READ_COUNT_MAX, READ_COUNT_MAX when unset. */
export function checkedReadCount(maxCount: number | undefined): number {
  const count = maxCount ?? READ_COUNT_MAX;
  if (!Number.isSafeInteger(count) || count < 1 || count > READ_COUNT_MAX) {
    throw new RangeError(`maxCount must be an integer from 1 to ${READ_COUNT_MAX}, not ${count}`);
  }
  return count;
}

/** An append takes 1 to APPEND_COUNT_MAX events. */
export function checkAppendCount(count: number): void {
  if (count === 0 || count > APPEND_COUNT_MAX) {
    throw new RangeError(`an append takes 1 to ${APPEND_COUNT_MAX} events, not ${count}`);
  }
}
