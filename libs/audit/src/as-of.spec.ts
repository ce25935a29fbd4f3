import { stateAsOf, tokenAccountBalanceAsOf } from './as-of.js';
import { sealedStream, STEPS } from './testing/sealed-stream.fixtures.js';

// Balances after each step: 100, 70, 120, 50, 45.
describe('as-of replay', () => {
  const events = sealedStream(STEPS);

  it('gives the balance at each revision', () => {
    expect([-1n, 0n, 1n, 2n, 3n, 4n, 99n].map((revision) => tokenAccountBalanceAsOf(events, { revision }))).toEqual([
      { balance: 0, revision: -1n },
      { balance: 100, revision: 0n },
      { balance: 70, revision: 1n },
      { balance: 120, revision: 2n },
      { balance: 50, revision: 3n },
      { balance: 45, revision: 4n },
      { balance: 45, revision: 4n },
    ]);
  });

  it('gives the balance at several times, including exactly at an event and before the first', () => {
    const at = (iso: string) => tokenAccountBalanceAsOf(events, { at: new Date(iso) });
    expect(at('2025-12-31T23:59:59.999Z')).toEqual({ balance: 0, revision: -1n });
    expect(at('2026-01-01T10:00:00.000Z')).toEqual({ balance: 100, revision: 0n });
    expect(at('2026-01-02T09:59:59.999Z')).toEqual({ balance: 100, revision: 0n });
    expect(at('2026-01-03T12:00:00.000Z')).toEqual({ balance: 120, revision: 2n });
    expect(at('2030-01-01T00:00:00.000Z')).toEqual({ balance: 45, revision: 4n });
  });

  it('stops at the first event past the time, so the state is always one the stream passed through', () => {
    // Revision 2's writer had a clock behind revision 1's.
    const skewed = sealedStream([STEPS[0]!, STEPS[1]!, { ...STEPS[2]!, at: '2026-01-01T12:00:00.000Z' }]);
    expect(tokenAccountBalanceAsOf(skewed, { at: new Date('2026-01-01T13:00:00.000Z') })).toEqual({ balance: 100, revision: 0n });
  });

  it('refuses a stream with a gap and an event without a valid time', () => {
    expect(() => tokenAccountBalanceAsOf([events[0]!, events[2]!], { revision: 4n })).toThrow('expects revision 1, found 2');
    const timeless = [{ ...events[0]!, data: { ...(events[0]!.data as object), occurredAt: 'yesterday' } }];
    expect(() => tokenAccountBalanceAsOf(timeless, { at: new Date() })).toThrow('no valid data.occurredAt');
  });

  it('replays admin adjustments either way', () => {
    const adjusted = sealedStream([
      STEPS[0]!,
      { kind: 'adjustment', amount: -100, at: '2026-01-02T10:00:00.000Z' },
      { kind: 'adjustment', amount: 25, at: '2026-01-03T10:00:00.000Z' },
      { kind: 'usage', amount: 5, at: '2026-01-04T10:00:00.000Z' },
    ]);
    expect([0n, 1n, 2n, 3n].map((revision) => tokenAccountBalanceAsOf(adjusted, { revision }).balance)).toEqual([100, 0, 25, 20]);
    expect(tokenAccountBalanceAsOf(adjusted, { at: new Date('2026-01-03T12:00:00.000Z') })).toEqual({ balance: 25, revision: 2n });
  });

  it('replays with any decider', () => {
    const counter = { initialState: 0, evolve: (state: number) => state + 1 };
    expect(stateAsOf(events, counter, { revision: 2n })).toEqual({ state: 3, revision: 2n });
  });
});
