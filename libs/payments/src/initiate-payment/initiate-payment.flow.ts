import { randomUUID } from 'node:crypto';
import { assertMayOpenPayment, decideTokenAccount, fold, tokenAccountDecider, tokenAccountStreamId } from '@app/ledger';
import { type CommandContext, eventMetadata, idempotentValueId, type PaymentStreams } from '@app/event-sourcing';
import type { PaymentFaults } from '../payment-faults.js';
import { paymentIn, positionText, type PaymentLedger } from '../payment-ledger.js';
import { paymentView, type PaymentView } from '../payment.view.js';
import { PaymentsError } from '../payments.errors.js';
import type { PaymentProvider } from '../provider/payment-provider.port.js';
import { packageLotTerms, type TokenPackage } from '../token-packages.js';

/**
 * The PENDING payment, and `clientSecret` when the provider's buyer approval needs one (Stripe.js
 * confirms the PaymentIntent with it). The secret is not in the ledger: a replay reads it from the
 * provider's order.
 */
export type InitiatedPayment = PaymentView & { readonly position: string | null; readonly readModelUpToDate: boolean; readonly clientSecret: string | null };

/**
 * Opens a PENDING payment for a package, unless the user has PENDING_PAYMENTS_MAX open already:
 * index row, provider order, then PaymentInitiated, under the stream's lock. A crash
 * after the provider's order leaves an order nobody can capture (the payment id leads to no
 * payment); a retry with the same Idempotency-Key opens the same order and records it.
 */
export class InitiatePaymentFlow {
  constructor(
    private readonly ledger: PaymentLedger,
    private readonly provider: PaymentProvider,
    private readonly streams: PaymentStreams,
    private readonly faults: PaymentFaults,
    private readonly options: { readonly packages: readonly TokenPackage[]; readonly pendingTtlMs: number; readonly pendingPaymentsMax: number; readonly now: () => Date },
  ) {}

  async initiate(userId: string, packageId: string, context: CommandContext): Promise<InitiatedPayment> {
    const chosen = this.options.packages.find((candidate) => candidate.id === packageId);
    if (chosen === undefined) {
      throw new PaymentsError('PACKAGE_NOT_FOUND', `there is no token package ${packageId}`, { packageId, known: this.options.packages.map((known) => known.id).join(', ') });
    }
    // With an Idempotency-Key the payment id is derived from the request, so a retry after a crash
    // opens the same payment (same index row, same provider order), never a second one.
    const idempotency = context.idempotency;
    const paymentId = idempotency === undefined ? randomUUID() : idempotentValueId(idempotency.requestId, 'paymentId');
    const now = this.options.now();
    const { pendingPaymentsMax } = this.options;
    // The index row and the provider's order are made under the stream's lock, once the state allows
    // a new payment (at most PENDING_PAYMENTS_MAX open), so an initiation refused, even one of many
    // racing, writes nothing and reaches no provider. The order is asked for once per request: a
    // retry after a conflicting append records the same order.
    const order = { paymentId, userId, amount: chosen.price, currency: chosen.currency, description: `${chosen.tokens} tokens (${chosen.id})` };
    let orderId: string | undefined;
    let clientSecret: string | undefined;
    const handled = await this.ledger.commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide: async (state) => {
        const data = { userId, paymentId, packageId, tokens: chosen.tokens, amount: chosen.price, currency: chosen.currency, provider: this.provider.name, now, expiresAt: new Date(now.getTime() + this.options.pendingTtlMs), pendingPaymentsMax, lot: packageLotTerms(this.options.packages, packageId) };
        // A payment already opened (a keyed retry) decides nothing and needs no new order.
        const opened = state.payments.get(paymentId);
        if (opened !== undefined) return decideTokenAccount({ type: 'InitiatePayment', data: { ...data, orderId: opened.orderId } }, state);
        assertMayOpenPayment(state, now, pendingPaymentsMax);
        if (orderId === undefined) {
          // The index row before the order: whatever happens next, the payment id leads to the right stream.
          await this.streams.record(paymentId, userId);
          ({ orderId, clientSecret } = await this.provider.createOrder(order));
          this.faults('initiate:after-create-order');
        }
        return decideTokenAccount({ type: 'InitiatePayment', data: { ...data, orderId } }, state);
      },
      metadata: eventMetadata(context),
      idempotency,
      // Decided on the stream as it is: the cap counts payments opened through every instance.
      readFirst: true,
    });
    // A replay answers with the payment as its first attempt opened it (PENDING), whatever it became since.
    const opened = handled.replayed === true ? fold(tokenAccountDecider, tokenAccountDecider.initialState, handled.events) : handled.state;
    // A retry that found its payment opened asked the provider for nothing: the order's client secret
    // (Stripe.js needs it) is read from the order, never asked for by creating it again.
    if (orderId === undefined) clientSecret = (await this.provider.clientSecretOf(paymentIn(opened, paymentId).orderId)) ?? undefined;
    return { ...paymentView(paymentIn(opened, paymentId)), position: positionText(handled.position), readModelUpToDate: await this.ledger.upToDate(handled), clientSecret: clientSecret ?? null };
  }
}
