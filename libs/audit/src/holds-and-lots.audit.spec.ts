import { generateKeyPairSync } from 'node:crypto';
import { decideTokenAccount, fold, tokenAccountDecider, type TokenAccountCommand, type TokenAccountEvent } from '@app/ledger';
import { tokenAccountSummaryAsOf } from './as-of.js';
import { createAuditBundle, type BundleEvent } from './audit-bundle.js';
import { verifyAuditBundle } from './bundle-check.js';
import { sealEvents } from './hash-chain.js';

const userId = '6f1c2a9e-4b7d-4e0a-9c3b-2d5e8f7a1b40';
const streamId = `token-account-${userId}`;
const signer = generateKeyPairSync('ed25519');
const at = (minutes: number) => new Date(Date.parse('2026-03-01T10:00:00.000Z') + minutes * 60_000);

const commands: TokenAccountCommand[] = [
  { type: 'AddTokens', data: { userId, paymentId: 'p1', amount: 100, description: null, transactionId: 'paid', now: at(0) } },
  { type: 'GrantTokens', data: { userId, amount: 30, reason: 'Promo', priority: 10, expiresAt: at(60), transactionId: 'promo', now: at(1) } },
  { type: 'HoldTokens', data: { userId, holdId: 'h1', amount: 40, description: null, ttlSeconds: 600, ttlSecondsMax: 600, transactionId: 'th', now: at(2) } },
  { type: 'UseTokens', data: { userId, amount: 10, description: null, transactionId: 'use', now: at(3) } },
  { type: 'ExpireCredits', data: { userId, transactionId: 'job', now: at(61) } },
];

/** The events the ledger decides for `decided`, one command after another, as a replay reads them. */
function replayableOf(decided: readonly TokenAccountCommand[]) {
  const events: TokenAccountEvent[] = [];
  for (const command of decided) events.push(...decideTokenAccount(command, fold(tokenAccountDecider, tokenAccountDecider.initialState, events)));
  return events.map((event, index) => ({ ...event, revision: BigInt(index), createdAt: at(index).toISOString() }));
}

function stream(): BundleEvent[] {
  const events: TokenAccountEvent[] = [];
  for (const command of commands) events.push(...decideTokenAccount(command, fold(tokenAccountDecider, tokenAccountDecider.initialState, events)));
  const sealed = sealEvents(
    streamId,
    0n,
    null,
    events.map((event, index) => ({ id: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`, type: event.type, data: event.data, metadata: {} })),
  );
  return sealed.map((event, index) => ({ ...event, streamId, revision: BigInt(index), position: `${index}/${index}`, createdAt: at(index).toISOString() }));
}

describe('audit: holds and lots', () => {
  it('replays balance, held, active holds and live lots to any revision or time', () => {
    const events = stream();
    expect(tokenAccountSummaryAsOf(events, { at: at(2) })).toEqual({
      balance: 130,
      held: 40,
      available: 90,
      holds: [{ holdId: 'h1', amount: 40, expiresAt: at(12).toISOString() }],
      lots: [
        { lotId: 'promo', source: 'grant', remaining: 30, reserved: 30, priority: 10, expiresAt: at(60).toISOString() },
        { lotId: 'paid', source: 'purchase', remaining: 100, reserved: 10, priority: 100, expiresAt: null },
      ],
      revision: 2n,
    });
    // The usage drew on paid credit (the hold had set the whole grant aside); at minute 61 the hold
    // has expired and the grant with it: both are gone.
    const last = tokenAccountSummaryAsOf(events, { revision: 99n });
    expect(last).toMatchObject({ balance: 90, held: 0, available: 90, holds: [] });
    expect(last.lots).toEqual([{ lotId: 'paid', source: 'purchase', remaining: 90, reserved: 0, priority: 100, expiresAt: null }]);
  });

  it('as of a time, counts holds and lots past their expiry as expired before the job records it, and lists them', () => {
    const events = stream();
    // Minute 30: the hold expired at minute 12, but nothing records it until the job at minute 61.
    expect(tokenAccountSummaryAsOf(events, { at: at(30) })).toEqual({
      balance: 120,
      held: 0,
      available: 120,
      holds: [],
      lots: [
        { lotId: 'promo', source: 'grant', remaining: 30, reserved: 0, priority: 10, expiresAt: at(60).toISOString() },
        { lotId: 'paid', source: 'purchase', remaining: 90, reserved: 0, priority: 100, expiresAt: null },
      ],
      revision: 3n,
      expiredUnrecorded: { holds: [{ holdId: 'h1', amount: 40, expiresAt: at(12).toISOString() }], lots: [] },
    });
    // Between the grant's expiry and the job, its remainder is gone too.
    expect(tokenAccountSummaryAsOf(events, { at: new Date(at(60).getTime() + 30_000) })).toMatchObject({
      balance: 90,
      held: 0,
      lots: [{ lotId: 'paid', remaining: 90 }],
      revision: 3n,
      expiredUnrecorded: { holds: [{ holdId: 'h1' }], lots: [{ lotId: 'promo', amount: 30, expiresAt: at(60).toISOString() }] },
    });
    // Once the job's events are replayed, nothing is left unrecorded; as of a revision, nothing is swept.
    const afterJob = tokenAccountSummaryAsOf(events, { at: at(61) });
    expect(afterJob).toMatchObject({ balance: 90, held: 0, revision: BigInt(events.length - 1) });
    expect(afterJob).not.toHaveProperty('expiredUnrecorded');
    expect(tokenAccountSummaryAsOf(events, { revision: 3n })).toMatchObject({ balance: 120, held: 40, holds: [{ holdId: 'h1' }] });
  });

  it('as of a time, lists what a provider refund takes as an expired hold gives back the part of the purchase it held', () => {
    const paymentId = 'pay-refunded';
    const refunded: TokenAccountCommand[] = [
      { type: 'InitiatePayment', data: { userId, paymentId, orderId: 'O-1', packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'stripe', now: at(0), expiresAt: at(60), pendingPaymentsMax: 5 } },
      { type: 'CapturePayment', data: { userId, paymentId, outcome: { status: 'captured', providerTransactionId: 'ch_1' }, transactionId: 'bought', now: at(1) } },
      { type: 'HoldTokens', data: { userId, holdId: 'h1', amount: 40, description: null, ttlSeconds: 600, ttlSecondsMax: 600, transactionId: 'th', now: at(2) } },
      { type: 'RefundPayment', data: { userId, paymentId, providerRefundId: 're_1', transactionId: 'tr', now: at(3) } },
    ];
    const replayable = replayableOf(refunded);
    // Minute 30: the hold expired at minute 12; the refund takes the 40 it held back, though nothing records it yet.
    expect(tokenAccountSummaryAsOf(replayable, { at: at(30) })).toMatchObject({
      balance: 0,
      held: 0,
      expiredUnrecorded: { holds: [{ holdId: 'h1', amount: 40 }], lots: [], refunds: [{ paymentId, amount: 40 }] },
    });
    expect(tokenAccountSummaryAsOf(replayable, { at: at(5) })).toMatchObject({ balance: 40, held: 40 });
  });

  it('as of a time, pays off a shortfall with what an expired hold gives back, as the expiry job decides it', () => {
    const paymentId = 'pay-disputed';
    const disputed: TokenAccountCommand[] = [
      { type: 'InitiatePayment', data: { userId, paymentId, orderId: 'O-2', packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'stripe', now: at(0), expiresAt: at(60), pendingPaymentsMax: 5 } },
      { type: 'CapturePayment', data: { userId, paymentId, outcome: { status: 'captured', providerTransactionId: 'ch_2' }, transactionId: 'bought', now: at(1) } },
      { type: 'HoldTokens', data: { userId, holdId: 'h1', amount: 100, description: null, ttlSeconds: 600, ttlSecondsMax: 600, transactionId: 'th', now: at(2) } },
      // Lost while the hold holds every token: nothing free to take back, so the account owes all 100.
      { type: 'RecordDispute', data: { userId, paymentId, disputeId: 'dp_1', status: 'lost', amount: 500, currency: 'USD', reason: 'fraudulent', transactionId: 'cb', now: at(3) } },
    ];
    const replayable = replayableOf(disputed);
    expect(tokenAccountSummaryAsOf(replayable, { at: at(5) })).toMatchObject({ balance: 100, held: 100, shortfall: 100 });
    // Minute 30: the hold expired at minute 12; the 100 it gives back pay the shortfall off, though nothing records it yet.
    expect(tokenAccountSummaryAsOf(replayable, { at: at(30) })).toMatchObject({
      balance: 0,
      held: 0,
      available: 0,
      shortfall: 0,
      lots: [],
      expiredUnrecorded: { holds: [{ holdId: 'h1', amount: 100 }], lots: [], shortfallCovered: 100 },
    });
  });

  it('signs the replayed summary in the bundle head, and a verifier that replays the events finds a head that lies', () => {
    const events = stream();
    const { revision: _revision, ...ledger } = tokenAccountSummaryAsOf(events, { revision: BigInt(events.length - 1) });
    const honest = createAuditBundle(events, { privateKey: signer.privateKey, streamId, createdAt: at(100).toISOString(), ledger });
    expect(verifyAuditBundle(honest, signer.publicKey)).toMatchObject({ ok: true });
    expect(JSON.parse(honest.trimEnd().split('\n').pop() ?? '{}')).toMatchObject({ ledger: { balance: 90, held: 0 } });
    const lying = createAuditBundle(events, { privateKey: signer.privateKey, streamId, createdAt: at(100).toISOString(), ledger: { ...ledger, balance: 130 } });
    expect(verifyAuditBundle(lying, signer.publicKey)).toEqual({ ok: false, reason: 'the signed balance, holds or lots differ from the replay of the events' });
  });

  it("orders holds and disputes by UTF-16 code units, whatever the process's locale, and still verifies a bundle signed in a locale's order", () => {
    // Two payments disputed: Stripe's ids differ in the case of a letter, which locales order differently ('B' < 'a' in code units, 'a' < 'B' in en-US).
    const payments = ['pay-1', 'pay-2'];
    const disputed: TokenAccountCommand[] = payments.flatMap((paymentId, index): TokenAccountCommand[] => [
      { type: 'InitiatePayment', data: { userId, paymentId, orderId: `O-${index}`, packageId: 'starter', tokens: 100, amount: 500, currency: 'USD', provider: 'stripe', now: at(0), expiresAt: at(60), pendingPaymentsMax: 5 } },
      { type: 'CapturePayment', data: { userId, paymentId, outcome: { status: 'captured', providerTransactionId: `ch_${index}` }, transactionId: `bought-${index}`, now: at(1) } },
      { type: 'RecordDispute', data: { userId, paymentId, disputeId: index === 0 ? 'du_1ax' : 'du_1Bx', status: 'open', amount: 500, currency: 'USD', reason: 'fraudulent', transactionId: `cb-${index}`, now: at(2) } },
    ]);
    const holds: TokenAccountCommand[] = ['hold-a', 'hold-B'].map((holdId) => ({
      type: 'HoldTokens',
      data: { userId, holdId, amount: 10, description: null, ttlSeconds: 600, ttlSecondsMax: 600, transactionId: `t-${holdId}`, now: at(3) },
    }));
    const replayable = replayableOf([...disputed, ...holds]);
    const summary = tokenAccountSummaryAsOf(replayable, { revision: BigInt(replayable.length - 1) });
    expect({ disputes: summary.disputes?.map((dispute) => dispute.disputeId), holds: summary.holds.map((hold) => hold.holdId) }).toEqual({ disputes: ['du_1Bx', 'du_1ax'], holds: ['hold-B', 'hold-a'] });
    // A bundle signed before the order was fixed, under a locale that puts 'a' first: the same members, another order.
    const sealed = sealEvents(
      streamId,
      0n,
      null,
      replayable.map((event, index) => ({ id: `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`, type: event.type, data: event.data, metadata: {} })),
    ).map((event, index) => ({ ...event, streamId, revision: BigInt(index), position: `${index}/${index}`, createdAt: at(index).toISOString() }));
    const { revision: _revision, ...ledger } = summary;
    const inLocaleOrder = { ...ledger, holds: [...ledger.holds].reverse(), disputes: [...(ledger.disputes ?? [])].reverse() };
    expect(verifyAuditBundle(createAuditBundle(sealed, { privateKey: signer.privateKey, streamId, createdAt: at(100).toISOString(), ledger: inLocaleOrder }), signer.publicKey)).toMatchObject({ ok: true });
    expect(verifyAuditBundle(createAuditBundle(sealed, { privateKey: signer.privateKey, streamId, createdAt: at(100).toISOString(), ledger }), signer.publicKey)).toMatchObject({ ok: true });
  });
});
