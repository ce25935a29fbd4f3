import type { CaptureOutcome } from '@app/ledger';
import Stripe from 'stripe';
import { PaymentsError } from '../../payments.errors.js';
import { PaymentProviderError, providerIdempotencyKey, type CreatedOrder, type OrderRequest, type PaymentOrder, type PaymentProvider, type ProviderOrder, type ProviderRefund } from '../payment-provider.port.js';

/** The Stripe adapter's settings (`PAYMENT_PROVIDER=stripe`, ADR 0021). */
export type StripeSettings = {
  readonly secretKey: string;
  readonly webhookSecret: string;
  /** Capture when `payment_intent.amount_capturable_updated` arrives, without waiting for the client's capture call. */
  readonly autoCapture: boolean;
  /** Stripe's API (`https://api.stripe.com`); tests point it at a local fake. */
  readonly apiUrl: string;
  /** The SDK's retries of a call that failed with a connection error, a timeout, a 409 or a 5xx (same idempotency key, exponential backoff). */
  readonly maxNetworkRetries: number;
  /** One HTTP attempt's timeout, in milliseconds. */
  readonly timeoutMs: number;
  /** How old a webhook's signed timestamp may be (Stripe's SDK default is 300 s). */
  readonly webhookToleranceSeconds: number;
};

export const STRIPE_API_URL = 'https://api.stripe.com';
/** Extra attempts at a call Stripe refused with 429 (rate limited): the SDK does not retry those itself. */
const RATE_LIMIT_RETRIES = 2;
const RATE_LIMIT_BACKOFF_MS = 250;

/** The SDK client for these settings: Stripe's host, or the one `apiUrl` names (a fake in tests). */
export function stripeClient(settings: StripeSettings): Stripe {
  const url = new URL(settings.apiUrl);
  const protocol = url.protocol === 'http:' ? 'http' : 'https';
  return new Stripe(settings.secretKey, {
    host: url.hostname,
    port: url.port === '' ? (protocol === 'http' ? 80 : 443) : Number(url.port),
    protocol,
    maxNetworkRetries: settings.maxNetworkRetries,
    timeout: settings.timeoutMs,
    appInfo: { name: 'token-ledger' },
  });
}

/** The longest one adapter call may take, retries included: the deadline of the workflow's time limit. */
export function stripeCallDeadlineMs(settings: StripeSettings): number {
  const attempts = (settings.maxNetworkRetries + 1) * (RATE_LIMIT_RETRIES + 1);
  // The SDK waits at most 5 s between retries (its maxNetworkRetryDelay); 429 retries wait far less.
  return attempts * settings.timeoutMs + settings.maxNetworkRetries * 5_000 + RATE_LIMIT_RETRIES * RATE_LIMIT_BACKOFF_MS * 4;
}

/**
 * The payment provider port over Stripe PaymentIntents with manual capture:
 * - an order is a PaymentIntent (`capture_method: manual`, metadata `{paymentId, userId}`, key
 *   `create-<paymentId>`); the buyer authorises it with Stripe.js and its `client_secret`, which a
 *   replay reads from the PaymentIntent (the key is not used again);
 * - capture captures an authorised PaymentIntent (key `capture-<paymentId>`); one awaiting the buyer
 *   is refused with PAYMENT_NOT_AUTHORIZED (nothing recorded), one whose card was declined is a decline
 *   with Stripe's decline code, one captured for less than its amount (in the dashboard) is refused
 *   with PAYMENT_CAPTURED_IN_PART (`getOrder` says `captured_in_part`, an operator's case);
 * - the price is the payment's, not the PaymentIntent's: one authorised for another amount
 *   (`amount_capturable`: its amount changed with our API key before the buyer confirmed, a partial
 *   authorisation, an incremented one) or in another currency is not captured but declined
 *   (`price_mismatch`: the payment fails and the PaymentIntent is cancelled); a capture takes the
 *   price (`amount_to_capture`), never more; money taken that is not the price (captured by someone
 *   else) is `captured_in_part` as above: no buyer gets a package for less, or pays more for it;
 * - refund refunds what is left of the charge (key `refund-<paymentId>`); a PaymentIntent refunded
 *   already (in the dashboard) answers that refund; ours made before is found first by its key in
 *   the refunds' metadata (Stripe replays a keyed create for 24 hours only, with its first answer);
 *   a refund still `pending` is answered pending and recorded once it `succeeded`; a `failed` or
 *   `canceled` one is REFUND_FAILED with Stripe's `failure_reason` (nothing refunded: the ledger ends
 *   the request, `failedRefundOf`);
 * - cancel cancels an uncaptured PaymentIntent (our expiry) and answers it as Stripe has it after.
 * Stripe's answer is read before capturing, so the key of a capture is only ever used on an
 * authorised PaymentIntent (Stripe saves a refusal under its key and would replay it). Errors: a card
 * error is a decline; rate limits, timeouts, connection errors and 5xx are retried (the SDK, and
 * here for 429), then PROVIDER_UNAVAILABLE (502), or PROVIDER_RATE_LIMITED (503 with Retry-After) for
 * a 429 that outlasted the retries: both safe to retry, since every call is keyed or a read.
 */
export class StripePaymentProvider implements PaymentProvider {
  readonly name = 'stripe';

  constructor(private readonly stripe: Stripe) {}

  async createOrder(request: OrderRequest): Promise<CreatedOrder> {
    const intent = await this.call('create the PaymentIntent', () =>
      this.stripe.paymentIntents.create(
        {
          amount: request.amount,
          currency: request.currency.toLowerCase(),
          capture_method: 'manual',
          description: request.description,
          metadata: { paymentId: request.paymentId, userId: request.userId },
        },
        { idempotencyKey: providerIdempotencyKey('create', request.paymentId) },
      ),
    );
    return intent.client_secret === null ? { orderId: intent.id } : { orderId: intent.id, clientSecret: intent.client_secret };
  }

  /** The PaymentIntent's `client_secret`, read (`GET /v1/payment_intents/{id}`); null when Stripe has no such PaymentIntent. */
  async clientSecretOf(orderId: string): Promise<string | null> {
    return (await this.retrieve(orderId))?.client_secret ?? null;
  }

  async capture(order: PaymentOrder, idempotencyKey: string): Promise<CaptureOutcome> {
    const { orderId } = order;
    const intent = await this.retrieve(orderId);
    if (intent === undefined) return { status: 'declined', reason: 'order_not_found' };
    if (intent.status !== 'requires_capture') return captureOutcomeOf(intent, order);
    // Authorised for another price than the payment's (more, less, a part of it, another currency):
    // never captured (the payment fails, and the reconciler cancels the PaymentIntent, releasing the
    // buyer's authorisation).
    if (!isAuthorisedAtPrice(intent, order)) return { status: 'declined', reason: PRICE_MISMATCH };
    try {
      // The price, not whatever is capturable: an authorisation raised since it was read is not taken.
      const captured = await this.call('capture the PaymentIntent', () => this.stripe.paymentIntents.capture(orderId, { amount_to_capture: order.amount }, { idempotencyKey }));
      return captureOutcomeOf(captured, order);
    } catch (error) {
      if (error instanceof PaymentProviderError && error.cause instanceof Stripe.errors.StripeCardError) return { status: 'declined', reason: declineCodeOf(error.cause) };
      // Captured (or cancelled) by someone else since it was read: the PaymentIntent says which.
      if (error instanceof PaymentProviderError && isUnexpectedState(error.cause)) {
        const now = await this.retrieve(orderId);
        if (now !== undefined) return captureOutcomeOf(now, order);
      }
      throw error;
    }
  }

  async getOrder(order: PaymentOrder): Promise<ProviderOrder> {
    const { orderId } = order;
    const intent = await this.retrieve(orderId);
    if (intent === undefined) return { status: 'unknown', providerTransactionId: null, declineReason: null, providerRefundId: null };
    switch (intent.status) {
      case 'succeeded': {
        const chargeId = idOf(intent.latest_charge);
        const charge = chargeId === null ? undefined : await this.call('read the charge', () => this.stripe.charges.retrieve(chargeId));
        const transaction = { providerTransactionId: chargeId ?? intent.id, declineReason: null, ...(charge === undefined ? {} : { amountRefunded: charge.amount_refunded }) };
        if (!isTakenWhole(intent, order)) {
          // Captured for less than its amount (an operator's partial capture), or for another price than
          // the payment's: so said even once what was taken is refunded, with the refund. Told by the
          // refunds themselves, not by the charge's `refunded`.
          const refunds = await this.refundsOf(orderId);
          const refunded = refunds.filter((refund) => refund.status === 'succeeded').reduce((sum, refund) => sum + refund.amount, 0);
          const refundId = refunded >= intent.amount_received ? settledRefundId(refunds) : null;
          const pendingRefund = refunds.find(isPending);
          return { status: 'captured_in_part', ...transaction, providerRefundId: refundId, refundPending: pendingRefund !== undefined, ...(pendingRefund === undefined ? {} : { pendingRefundId: pendingRefund.id }) };
        }
        // Refunded whole: the ledger takes the tokens back. A partial refund leaves it captured (ADR 0021),
        // and so does a refund the bank has not confirmed yet (Stripe counts it in `refunded` until it fails).
        const refunds = charge?.refunded === true ? await this.refundsOf(orderId) : [];
        const refundId = settledRefundId(refunds);
        const pending = refunds.find(isPending);
        return { status: refundId === null ? 'captured' : 'refunded', ...transaction, providerRefundId: refundId, refundPending: pending !== undefined, ...(pending === undefined ? {} : { pendingRefundId: pending.id }) };
      }
      case 'canceled':
        return { status: 'canceled', providerTransactionId: null, declineReason: intent.cancellation_reason ?? 'canceled', providerRefundId: null };
      // Awaiting the buyer (a declined card may be replaced by another), or authorised and not captured.
      case 'requires_payment_method':
      case 'requires_confirmation':
      case 'requires_action':
      case 'processing':
      case 'requires_capture':
        return { status: 'created', providerTransactionId: null, declineReason: null, providerRefundId: null };
      // The SDK's type leaves room for statuses Stripe may add; none is guessed at.
      default:
        throw new PaymentProviderError(`Stripe answered PaymentIntent ${orderId} with an unknown status ${intent.status}`, 'rejected');
    }
  }

  async refund(order: PaymentOrder, idempotencyKey: string): Promise<ProviderRefund> {
    const { orderId } = order;
    // Ours, made before (its key is in its metadata): where it stands now. Stripe replays a keyed
    // create only for 24 hours, and with the answer it gave then (a pending refund as pending).
    const refunds = await this.refundsOf(orderId);
    const earlier = await this.ourRefundIn(refunds, order, idempotencyKey);
    if (earlier !== undefined) return earlier;
    // None of ours, but another (an operator's, in the dashboard) returned the money or is returning
    // it: that is the one the ledger records. Read before asking, because a refusal of ours (a charge
    // too old to refund) would be replayed under our key for 24 hours, whatever was refunded since.
    const other = refunds.length === 0 ? undefined : await this.otherRefund(order);
    if (other !== undefined) return other;
    let created: Stripe.Refund;
    try {
      created = await this.call('refund the PaymentIntent', () =>
        this.stripe.refunds.create({ payment_intent: orderId, reason: 'requested_by_customer', metadata: { idempotencyKey } }, { idempotencyKey }),
      );
    } catch (error) {
      const code = invalidRequestCode(error);
      // Refunded whole already (in the dashboard): that refund is the one the ledger records, once it succeeded.
      const other = code === 'charge_already_refunded' ? await this.otherRefund(order) : undefined;
      if (other !== undefined) return other;
      // The bank took the charge back: nothing to refund while the dispute stands (a lost one completes the refund, or of part of the price ends it: ADR 0024).
      if (code === 'charge_disputed') {
        throw new PaymentsError('REFUND_FAILED', `Stripe refuses to refund PaymentIntent ${orderId}: its charge is disputed; a lost dispute completes the refund (of part of the price, ends it and takes that share), a won one lets it be asked again`, {
          orderId,
          providerStatus: 'charge_disputed',
        });
      }
      // Refused as asked (charge_expired_for_refund, an amount Stripe will not refund, ...): no refund
      // exists or will, so the request ends as a failed refund does (its tokens released, the reason
      // kept), rather than staying pending to be refused again on every run. A refusal of our
      // credentials is not this refund's: it stays PROVIDER_REJECTED, the request pending, until the
      // operator fixes them. Charged back or refunded already, above; refunded with no refund found
      // stays an error for the operator.
      if (code !== undefined && code !== 'charge_already_refunded') {
        throw new PaymentsError('REFUND_FAILED', `Stripe refuses to refund PaymentIntent ${orderId} (${code}): the money stayed with the merchant`, {
          orderId,
          providerStatus: 'refused',
          failureReason: code,
        });
      }
      throw error;
    }
    return refundOutcome(orderId, created);
  }

  async findRefund(order: PaymentOrder, idempotencyKey: string): Promise<ProviderRefund | undefined> {
    // A refund Stripe refused as asked left no Refund object: then only another refund can be found.
    return (await this.ourRefund(order, idempotencyKey)) ?? (await this.otherRefund(order));
  }

  /**
   * Our refund made under `idempotencyKey` (its key is in its metadata), as it stands: succeeded or
   * pending; failed, another refund since (an operator's, in the dashboard) or REFUND_FAILED.
   * Undefined when Stripe has no refund of ours.
   */
  private async ourRefund(order: PaymentOrder, idempotencyKey: string): Promise<ProviderRefund | undefined> {
    return this.ourRefundIn(await this.refundsOf(order.orderId), order, idempotencyKey);
  }

  /** `ourRefund`, found in the PaymentIntent's refunds as already listed. */
  private async ourRefundIn(refunds: readonly Stripe.Refund[], order: PaymentOrder, idempotencyKey: string): Promise<ProviderRefund | undefined> {
    const earlier = refunds.find((refund) => refund.metadata?.['idempotencyKey'] === idempotencyKey);
    if (earlier === undefined) return undefined;
    if (!isFailed(earlier)) return refundOutcome(order.orderId, earlier);
    return (await this.otherRefund(order)) ?? refundOutcome(order.orderId, earlier);
  }

  /**
   * A refund not ours that returned the money (the order refunded whole), or one still pending that
   * completes the refund (Stripe counts it in the charge's `refunded` until it fails); undefined when
   * neither. An operator's pending refund of part of the price is not the refund of the payment.
   */
  private async otherRefund(paymentOrder: PaymentOrder): Promise<ProviderRefund | undefined> {
    const order = await this.getOrder(paymentOrder);
    if (order.providerRefundId !== null && (order.status === 'refunded' || order.status === 'captured_in_part')) return { providerRefundId: order.providerRefundId, status: 'succeeded' };
    return order.pendingRefundId === undefined ? undefined : { providerRefundId: order.pendingRefundId, status: 'pending' };
  }

  async cancel(order: PaymentOrder, idempotencyKey: string): Promise<ProviderOrder> {
    const { orderId } = order;
    const intent = await this.retrieve(orderId);
    if (intent !== undefined && intent.status !== 'succeeded' && intent.status !== 'canceled') {
      // The key names the state the cancel is asked in: Stripe keeps a refused cancel's answer under
      // its key for 24 hours, so a PaymentIntent that could not be canceled then (`processing`) is
      // asked under a new key once its state has moved; asked in the same state, it is the same call.
      const key = `${idempotencyKey}-${intent.status}`;
      try {
        await this.call('cancel the PaymentIntent', () => this.stripe.paymentIntents.cancel(orderId, { cancellation_reason: 'abandoned' }, { idempotencyKey: key }));
      } catch (error) {
        // Captured or cancelled since it was read: what it is now is the answer.
        if (!(error instanceof PaymentProviderError && isUnexpectedState(error.cause))) throw error;
      }
    }
    return this.getOrder(order);
  }

  /** The PaymentIntent, or undefined when Stripe has none with this id. */
  private async retrieve(orderId: string): Promise<Stripe.PaymentIntent | undefined> {
    try {
      return await this.call('read the PaymentIntent', () => this.stripe.paymentIntents.retrieve(orderId));
    } catch (error) {
      if (error instanceof PaymentProviderError && error.cause instanceof Stripe.errors.StripeInvalidRequestError && error.cause.code === 'resource_missing') return undefined;
      throw error;
    }
  }

  /** The PaymentIntent's refunds, newest first (one page of 100: a PaymentIntent has a few). */
  private async refundsOf(orderId: string): Promise<readonly Stripe.Refund[]> {
    return (await this.call('list the refunds', () => this.stripe.refunds.list({ payment_intent: orderId, limit: 100 }))).data;
  }

  /** One SDK call, retried on 429, its failures as PaymentProviderError (the Stripe error as `cause`). */
  private async call<T>(what: string, request: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await request();
      } catch (error) {
        if (error instanceof Stripe.errors.StripeRateLimitError && attempt < RATE_LIMIT_RETRIES) {
          await new Promise((resolve) => setTimeout(resolve, RATE_LIMIT_BACKOFF_MS * 2 ** attempt));
          continue;
        }
        throw providerErrorOf(what, error);
      }
    }
  }
}

/**
 * The refund the ledger records for a PaymentIntent Stripe calls refunded: the newest that succeeded,
 * once no refund is pending (a pending one is not the money back yet, and may fail); a failed one never is.
 */
function settledRefundId(refunds: readonly Stripe.Refund[]): string | null {
  if (refunds.some(isPending)) return null;
  return refunds.find((refund) => refund.status === 'succeeded')?.id ?? null;
}

function isPending(refund: Stripe.Refund): boolean {
  return refund.status === 'pending' || refund.status === 'requires_action';
}

function isFailed(refund: Stripe.Refund): boolean {
  return refund.status !== 'succeeded' && !isPending(refund);
}

/** Our refund as the port answers it: succeeded, pending, or REFUND_FAILED (the money stayed with the merchant: the ledger ends the request). */
function refundOutcome(orderId: string, refund: Stripe.Refund): ProviderRefund {
  if (refund.status === 'succeeded') return { providerRefundId: refund.id, status: 'succeeded' };
  if (isPending(refund)) return { providerRefundId: refund.id, status: 'pending' };
  const reason = refund.failure_reason ?? 'no reason given';
  throw new PaymentsError('REFUND_FAILED', `Stripe's refund ${refund.id} of PaymentIntent ${orderId} is ${String(refund.status)} (${reason}): the money stayed with the merchant`, {
    orderId,
    providerRefundId: refund.id,
    providerStatus: String(refund.status),
    failureReason: reason,
  });
}

/** Why a capture is declined when the PaymentIntent is authorised for another amount or currency than the payment's price. */
export const PRICE_MISMATCH = 'price_mismatch';

/** Whether the PaymentIntent is in the payment's currency (Stripe's lower case, ours upper). */
function isInCurrency(intent: Stripe.PaymentIntent, order: PaymentOrder): boolean {
  return intent.currency.toLowerCase() === order.currency.toLowerCase();
}

/**
 * Whether an authorised PaymentIntent can be captured for exactly the payment's price: what the
 * bank authorised (`amount_capturable`: the whole `amount`, or less for a partial authorisation) is
 * the price, in its currency.
 */
function isAuthorisedAtPrice(intent: Stripe.PaymentIntent, order: PaymentOrder): boolean {
  return isInCurrency(intent, order) && intent.amount_capturable === order.amount;
}

/** Whether a succeeded PaymentIntent took the payment's price, whole: not part of it, not another amount or currency. */
function isTakenWhole(intent: Stripe.PaymentIntent, order: PaymentOrder): boolean {
  return isInCurrency(intent, order) && intent.amount_received === order.amount;
}

/** What an answered PaymentIntent means for a capture the client asked for. */
function captureOutcomeOf(intent: Stripe.PaymentIntent, order: PaymentOrder): CaptureOutcome {
  switch (intent.status) {
    case 'succeeded':
      if (!isTakenWhole(intent, order)) {
        // Captured in part at Stripe (an operator's dashboard capture), or for another price than the
        // payment's (the PaymentIntent changed with our API key): not the package's price.
        throw new PaymentsError(
          'PAYMENT_CAPTURED_IN_PART',
          `Stripe captured ${intent.amount_received} of ${intent.amount} ${intent.currency} of PaymentIntent ${intent.id}, and the payment's price is ${order.amount} ${order.currency.toLowerCase()}: not the package's price; nothing is credited, an operator decides`,
          { orderId: intent.id, amountReceived: intent.amount_received, amount: intent.amount, price: order.amount, currency: intent.currency },
        );
      }
      return { status: 'captured', providerTransactionId: idOf(intent.latest_charge) ?? intent.id };
    case 'canceled':
      return { status: 'declined', reason: intent.cancellation_reason ?? 'canceled' };
    case 'requires_payment_method':
      if (intent.last_payment_error !== null && intent.last_payment_error !== undefined) {
        return { status: 'declined', reason: intent.last_payment_error.decline_code ?? intent.last_payment_error.code ?? 'card_declined' };
      }
      throw notAuthorized(intent);
    case 'requires_capture':
      throw new PaymentProviderError(`Stripe left PaymentIntent ${intent.id} uncaptured`, 'unavailable');
    case 'requires_confirmation':
    case 'requires_action':
    case 'processing':
      throw notAuthorized(intent);
    // The SDK's type leaves room for statuses Stripe may add; none is guessed at.
    default:
      throw new PaymentProviderError(`Stripe answered PaymentIntent ${intent.id} with an unknown status ${intent.status}`, 'rejected');
  }
}

function notAuthorized(intent: Stripe.PaymentIntent): PaymentsError {
  return new PaymentsError('PAYMENT_NOT_AUTHORIZED', `the buyer has not authorised PaymentIntent ${intent.id} yet (status ${intent.status}): confirm it with Stripe.js and its client_secret, then capture`, {
    orderId: intent.id,
    providerStatus: intent.status,
  });
}

function declineCodeOf(error: Stripe.errors.StripeCardError): string {
  return error.decline_code ?? error.code ?? 'card_declined';
}

function isUnexpectedState(error: unknown): boolean {
  return error instanceof Stripe.errors.StripeInvalidRequestError && error.code === 'payment_intent_unexpected_state';
}

/** The code of the Stripe invalid-request error behind a failed call (`charge_already_refunded`, `charge_disputed`, ...). */
function invalidRequestCode(error: unknown): string | undefined {
  return error instanceof PaymentProviderError && error.cause instanceof Stripe.errors.StripeInvalidRequestError ? error.cause.code : undefined;
}

function idOf(value: string | { readonly id: string } | null): string | null {
  return value === null ? null : typeof value === 'string' ? value : value.id;
}

/**
 * A Stripe failure as the port's error: `rejected` when Stripe refused the call as sent (a 4xx that
 * is not a rate limit or a key in use), else a failure the caller may retry. The message names the
 * error's type, code and Stripe's request id, not Stripe's text (an authentication error quotes the
 * key's last digits); the Stripe error is the cause.
 */
export function providerErrorOf(what: string, error: unknown): PaymentProviderError {
  const kind =
    error instanceof Stripe.errors.StripeRateLimitError
      ? 'rate_limited'
      : error instanceof Stripe.errors.StripeConnectionError && /timeout/i.test(error.message)
        ? 'timeout'
        : isTransient(error)
          ? 'unavailable'
          : 'rejected';
  const detail =
    error instanceof Stripe.errors.StripeError
      ? `${error.type}${error.code === undefined ? '' : ` ${error.code}`}${error.requestId === undefined ? '' : `, request ${error.requestId}`}`
      : error instanceof Error
        ? error.name
        : 'an unknown error';
  const wrapped = new PaymentProviderError(`Stripe: could not ${what} (${detail})`, kind);
  (wrapped as { cause?: unknown }).cause = error;
  return wrapped;
}

function isTransient(error: unknown): boolean {
  return (
    error instanceof Stripe.errors.StripeConnectionError ||
    error instanceof Stripe.errors.StripeRateLimitError ||
    error instanceof Stripe.errors.StripeAPIError ||
    (error instanceof Stripe.errors.StripeError && (error.statusCode ?? 0) >= 500) ||
    (error instanceof Stripe.errors.StripeIdempotencyError && error.code === 'idempotency_key_in_use')
  );
}
