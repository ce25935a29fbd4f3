import { NO_HELD_BACK_RETRY, nextHeldBackRetry, type HeldBackRetry } from './postgres-event-store.js';

/**
 * A live subscription woken by a commit whose read finds nothing (the events are held back by an
 * older transaction, and nothing will wake it again for them) reads again after a short wait,
 * doubling up to a second, until the poll takes over. `append-wakeups.spec.ts` shows the events
 * found once the older transaction ends; this pins the schedule, which the end-to-end spec cannot count.
 */
describe('nextHeldBackRetry: the retries of a subscription whose wake found nothing', () => {
  const pollIntervalMs = 250;
  const empty = { found: false, woken: false };

  /** The waits from a wake that found nothing until the poll takes over. */
  function schedule(poll: number): number[] {
    const waits: number[] = [];
    let retry = nextHeldBackRetry(NO_HELD_BACK_RETRY, { found: false, woken: true, pollIntervalMs: poll });
    while (retry.waitMs > 0) {
      waits.push(retry.waitMs);
      retry = nextHeldBackRetry(retry, { ...empty, pollIntervalMs: poll });
    }
    return waits;
  }

  it('starts at 10 ms when a commit woke the read and it found nothing', () => {
    expect(nextHeldBackRetry(NO_HELD_BACK_RETRY, { found: false, woken: true, pollIntervalMs })).toEqual({ waitMs: 10, waitedMs: 0 });
  });

  it('starts again at 10 ms on a new wake in the middle of the retries', () => {
    expect(nextHeldBackRetry({ waitMs: 80, waitedMs: 70 }, { found: false, woken: true, pollIntervalMs })).toEqual({ waitMs: 10, waitedMs: 0 });
  });

  it('doubles after each empty read without a wake, and stops (the poll) once the wait would reach the poll interval', () => {
    expect(schedule(pollIntervalMs)).toEqual([10, 20, 40, 80, 160]);
  });

  it('stops when the doubled wait equals the poll interval exactly, and keeps going just under it', () => {
    expect(nextHeldBackRetry({ waitMs: 40, waitedMs: 30 }, { ...empty, pollIntervalMs: 80 })).toBe(NO_HELD_BACK_RETRY);
    expect(nextHeldBackRetry({ waitMs: 40, waitedMs: 30 }, { ...empty, pollIntervalMs: 81 })).toEqual({ waitMs: 80, waitedMs: 70 });
  });

  it('waits at most a second between reads under a long poll, so events held back for a while are read within a second of becoming visible', () => {
    const waits = schedule(60_000);
    expect(waits.slice(0, 8)).toEqual([10, 20, 40, 80, 160, 320, 640, 1_000]);
    expect(Math.max(...waits)).toBe(1_000);
  });

  it('stops once its waits add up to the poll interval: an idle subscription reads at the poll, not every second', () => {
    const waits = schedule(60_000);
    const waited = waits.reduce((sum, wait) => sum + wait, 0);
    // 1,270 ms of doubling, then seconds until 60 s are covered.
    expect(waits.filter((wait) => wait === 1_000)).toHaveLength(59);
    expect(waited).toBe(60_270);
    // The wait just read makes the total: a poll interval exactly stops, a millisecond less goes on.
    expect(nextHeldBackRetry({ waitMs: 1_000, waitedMs: 59_000 }, { ...empty, pollIntervalMs: 60_000 })).toBe(NO_HELD_BACK_RETRY);
    expect(nextHeldBackRetry({ waitMs: 1_000, waitedMs: 58_999 }, { ...empty, pollIntervalMs: 60_000 })).toEqual({ waitMs: 1_000, waitedMs: 59_999 });
  });

  it('ends the retries when a read finds events, woken or not', () => {
    expect(nextHeldBackRetry({ waitMs: 40, waitedMs: 30 }, { found: true, woken: false, pollIntervalMs })).toBe(NO_HELD_BACK_RETRY);
    expect(nextHeldBackRetry(NO_HELD_BACK_RETRY, { found: true, woken: true, pollIntervalMs })).toBe(NO_HELD_BACK_RETRY);
  });

  it('waits for the poll, with no retry, when nothing was woken and none is running', () => {
    const idle: HeldBackRetry = NO_HELD_BACK_RETRY;
    expect(nextHeldBackRetry(idle, { ...empty, pollIntervalMs })).toBe(NO_HELD_BACK_RETRY);
  });
});
