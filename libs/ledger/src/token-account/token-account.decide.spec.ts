import { fold } from '../decider.js';
import { LedgerError, LedgerInvariantViolation } from '../ledger.errors.js';
import { deciderSpecification } from '../testing/decider-specification.js';
import { DESCRIPTION_LENGTH_MAX, LOT_PRIORITY_DEFAULT, REASON_LENGTH_MAX, TOKEN_AMOUNT_MAX } from '../ledger.limits.js';
import { OPENING_LOT_ID } from './lot.state.js';
import type { AddTokens, AdjustTokens, TokenAccountCommand, UseTokens } from './token-account.commands.js';
import { tokenAccountDecider } from './token-account.decider.js';
import type { TokensAdjusted, TokensPurchased, TokensUsed } from './token-account.events.js';

const userId = '11111111-1111-4111-8111-111111111111';
const paymentId = '22222222-2222-4222-8222-222222222222';
const otherPaymentId = '33333333-3333-4333-8333-333333333333';
const transactionId = '44444444-4444-4444-8444-444444444444';
const now = new Date('2026-11-24T12:00:00.000Z');
const spec = deciderSpecification(tokenAccountDecider);

function addTokens(overrides: Partial<AddTokens['data']> = {}): AddTokens {
  return { type: 'AddTokens', data: { userId, paymentId, amount: 100, description: 'Starter pack', transactionId, now, ...overrides } };
}

function useTokens(overrides: Partial<UseTokens['data']> = {}): UseTokens {
  return { type: 'UseTokens', data: { userId, amount: 30, description: 'Chat completion', transactionId, now, ...overrides } };
}

function purchased(amount: number, balanceAfter: number, id = paymentId, description: string | null = 'Starter pack'): TokensPurchased {
  return {
    type: 'TokensPurchased',
    data: { userId, transactionId: `tx-${id}`, paymentId: id, amount, description, balanceAfter, occurredAt: '2026-11-24T11:00:00.000Z' },
  };
}

function used(amount: number, balanceAfter: number): TokensUsed {
  return { type: 'TokensUsed', data: { userId, transactionId: 'tx-used', amount, description: null, balanceAfter, occurredAt: '2026-11-24T11:30:00.000Z' } };
}

describe('token account: AddTokens', () => {
  it('credits a new account with the purchased tokens', () => {
    spec
      .given([])
      .when(addTokens())
      .then([
        {
          type: 'TokensPurchased',
          data: { userId, transactionId, paymentId, amount: 100, description: 'Starter pack', balanceAfter: 100, occurredAt: '2026-11-24T12:00:00.000Z', lot: { lotId: transactionId, priority: LOT_PRIORITY_DEFAULT, expiresAt: null }, heldAfter: 0 },
        },
      ]);
  });

  it('adds to the balance of an existing account', () => {
    spec
      .given([purchased(50, 50, otherPaymentId), used(20, 30)])
      .when(addTokens({ amount: 70 }))
      .then([
        {
          type: 'TokensPurchased',
          data: { userId, transactionId, paymentId, amount: 70, description: 'Starter pack', balanceAfter: 100, occurredAt: '2026-11-24T12:00:00.000Z', lot: { lotId: transactionId, priority: LOT_PRIORITY_DEFAULT, expiresAt: null }, heldAfter: 0 },
        },
      ]);
  });

  it('decides nothing when the same payment is credited again with the same payload', () => {
    spec.given([purchased(100, 100)]).when(addTokens({ transactionId: 'another-transaction' })).thenNothing();
  });

  it('refuses the same payment id with a different amount', () => {
    spec.given([purchased(100, 100)]).when(addTokens({ amount: 101 })).thenThrows('PAYMENT_ID_REUSED', { creditedAmount: 100, requestedAmount: 101 });
  });

  it('refuses the same payment id with a different description', () => {
    spec.given([purchased(100, 100)]).when(addTokens({ description: 'Other pack' })).thenThrows('PAYMENT_ID_REUSED');
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, TOKEN_AMOUNT_MAX + 1])('rejects the amount %p', (amount) => {
    spec.given([]).when(addTokens({ amount })).thenThrows('AMOUNT_OUT_OF_RANGE');
  });

  it('accepts the largest amount on an empty account', () => {
    spec
      .given([])
      .when(addTokens({ amount: TOKEN_AMOUNT_MAX }))
      .then([purchasedNow(TOKEN_AMOUNT_MAX, TOKEN_AMOUNT_MAX)]);
  });

  it('refuses a credit that would take the balance past the safe-integer maximum', () => {
    spec
      .given([purchased(TOKEN_AMOUNT_MAX, TOKEN_AMOUNT_MAX, otherPaymentId)])
      .when(addTokens({ amount: 1 }))
      .thenThrows('BALANCE_OUT_OF_RANGE', { balance: TOKEN_AMOUNT_MAX, requested: 1 });
  });

  it('caps one purchase at the amount cap the command carries, and not below it', () => {
    spec.given([]).when(addTokens({ amount: 1_000_001, amountMax: 1_000_000 })).thenThrows('AMOUNT_OUT_OF_RANGE', { field: 'amount', amount: 1_000_001, min: 1, max: 1_000_000 });
    spec.given([]).when(addTokens({ amount: TOKEN_AMOUNT_MAX, amountMax: 1_000_000 })).thenThrows('AMOUNT_OUT_OF_RANGE', { max: 1_000_000 });
    spec.given([]).when(addTokens({ amount: 1_000_000, amountMax: 1_000_000 })).then([purchasedNow(1_000_000, 1_000_000)]);
  });

  it('rejects a description longer than the limit', () => {
    spec.given([]).when(addTokens({ description: 'x'.repeat(DESCRIPTION_LENGTH_MAX + 1) })).thenThrows('DESCRIPTION_TOO_LONG');
  });

  it('counts a description in characters: the limit in astral characters is accepted, one more is refused', () => {
    const astral = '\u{1F389}'.repeat(DESCRIPTION_LENGTH_MAX);
    spec.given([]).when(addTokens({ description: astral })).then([purchasedNow(100, 100, astral)]);
    spec.given([]).when(addTokens({ description: `${astral}x` })).thenThrows('DESCRIPTION_TOO_LONG', { length: DESCRIPTION_LENGTH_MAX + 1, max: DESCRIPTION_LENGTH_MAX });
  });

  it('accepts a description of exactly the limit and a missing description', () => {
    const longest = 'x'.repeat(DESCRIPTION_LENGTH_MAX);
    spec.given([]).when(addTokens({ description: longest })).then([purchasedNow(100, 100, longest)]);
    spec.given([]).when(addTokens({ description: null })).then([purchasedNow(100, 100, null)]);
  });
});

describe('token account: UseTokens', () => {
  it('debits the balance', () => {
    spec
      .given([purchased(100, 100)])
      .when(useTokens())
      .then([
        {
          type: 'TokensUsed',
          data: { userId, transactionId, amount: 30, description: 'Chat completion', balanceAfter: 70, occurredAt: '2026-11-24T12:00:00.000Z', draws: [{ lotId: OPENING_LOT_ID, amount: 30 }], heldAfter: 0 },
        },
      ]);
  });

  it('may spend the balance down to exactly zero', () => {
    spec
      .given([purchased(30, 30)])
      .when(useTokens())
      .then([{ type: 'TokensUsed', data: { userId, transactionId, amount: 30, description: 'Chat completion', balanceAfter: 0, occurredAt: '2026-11-24T12:00:00.000Z', draws: [{ lotId: OPENING_LOT_ID, amount: 30 }], heldAfter: 0 } }]);
  });

  it('rejects usage above the balance with the balance and the request', () => {
    spec.given([purchased(100, 100), used(80, 20)]).when(useTokens({ amount: 21 })).thenThrows('INSUFFICIENT_BALANCE', { balance: 20, requested: 21 });
  });

  it('rejects usage on an account never credited', () => {
    spec.given([]).when(useTokens({ amount: 1 })).thenThrows('INSUFFICIENT_BALANCE', { balance: 0, requested: 1 });
  });

  it.each([0, -5, 0.5, TOKEN_AMOUNT_MAX + 1])('rejects the amount %p before looking at the balance', (amount) => {
    spec.given([purchased(100, 100)]).when(useTokens({ amount })).thenThrows('AMOUNT_OUT_OF_RANGE');
  });

  it('caps one purchase at the amount cap the command carries, and not below it', () => {
    spec.given([]).when(addTokens({ amount: 1_000_001, amountMax: 1_000_000 })).thenThrows('AMOUNT_OUT_OF_RANGE', { field: 'amount', amount: 1_000_001, min: 1, max: 1_000_000 });
    spec.given([]).when(addTokens({ amount: TOKEN_AMOUNT_MAX, amountMax: 1_000_000 })).thenThrows('AMOUNT_OUT_OF_RANGE', { max: 1_000_000 });
    spec.given([]).when(addTokens({ amount: 1_000_000, amountMax: 1_000_000 })).then([purchasedNow(1_000_000, 1_000_000)]);
  });

  it('rejects a description longer than the limit', () => {
    spec.given([purchased(100, 100)]).when(useTokens({ description: 'y'.repeat(DESCRIPTION_LENGTH_MAX + 1) })).thenThrows('DESCRIPTION_TOO_LONG');
  });
});

function adjustTokens(overrides: Partial<AdjustTokens['data']> = {}): AdjustTokens {
  return { type: 'AdjustTokens', data: { userId, amount: -30, reason: 'Refund of a failed call', transactionId, now, ...overrides } };
}

function adjustedNow(amount: number, balanceAfter: number, reason = 'Refund of a failed call'): TokensAdjusted {
  const lots = amount > 0 ? { lot: { lotId: transactionId, priority: LOT_PRIORITY_DEFAULT, expiresAt: null } } : { draws: [{ lotId: OPENING_LOT_ID, amount: -amount }] };
  return { type: 'TokensAdjusted', data: { userId, transactionId, amount, reason, balanceAfter, occurredAt: now.toISOString(), ...lots, heldAfter: 0 } };
}

describe('token account: AdjustTokens', () => {
  it('debits the balance with a negative adjustment and records the reason', () => {
    spec
      .given([purchased(100, 100)])
      .when(adjustTokens())
      .then([
        {
          type: 'TokensAdjusted',
          data: { userId, transactionId, amount: -30, reason: 'Refund of a failed call', balanceAfter: 70, occurredAt: '2026-11-24T12:00:00.000Z', draws: [{ lotId: OPENING_LOT_ID, amount: 30 }], heldAfter: 0 },
        },
      ]);
  });

  it('credits the balance with a positive adjustment, also on an account never credited', () => {
    spec.given([purchased(100, 100), used(80, 20)]).when(adjustTokens({ amount: 5, reason: 'Goodwill' })).then([adjustedNow(5, 25, 'Goodwill')]);
    spec.given([]).when(adjustTokens({ amount: 5, reason: 'Goodwill' })).then([adjustedNow(5, 5, 'Goodwill')]);
  });

  it('may take the balance down to exactly zero', () => {
    spec.given([purchased(30, 30)]).when(adjustTokens({ amount: -30 })).then([adjustedNow(-30, 0)]);
  });

  it('refuses a debit below zero with the balance and the signed request', () => {
    spec.given([purchased(100, 100), used(80, 20)]).when(adjustTokens({ amount: -21 })).thenThrows('ADJUSTMENT_EXCEEDS_BALANCE', { balance: 20, requested: -21 });
    spec.given([]).when(adjustTokens({ amount: -1 })).thenThrows('ADJUSTMENT_EXCEEDS_BALANCE', { balance: 0, requested: -1 });
  });

  it('refuses a credit that would take the balance past the safe-integer maximum, as a purchase is refused', () => {
    spec
      .given([purchased(TOKEN_AMOUNT_MAX, TOKEN_AMOUNT_MAX, otherPaymentId)])
      .when(adjustTokens({ amount: 1 }))
      .thenThrows('BALANCE_OUT_OF_RANGE', { balance: TOKEN_AMOUNT_MAX, requested: 1 });
  });

  it('accepts the largest amount either way', () => {
    spec.given([]).when(adjustTokens({ amount: TOKEN_AMOUNT_MAX })).then([adjustedNow(TOKEN_AMOUNT_MAX, TOKEN_AMOUNT_MAX)]);
    spec
      .given([purchased(TOKEN_AMOUNT_MAX, TOKEN_AMOUNT_MAX)])
      .when(adjustTokens({ amount: -TOKEN_AMOUNT_MAX }))
      .then([adjustedNow(-TOKEN_AMOUNT_MAX, 0)]);
  });

  it.each([0, -0, 1.5, -0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, TOKEN_AMOUNT_MAX + 1, -TOKEN_AMOUNT_MAX - 1])(
    'rejects the amount %p before looking at the balance',
    (amount) => {
      spec.given([purchased(100, 100)]).when(adjustTokens({ amount })).thenThrows('AMOUNT_OUT_OF_RANGE', { min: -TOKEN_AMOUNT_MAX, max: TOKEN_AMOUNT_MAX });
    },
  );

  // U+0085 (NEXT LINE), U+200B (ZERO WIDTH SPACE), U+3164 (HANGUL FILLER), U+2800 (BRAILLE PATTERN BLANK), U+00AD (SOFT HYPHEN) and U+FEFF show nothing; `trim` leaves all but the last.
  it.each(['', ' ', '\t\n ', '\u0085', '\u200B', '\u3164', '\u2800', '\u00A0\u3000\u00AD\uFEFF'])('refuses the blank reason %j', (reason) => {
    spec.given([purchased(100, 100)]).when(adjustTokens({ reason })).thenThrows('REASON_REQUIRED');
  });

  it.each(['x', '\u200Bx', '\u00E9'])('takes a reason with one character that shows, %j', (reason) => {
    spec.given([purchased(100, 100)]).when(adjustTokens({ reason })).then([expect.objectContaining({ type: 'TokensAdjusted', data: expect.objectContaining({ reason }) })]);
  });

  it('counts a reason in characters, astral ones included', () => {
    const astral = '\u{1D11E}'.repeat(REASON_LENGTH_MAX);
    spec.given([purchased(100, 100)]).when(adjustTokens({ reason: astral })).then([adjustedNow(-30, 70, astral)]);
    spec.given([purchased(100, 100)]).when(adjustTokens({ reason: `${astral}\u{1D11E}` })).thenThrows('REASON_TOO_LONG', { length: REASON_LENGTH_MAX + 1, max: REASON_LENGTH_MAX });
  });

  it('refuses a reason longer than the limit and accepts one of exactly the limit', () => {
    spec.given([purchased(100, 100)]).when(adjustTokens({ reason: 'r'.repeat(REASON_LENGTH_MAX + 1) })).thenThrows('REASON_TOO_LONG', { max: REASON_LENGTH_MAX });
    const longest = 'r'.repeat(REASON_LENGTH_MAX);
    spec.given([purchased(100, 100)]).when(adjustTokens({ reason: longest })).then([adjustedNow(-30, 70, longest)]);
  });

  it('decides on the balance after earlier adjustments', () => {
    spec
      .given([purchased(10, 10), { type: 'TokensAdjusted', data: { userId, transactionId: 'tx-adj', amount: 15, reason: 'Goodwill', balanceAfter: 25, occurredAt: '2026-11-24T11:45:00.000Z' } }])
      .when(useTokens({ amount: 25 }))
      .then([{ type: 'TokensUsed', data: { userId, transactionId, amount: 25, description: 'Chat completion', balanceAfter: 0, occurredAt: now.toISOString(), draws: [{ lotId: OPENING_LOT_ID, amount: 25 }], heldAfter: 0 } }]);
  });
});

function purchasedNow(amount: number, balanceAfter: number, description: string | null = 'Starter pack'): TokensPurchased {
  return { type: 'TokensPurchased', data: { userId, transactionId, paymentId, amount, description, balanceAfter, occurredAt: now.toISOString(), lot: { lotId: transactionId, priority: LOT_PRIORITY_DEFAULT, expiresAt: null }, heldAfter: 0 } };
}

describe('token account: what a refused command tells the client (code, details and the problem detail)', () => {
  it('an amount out of range, with the range', () => {
    spec
      .given([])
      .when(addTokens({ amount: 0 }))
      .thenThrows('AMOUNT_OUT_OF_RANGE', { amount: 0, min: 1, max: TOKEN_AMOUNT_MAX }, `amount must be an integer from 1 to ${TOKEN_AMOUNT_MAX}`);
    spec
      .given([])
      .when(adjustTokens({ amount: 0 }))
      .thenThrows('AMOUNT_OUT_OF_RANGE', { amount: 0, min: -TOKEN_AMOUNT_MAX, max: TOKEN_AMOUNT_MAX }, `amount must be a non-zero integer from -${TOKEN_AMOUNT_MAX} to ${TOKEN_AMOUNT_MAX}`);
  });

  it('a description too long, with its length and the limit', () => {
    spec
      .given([])
      .when(useTokens({ description: 'y'.repeat(DESCRIPTION_LENGTH_MAX + 1) }))
      .thenThrows('DESCRIPTION_TOO_LONG', { length: DESCRIPTION_LENGTH_MAX + 1, max: DESCRIPTION_LENGTH_MAX }, `description must be at most ${DESCRIPTION_LENGTH_MAX} characters`);
  });

  it('a usage above the balance', () => {
    spec.given([purchased(10, 10)]).when(useTokens({ amount: 11 })).thenThrows('INSUFFICIENT_BALANCE', { balance: 10, requested: 11 }, 'the balance 10 is less than the 11 tokens requested');
  });

  it('a payment id credited before with another amount', () => {
    spec
      .given([purchased(100, 100)])
      .when(addTokens({ amount: 101 }))
      .thenThrows('PAYMENT_ID_REUSED', { paymentId, creditedAmount: 100, requestedAmount: 101 }, `payment ${paymentId} was already credited with a different amount or description`);
  });

  it('a debit below zero', () => {
    spec.given([purchased(10, 10)]).when(adjustTokens({ amount: -11 })).thenThrows('ADJUSTMENT_EXCEEDS_BALANCE', { balance: 10, requested: -11 }, 'an adjustment of -11 would take the balance 10 below zero');
  });

  it('a reason blank or too long', () => {
    spec.given([]).when(adjustTokens({ reason: '  ' })).thenThrows('REASON_REQUIRED', { length: 2 }, 'an adjustment needs a reason that is not blank');
    spec
      .given([])
      .when(adjustTokens({ amount: 5, reason: 'r'.repeat(REASON_LENGTH_MAX + 1) }))
      .thenThrows('REASON_TOO_LONG', { length: REASON_LENGTH_MAX + 1, max: REASON_LENGTH_MAX }, `reason must be at most ${REASON_LENGTH_MAX} characters`);
  });

  it('a credit past the maximum balance', () => {
    spec
      .given([purchased(TOKEN_AMOUNT_MAX, TOKEN_AMOUNT_MAX, otherPaymentId)])
      .when(addTokens({ amount: 1 }))
      .thenThrows('BALANCE_OUT_OF_RANGE', { balance: TOKEN_AMOUNT_MAX, requested: 1 }, `a credit of 1 would take the balance above ${TOKEN_AMOUNT_MAX}`);
  });
});

describe('token account: a debit is checked against the balance whatever the order of the checks', () => {
  it('credits back to an account at zero with a positive adjustment, and debits it exactly to zero again', () => {
    spec.given([purchased(10, 10), used(10, 0)]).when(adjustTokens({ amount: 3, reason: 'Goodwill' })).then([adjustedNow(3, 3, 'Goodwill')]);
  });

  it('refuses a debit of one more than the balance and allows one equal to it', () => {
    spec.given([purchased(10, 10)]).when(useTokens({ amount: 10 })).then([{ type: 'TokensUsed', data: { userId, transactionId, amount: 10, description: 'Chat completion', balanceAfter: 0, occurredAt: now.toISOString(), draws: [{ lotId: 'opening', amount: 10 }], heldAfter: 0 } }]);
    spec.given([purchased(10, 10)]).when(adjustTokens({ amount: -10 })).then([adjustedNow(-10, 0)]);
  });
});

describe('token account: a command it does not know', () => {
  it('fails loudly instead of deciding nothing', () => {
    let error: unknown;
    try {
      tokenAccountDecider.decide({ type: 'GiftTokens', data: {} } as unknown as TokenAccountCommand, tokenAccountDecider.initialState);
    } catch (thrown) {
      error = thrown;
    }
    // A bug in the caller, not a rejection a client could act on.
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(LedgerError);
  });
});


describe('token account: what a usage records', () => {
  it('records no metadata member for a usage whose metadata is null or absent, and the metadata given', () => {
    for (const metadata of [null, undefined]) {
      const [usage] = tokenAccountDecider.decide(useTokens({ metadata }), fold(tokenAccountDecider, tokenAccountDecider.initialState, [purchased(100, 100)]));
      expect(usage !== undefined && 'metadata' in usage.data).toBe(false);
    }
    const [usage] = tokenAccountDecider.decide(useTokens({ metadata: { model: 'gpt-4o' } }), fold(tokenAccountDecider, tokenAccountDecider.initialState, [purchased(100, 100)]));
    expect(usage?.data).toMatchObject({ metadata: { model: 'gpt-4o' } });
  });
});

describe('token account: no decision is timed before the stream it appends to', () => {
  const minute = 60_000;
  const at = (minutes: number) => new Date(now.getTime() + minutes * minute);
  /** A millisecond after minute `minutes`. */
  const justAfter = (minutes: number) => new Date(at(minutes).getTime() + 1).toISOString();
  /** The events of `commands`, each decided on the state the ones before it left. */
  const history = (commands: readonly TokenAccountCommand[]) =>
    commands.reduce<TokensDecided>((decided, command) => [...decided, ...tokenAccountDecider.decide(command, fold(tokenAccountDecider, tokenAccountDecider.initialState, decided))], []);
  type TokensDecided = ReturnType<typeof tokenAccountDecider.decide>[number][];
  // A purchase and a 3-minute grant drawn first (priority 0), then a payment opened at minute 5: it sweeps nothing, so the grant is past its expiry, not yet expired.
  const given = history([
    addTokens({ now: at(0) }),
    { type: 'GrantTokens', data: { userId, amount: 10, reason: 'Promotion', priority: 0, expiresAt: at(3), transactionId: 'grant', now: at(0) } },
    {
      type: 'InitiatePayment',
      data: { userId, paymentId: otherPaymentId, orderId: 'ORDER-2', packageId: 'starter', tokens: 50, amount: 500, currency: 'USD', provider: 'mock', now: at(5), expiresAt: at(65), pendingPaymentsMax: 5 },
    },
  ]);

  it("decides and records a command whose clock is behind the latest event (a retry, a slower process) a millisecond after that event's time", () => {
    // At its own minute 1 the usage would draw the grant; at the stream's minute 5 the grant has expired first.
    const decided = tokenAccountDecider.decide(useTokens({ amount: 30, now: at(1) }), fold(tokenAccountDecider, tokenAccountDecider.initialState, given));
    expect(decided.map((event) => [event.type, event.data.occurredAt])).toEqual([
      ['LotExpired', justAfter(5)],
      ['TokensUsed', justAfter(5)],
    ]);
    expect(decided[1]).toMatchObject({ data: { amount: 30, balanceAfter: 70, draws: [{ lotId: transactionId, amount: 30 }] } });
  });

  it('times each decision on a clock behind the stream after the one before it, and keeps a payment opened on it open as long', () => {
    let state = fold(tokenAccountDecider, tokenAccountDecider.initialState, given);
    const times: string[] = [];
    for (const amount of [1, 2, 3]) {
      const decided = tokenAccountDecider.decide(useTokens({ amount, now: at(1) }), state);
      state = fold(tokenAccountDecider, state, decided);
      times.push(...decided.filter((event) => event.type === 'TokensUsed').map((event) => event.data.occurredAt));
    }
    expect(times).toEqual([justAfter(5), new Date(at(5).getTime() + 2).toISOString(), new Date(at(5).getTime() + 3).toISOString()]);
    // Opened at its minute 1 to expire at its minute 31: recorded just after minute 5, expiring 30 minutes later.
    const opened = tokenAccountDecider.decide(
      {
        type: 'InitiatePayment',
        data: { userId, paymentId: 'late-clock', orderId: 'ORDER-3', packageId: 'starter', tokens: 50, amount: 500, currency: 'USD', provider: 'mock', now: at(1), expiresAt: at(31), pendingPaymentsMax: 5 },
      },
      state,
    );
    expect(opened.map((event) => [event.type, event.data.occurredAt, 'expiresAt' in event.data ? event.data.expiresAt : null])).toEqual([
      ['PaymentInitiated', new Date(at(5).getTime() + 4).toISOString(), new Date(at(35).getTime() + 4).toISOString()],
    ]);
  });

  it('keeps a clock at or after the latest event as it is', () => {
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, given);
    expect(tokenAccountDecider.decide(useTokens({ amount: 5, now: at(5) }), state).map((event) => event.data.occurredAt)).toEqual([at(5).toISOString(), at(5).toISOString()]);
    expect(tokenAccountDecider.decide(useTokens({ amount: 5, now: at(7) }), state).map((event) => event.data.occurredAt)).toEqual([at(7).toISOString(), at(7).toISOString()]);
  });

  it('refuses a command whose now is no time', () => {
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, given);
    expect(() => tokenAccountDecider.decide(useTokens({ amount: 5, now: new Date(Number.NaN) }), state)).toThrow("the UseTokens command's now is not a time");
    expect(() => tokenAccountDecider.decide(useTokens({ amount: 5, now: new Date(Number.NaN) }), tokenAccountDecider.initialState)).toThrow(LedgerInvariantViolation);
  });

  it('follows the latest time of a stream that stepped back, not its last event', () => {
    // Written before this rule: a usage timed at minute 2 appended after the payment of minute 5.
    const paid = [given[0], given[2]] as TokensDecided;
    const [usage] = tokenAccountDecider.decide(useTokens({ amount: 1, now: at(5) }), fold(tokenAccountDecider, tokenAccountDecider.initialState, paid));
    const steppedBack = [...paid, { ...usage, data: { ...usage?.data, occurredAt: at(2).toISOString() } } as TokensDecided[number]];
    const state = fold(tokenAccountDecider, tokenAccountDecider.initialState, steppedBack);
    expect(state.lastOccurredAtMs).toBe(at(5).getTime());
    expect(tokenAccountDecider.decide(useTokens({ amount: 5, now: at(3) }), state).map((event) => event.data.occurredAt)).toEqual([justAfter(5)]);
  });
});
