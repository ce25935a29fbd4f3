import type { Payment, PaymentStatus } from '@app/ledger';
import type { ProviderOrder, ProviderOrderStatus } from '../provider/payment-provider.port.js';
import { reconciliationOf } from './reconciliation.rules.js';

const expiresAt = '2026-11-24T13:00:00.000Z';
const beforeExpiry = new Date('2026-11-24T12:30:00.000Z');
const afterExpiry = new Date('2026-11-24T13:00:00.000Z');

function payment(status: PaymentStatus, failure: Payment['failure'] = null): Payment {
  return {
    userId: 'user',
    paymentId: 'payment',
    orderId: 'order',
    packageId: 'starter',
    tokens: 100,
    amount: 500,
    currency: 'USD',
    provider: 'mock',
    occurredAt: '2026-11-24T12:00:00.000Z',
    expiresAt,
    status,
    failure,
    failureReason: failure === null ? null : 'reason',
    refundFailure: null,
    providerTransactionId: null,
    providerRefundId: null,
    tokensDebited: null,
    updatedAt: '2026-11-24T12:00:00.000Z',
  };
}

function order(status: ProviderOrderStatus): ProviderOrder {
  const captured = status === 'captured' || status === 'refunded';
  return {
    status,
    providerTransactionId: captured ? 'capture-1' : null,
    declineReason: status === 'declined' ? 'card_declined' : status === 'canceled' ? 'canceled' : null,
    providerRefundId: status === 'refunded' ? 'refund-1' : null,
  };
}

const recordCapture = { kind: 'record-capture', outcome: { status: 'captured', providerTransactionId: 'capture-1' } } as const;
const recordRefund = { kind: 'record-refund', providerRefundId: 'refund-1' } as const;

describe('reconciliation rules: the ledger follows the provider', () => {
  it.each([
    ['PENDING', null, 'captured', beforeExpiry, [recordCapture]],
    ['PENDING', null, 'refunded', beforeExpiry, [recordCapture, recordRefund]],
    ['PENDING', null, 'declined', beforeExpiry, [{ kind: 'record-capture', outcome: { status: 'declined', reason: 'card_declined' } }]],
    ['PENDING', null, 'created', beforeExpiry, []],
    ['PENDING', null, 'created', afterExpiry, [{ kind: 'expire' }]],
    ['PENDING', null, 'unknown', afterExpiry, [{ kind: 'expire' }]],
    ['PENDING', null, 'canceled', afterExpiry, [{ kind: 'expire' }]],
    ['PENDING', null, 'canceled', beforeExpiry, [{ kind: 'record-capture', outcome: { status: 'declined', reason: 'canceled' } }]],
    ['FAILED', 'expired', 'canceled', afterExpiry, []],
    ['FAILED', 'expired', 'captured', afterExpiry, [recordCapture]],
    ['FAILED', 'expired', 'refunded', afterExpiry, [recordCapture, recordRefund]],
    ['FAILED', 'expired', 'created', afterExpiry, [{ kind: 'cancel-at-provider' }]],
    ['FAILED', 'declined', 'declined', afterExpiry, []],
    ['FAILED', 'declined', 'created', beforeExpiry, [{ kind: 'cancel-at-provider' }]],
    ['FAILED', 'declined', 'canceled', beforeExpiry, []],
    ['FAILED', 'declined', 'captured', beforeExpiry, [recordCapture]],
    ['COMPLETED', null, 'captured', afterExpiry, []],
    ['COMPLETED', null, 'refunded', afterExpiry, [recordRefund]],
    ['REFUND_PENDING', null, 'captured', afterExpiry, [{ kind: 'refund-at-provider' }]],
    ['REFUND_PENDING', null, 'refunded', afterExpiry, [recordRefund]],
    ['REFUNDED', null, 'refunded', afterExpiry, []],
  ] as const)('%s (%s) with the order %s at %s: %j', (status, failure, orderStatus, now, steps) => {
    expect(reconciliationOf(payment(status, failure), order(orderStatus), now)).toEqual({ steps });
  });

  it.each([
    ['COMPLETED', 'created'],
    ['COMPLETED', 'declined'],
    ['REFUND_PENDING', 'unknown'],
    ['COMPLETED', 'canceled'],
  ] as const)('leaves a %s payment whose order is %s to an operator: tokens without money', (status, orderStatus) => {
    expect(reconciliationOf(payment(status), order(orderStatus), afterExpiry)).toEqual({ unresolved: `payment payment is ${status} but its order is ${orderStatus} at the provider` });
  });

  it.each([
    ['PENDING', beforeExpiry],
    ['PENDING', afterExpiry],
    ['FAILED', afterExpiry],
    ['COMPLETED', afterExpiry],
    ['REFUND_PENDING', afterExpiry],
  ] as const)('leaves a %s payment whose order was captured in part (at %s) to an operator: neither credited nor expired', (status, now) => {
    expect(reconciliationOf(payment(status), order('captured_in_part'), now)).toEqual({ unresolved: `payment payment is ${status} but the provider took money that is not its price (500 USD): part of its order, or an order changed to another amount or currency` });
  });

  it('does nothing more about a payment captured in part that its lost dispute failed, though Stripe still reads it captured in part', () => {
    const chargedBack: Payment = { ...payment('FAILED', 'declined'), failureReason: 'captured_in_part_charged_back' };
    expect(reconciliationOf(chargedBack, order('captured_in_part'), afterExpiry)).toEqual({ steps: [] });
    // Failed for another reason (declined, expired), it is still the operator's.
    expect(reconciliationOf({ ...chargedBack, failureReason: 'card_declined' }, order('captured_in_part'), afterExpiry)).toHaveProperty('unresolved');
  });

  const returned = (refundId: string) =>
    `payment payment is REFUNDED but the provider no longer reads it refunded whole: a refund of it (the ledger recorded ${refundId}) failed after it succeeded, so the customer did not get all the money back while the tokens were taken; an operator checks its refunds at the provider, then refunds the rest another way or credits tokens back`;

  it('leaves a REFUNDED payment whose order reads captured again to an operator: a refund of it failed after it succeeded', () => {
    const refunded: Payment = { ...payment('REFUNDED'), providerRefundId: 're_1' };
    expect(reconciliationOf(refunded, order('captured'), afterExpiry)).toEqual({ unresolved: returned('re_1') });
    expect(reconciliationOf(refunded, { ...order('captured'), refundPending: false }, afterExpiry, { lostDispute: false })).toEqual({ unresolved: returned('re_1') });
  });

  it('does nothing about a REFUNDED payment whose order reads captured while another refund of it is pending: not decided yet', () => {
    expect(reconciliationOf({ ...payment('REFUNDED'), providerRefundId: 're_1' }, { ...order('captured'), refundPending: true }, afterExpiry)).toEqual({ steps: [] });
  });

  it('does nothing about a REFUNDED payment whose refund its lost dispute completed: the charge was charged back, never refunded', () => {
    expect(reconciliationOf({ ...payment('REFUNDED'), providerRefundId: 'dp_1' }, order('captured'), afterExpiry, { lostDispute: true })).toEqual({ steps: [] });
    expect(reconciliationOf({ ...payment('REFUNDED'), providerRefundId: 'dp_1' }, order('captured_in_part'), afterExpiry, { lostDispute: true })).toEqual({ steps: [] });
  });

  it.each(['created', 'declined', 'canceled', 'unknown'] as const)('does nothing about a REFUNDED payment whose order is %s: only money back with the merchant is reported', (orderStatus) => {
    expect(reconciliationOf(payment('REFUNDED'), order(orderStatus), afterExpiry)).toEqual({ steps: [] });
  });

  it('does nothing more about a refunded payment whose order was captured in part and that part refunded, and reports it once that refund failed', () => {
    const refunded: Payment = { ...payment('REFUNDED'), providerRefundId: 're_1' };
    expect(reconciliationOf(refunded, { ...order('captured_in_part'), providerRefundId: 're_1' }, afterExpiry)).toEqual({ steps: [] });
    expect(reconciliationOf(refunded, { ...order('captured_in_part'), refundPending: true }, afterExpiry)).toEqual({ steps: [] });
    expect(reconciliationOf(refunded, order('captured_in_part'), afterExpiry)).toEqual({ unresolved: returned('re_1') });
  });

  it.each([
    ['PENDING', [{ kind: 'record-capture', outcome: { status: 'declined', reason: 'captured_in_part_refunded' } }]],
    ['FAILED', []],
    ['COMPLETED', [recordRefund]],
    ['REFUND_PENDING', [recordRefund]],
    ['REFUNDED', []],
  ] as const)('settles a %s payment whose order was captured in part and that part refunded whole: nothing was kept, nothing credited (%j)', (status, steps) => {
    const refundedInPart: ProviderOrder = { ...order('captured_in_part'), providerRefundId: 'refund-1' };
    expect(reconciliationOf(payment(status), refundedInPart, afterExpiry)).toEqual({ steps });
  });
});
