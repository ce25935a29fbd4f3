import fc from 'fast-check';
import { fold } from '../decider.js';
import { propertyRuns } from '../testing/property-runs.js';
import { runSteps as runWith, stepArbitrary, type Step } from '../testing/random-history.js';
import { sweepExpiries } from './expiry.decide.js';
import { freeOf, isLive } from './lot.state.js';
import { tokenAccountDecider } from './token-account.decider.js';
import type { TokenAccountEvent } from './token-account.events.js';
import { tokenAccountSnapshot } from './token-account.snapshot.js';
import type { TokenAccountState } from './token-account.state.js';

const userId = '11111111-1111-4111-8111-111111111111';
const runSteps = (steps: readonly Step[], onStep?: (state: TokenAccountState, events: readonly TokenAccountEvent[]) => void) => runWith(userId, steps, onStep);

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

describe('token account: properties of random histories', () => {
  it('generates histories with every kind of hold and lot event, so the properties below are about them', () => {
    const types = new Set(fc.sample(fc.array(stepArbitrary, { minLength: 20, maxLength: 80 }), { numRuns: 200, seed: 7 }).flatMap((steps) => runSteps(steps).map((event) => event.type)));
    expect([...types].sort()).toEqual(
      expect.arrayContaining(['GrantVoided', 'HoldExpired', 'HoldReleased', 'HoldSettled', 'LotExpired', 'PaymentRefundRequested', 'PaymentRefundFailed', 'TokensAdjusted', 'TokensGranted', 'TokensHeld', 'TokensPurchased', 'TokensRefunded', 'TokensUsed', 'PaymentDisputeClosed', 'TokensChargedBack', 'ShortfallCovered']),
    );
  });

  it('keeps balance = sum of live lots, held = sum of active holds = sum of reservations, 0 <= available <= balance', () => {
    fc.assert(
      fc.property(fc.array(stepArbitrary, { minLength: 20, maxLength: 80 }), (steps) => {
        runSteps(steps, (state) => {
          expect(sum([...state.lots.values()].map((lot) => lot.remaining))).toBe(state.balance);
          expect(sum([...state.holds.values()].map((hold) => hold.amount))).toBe(state.held);
          expect(sum([...state.lots.values()].map((lot) => lot.reserved))).toBe(state.held + state.reservedForRefunds);
          expect(state.held).toBeGreaterThanOrEqual(0);
          expect(state.balance - state.held - state.reservedForRefunds).toBeGreaterThanOrEqual(0);
          for (const lot of state.lots.values()) expect(lot.reserved <= lot.remaining && lot.remaining + lot.reserved > 0).toBe(true);
        });
      }),
      { numRuns: propertyRuns(120) },
    );
  });

  it('never lets a decision see free tokens beside a shortfall of lost disputes, however long after the last event it is decided (ADR 0024)', () => {
    fc.assert(
      fc.property(fc.array(stepArbitrary, { minLength: 20, maxLength: 80 }), fc.integer({ min: 0, max: 4 * 24 * 60 }), (steps, minutesLater) => {
        runSteps(steps, (state) => {
          if (!Number.isFinite(state.lastOccurredAtMs)) return;
          // What every command decides on at `now`: the state with the expiries due then applied.
          const now = new Date(state.lastOccurredAtMs + minutesLater * 60_000);
          const swept = sweepExpiries(state, { userId, now, transactionId: 'property' }, 'property').state;
          const free = sum([...swept.lots.values()].filter((lot) => isLive(lot, now)).map(freeOf));
          expect(swept.shortfall === 0 || free === 0).toBe(true);
        });
      }),
      { numRuns: propertyRuns(120) },
    );
  });

  it('replays to the same state, and a snapshot of it decodes to the same state', () => {
    fc.assert(
      fc.property(fc.array(stepArbitrary, { minLength: 20, maxLength: 80 }), (steps) => {
        let last = tokenAccountDecider.initialState;
        const events = runSteps(steps, (state) => {
          last = state;
        });
        const replayed = fold(tokenAccountDecider, tokenAccountDecider.initialState, events);
        const decoded = tokenAccountSnapshot.decode(JSON.parse(JSON.stringify(tokenAccountSnapshot.encode(replayed))));
        for (const state of [replayed, decoded]) {
          expect({ balance: state.balance, held: state.held, lots: state.lots.toJS(), holds: state.holds.toJS(), ended: state.endedHolds.toJS() }).toEqual({
            balance: last.balance,
            held: last.held,
            lots: last.lots.toJS(),
            holds: last.holds.toJS(),
            ended: last.endedHolds.toJS(),
          });
        }
      }),
      { numRuns: propertyRuns(200) },
    );
  });

  it('records no event earlier than the one before it, whatever clock its command read', () => {
    fc.assert(
      fc.property(fc.array(stepArbitrary, { minLength: 20, maxLength: 80 }), (steps) => {
        const times = runSteps(steps).map((event) => Date.parse(event.data.occurredAt));
        for (let index = 1; index < times.length; index += 1) expect(times[index]).toBeGreaterThanOrEqual(times[index - 1] as number);
      }),
      { numRuns: propertyRuns(200) },
    );
  });

  it('never lets a debit take more than was available, whatever the order of holds, usages and expiries', () => {
    fc.assert(
      fc.property(fc.array(stepArbitrary, { minLength: 20, maxLength: 80 }), (steps) => {
        const events = runSteps(steps);
        let credited = 0;
        let debited = 0;
        for (const event of events) {
          if (event.type === 'TokensPurchased' || event.type === 'TokensGranted' || (event.type === 'TokensAdjusted' && event.data.amount > 0)) credited += event.data.amount;
          if (event.type === 'TokensUsed' || event.type === 'TokensRefunded' || event.type === 'GrantVoided' || event.type === 'LotExpired' || event.type === 'TokensChargedBack' || event.type === 'ShortfallCovered') {
            debited += event.data.amount;
          }
          if (event.type === 'TokensAdjusted' && event.data.amount < 0) debited -= event.data.amount;
          if (event.type === 'HoldSettled') debited += event.data.settledAmount;
          expect(debited).toBeLessThanOrEqual(credited);
        }
        const final = fold(tokenAccountDecider, tokenAccountDecider.initialState, events);
        expect(final.balance).toBe(credited - debited);
      }),
      { numRuns: propertyRuns(200) },
    );
  });
});
