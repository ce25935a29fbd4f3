import { nextHeldBackRetry } from './postgres-event-store.js';

/**
 * While a live subscription's reads say events past its position are held back by the visibility
 * rule (an older transaction still runs, and no wake-up will come when they become visible), it reads
 * again after a short wait, doubling up to a second or its poll. `append-wakeups.spec.ts` shows the
 * events found once the older transaction ends; this pins the schedule, which that spec cannot count.
 */
describe('nextHeldBackRetry: the re-reads of a subscription while events are held back', () => {
  const held = { found: false, heldBack: true };

  /** The waits of `reads` reads in a row that find nothing and events held back. */
  function schedule(pollIntervalMs: number, reads: number): number[] {
    const waits: number[] = [];
    let wait = 0;
    for (let read = 0; read < reads; read += 1) {
      wait = nextHeldBackRetry(wait, { ...held, pollIntervalMs });
      waits.push(wait);
    }
    return waits;
  }

  it('starts at 10 ms and doubles up to a second under a long poll', () => {
    expect(schedule(60_000, 10)).toEqual([10, 20, 40, 80, 160, 320, 640, 1_000, 1_000, 1_000]);
  });

  it('keeps reading every second for as long as events are held back, not only until the waits add up to the poll', () => {
    expect(schedule(60_000, 200).slice(-3)).toEqual([1_000, 1_000, 1_000]);
  });

  it('never waits longer than the poll interval', () => {
    expect(schedule(250, 8)).toEqual([10, 20, 40, 80, 160, 250, 250, 250]);
    expect(schedule(5, 3)).toEqual([5, 5, 5]);
  });

  it('stops (a wake-up or the poll) as soon as a read finds nothing held back, and starts again at 10 ms', () => {
    expect(nextHeldBackRetry(640, { found: false, heldBack: false, pollIntervalMs: 60_000 })).toBe(0);
    expect(nextHeldBackRetry(640, { found: true, heldBack: false, pollIntervalMs: 60_000 })).toBe(0);
    expect(nextHeldBackRetry(0, { ...held, pollIntervalMs: 60_000 })).toBe(10);
  });

  it('starts again at 10 ms after a read that found events with more held back, however long the waits before it (a catch-up through full pages)', () => {
    expect(nextHeldBackRetry(1_000, { found: true, heldBack: true, pollIntervalMs: 60_000 })).toBe(10);
    expect(nextHeldBackRetry(0, { found: true, heldBack: true, pollIntervalMs: 60_000 })).toBe(10);
    expect(nextHeldBackRetry(10, { found: true, heldBack: true, pollIntervalMs: 5 })).toBe(5);
  });
});
