import { nextHeldBackRetryMs } from './postgres-event-store.js';

/**
 * A live subscription woken by a commit whose read finds nothing (the events are held back by an
 * older transaction, and nothing will wake it again for them) reads again after a short wait,
 * doubling, until the poll takes over. `append-wakeups.spec.ts` shows the events found once the
 * older transaction ends; this pins the schedule, which the end-to-end spec cannot count.
 */
describe('nextHeldBackRetryMs: the retries of a subscription whose wake found nothing', () => {
  const pollIntervalMs = 250;

  it('starts at 10 ms when a commit woke the read and it found nothing', () => {
    expect(nextHeldBackRetryMs(0, { found: false, woken: true, pollIntervalMs })).toBe(10);
  });

  it('starts again at 10 ms on a new wake in the middle of the retries', () => {
    expect(nextHeldBackRetryMs(80, { found: false, woken: true, pollIntervalMs })).toBe(10);
  });

  it('doubles after each empty read without a wake, and stops (0: the poll) once the wait would reach the poll interval', () => {
    const schedule: number[] = [];
    let wait = nextHeldBackRetryMs(0, { found: false, woken: true, pollIntervalMs });
    while (wait > 0) {
      schedule.push(wait);
      wait = nextHeldBackRetryMs(wait, { found: false, woken: false, pollIntervalMs });
    }
    expect(schedule).toEqual([10, 20, 40, 80, 160]);
  });

  it('stops when the doubled wait equals the poll interval exactly, and keeps going just under it', () => {
    expect(nextHeldBackRetryMs(40, { found: false, woken: false, pollIntervalMs: 80 })).toBe(0);
    expect(nextHeldBackRetryMs(40, { found: false, woken: false, pollIntervalMs: 81 })).toBe(80);
  });

  it('ends the retries when a read finds events, woken or not', () => {
    expect(nextHeldBackRetryMs(40, { found: true, woken: false, pollIntervalMs })).toBe(0);
    expect(nextHeldBackRetryMs(0, { found: true, woken: true, pollIntervalMs })).toBe(0);
  });

  it('waits for the poll, with no retry, when nothing was woken and none is running', () => {
    expect(nextHeldBackRetryMs(0, { found: false, woken: false, pollIntervalMs })).toBe(0);
  });
});
