import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';

/**
 * A FAKE of the parts of Stripe's API the Stripe adapter uses, following Stripe's DOCUMENTED request
 * and response shapes (API reference: PaymentIntents, Refunds, Charges, Errors, Idempotent requests,
 * Webhooks). It is not Stripe and proves nothing about Stripe beyond those documented shapes: our
 * machines reach no network, so the adapter is tested against this, over real HTTP, through the real
 * `stripe` SDK pointed at it (`host`, `port`, `protocol`).
 *
 * What it follows:
 * - requests are `application/x-www-form-urlencoded` with bracket keys (`metadata[paymentId]=…`),
 *   authenticated with `Authorization: Bearer sk_…` (401 otherwise);
 * - `Idempotency-Key` on POST: the same key with the same parameters answers the saved response; the
 *   same key with other parameters (or on another endpoint) is 400 `idempotency_error`; a key whose
 *   first request is still running is 409 `idempotency_error` / `idempotency_key_in_use`;
 * - the PaymentIntent lifecycle with `capture_method=manual`: requires_payment_method -> (confirm)
 *   requires_capture -> (capture) succeeded, or canceled; a declined confirmation is 402 `card_error`
 *   with `decline_code` and leaves the PaymentIntent in requires_payment_method with
 *   `last_payment_error`; capture or cancel in a state that does not allow it is 400
 *   `invalid_request_error` / `payment_intent_unexpected_state` (a `processing` one cannot be canceled);
 * - disputes of a captured charge (`dp_…`, `needs_response`, closed as `won` or `lost`), with the
 *   `charge.dispute.created` and `charge.dispute.closed` events, `GET /v1/disputes/{id}` and the list
 *   `GET /v1/disputes` (newest first, `created[gte]`, paged, PaymentIntents expandable); the charge
 *   is marked `disputed`, and a disputed charge cannot be refunded (400 `charge_disputed`);
 * - refunds of a succeeded PaymentIntent (whole or partial), `charge_already_refunded` once nothing is
 *   left, the charge's `amount_refunded` and `refunded`; a refund `succeeded`, or `pending` until the
 *   bank decides it (`succeeded` or `failed`, with `failure_reason`, `refund.updated`), read by
 *   `GET /v1/refunds/{id}` and the list `GET /v1/refunds` (newest first, `created[gte]`, paged,
 *   PaymentIntents expandable); a succeeded refund the bank sends back later (`failed`, `refund.failed`);
 * - error bodies `{ error: { type, code, decline_code, message, param } }` with Stripe's statuses
 *   (card_error 402, rate_limit_error 429, api_error 500);
 * - events `{ id: evt_…, object: 'event', type, data: { object }, created, … }` recorded for every
 *   change, delivered signed with `Stripe-Signature` made by the SDK's `webhooks.generateTestHeaderString`.
 *
 * Test payment methods (Stripe's documented test ids): `pm_card_visa` authorises;
 * `pm_card_visa_chargeDeclined` declines with `generic_decline`;
 * `pm_card_visa_chargeDeclinedInsufficientFunds` with `insufficient_funds`.
 */
export type FakePaymentIntent = {
  id: string;
  object: 'payment_intent';
  amount: number;
  amount_capturable: number;
  amount_received: number;
  currency: string;
  capture_method: 'automatic' | 'manual';
  client_secret: string;
  created: number;
  canceled_at: number | null;
  cancellation_reason: string | null;
  description: string | null;
  last_payment_error: StripeErrorBody | null;
  latest_charge: string | null;
  livemode: false;
  metadata: Record<string, string>;
  payment_method: string | null;
  status: 'requires_payment_method' | 'requires_confirmation' | 'requires_action' | 'processing' | 'requires_capture' | 'canceled' | 'succeeded';
};

type FakeCharge = {
  id: string;
  object: 'charge';
  amount: number;
  amount_captured: number;
  amount_refunded: number;
  captured: boolean;
  currency: string;
  created: number;
  disputed: boolean;
  livemode: false;
  metadata: Record<string, string>;
  paid: boolean;
  payment_intent: string;
  refunded: boolean;
  status: 'succeeded' | 'failed';
};

type FakeRefund = {
  id: string;
  object: 'refund';
  amount: number;
  charge: string;
  created: number;
  currency: string;
  metadata: Record<string, string>;
  payment_intent: string;
  reason: string | null;
  status: 'succeeded' | 'pending' | 'failed';
  failure_reason: string | null;
};

/** Stripe's `Dispute` object (API reference: Disputes), the fields the adapter and the tests read. */
export type FakeDispute = {
  id: string;
  object: 'dispute';
  amount: number;
  balance_transactions: object[];
  charge: string;
  created: number;
  currency: string;
  evidence_details: { due_by: number; has_evidence: boolean; past_due: boolean; submission_count: number };
  is_charge_refundable: boolean;
  livemode: false;
  metadata: Record<string, string>;
  payment_intent: string | null;
  reason: string;
  status: 'warning_needs_response' | 'warning_under_review' | 'warning_closed' | 'needs_response' | 'under_review' | 'won' | 'lost';
};

export type StripeErrorBody = { type: string; code?: string; decline_code?: string; message: string; param?: string; payment_intent?: FakePaymentIntent };

export type FakeStripeEvent = { id: string; object: 'event'; api_version: string; created: number; livemode: false; pending_webhooks: number; type: string; data: { object: object } };

/**
 * A failure injected into the next matching request(s): before anything happens (refused before the
 * endpoint ran: nothing saved under the key), `instead` of the effect (the endpoint ran and refused,
 * as Stripe refuses a refund of a charge too old: saved under the key, so the same key gets the same
 * refusal for 24 hours), after the effect (a lost answer), or a delay.
 */
export type InjectedFault =
  | { readonly kind: 'error'; readonly status: number; readonly type: string; readonly code?: string; readonly when: 'before' | 'instead' | 'after' }
  | { readonly kind: 'delay'; readonly ms: number };

type Saved = { readonly fingerprint: string; readonly status: number; readonly body: unknown };
type Answer = { readonly status: number; readonly body: unknown };
type Handler = (params: Params, match: RegExpExecArray) => Answer;
type Params = Record<string, string | Record<string, string>>;

const API_VERSION = Stripe.API_VERSION;

class StripeFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: StripeErrorBody,
  ) {
    super(body.message);
  }
}

/** One request the fake received: for the contract test, which documents what the adapter sends. */
export type RecordedRequest = { readonly method: string; readonly path: string; readonly params: Params; readonly idempotencyKey: string | undefined; readonly contentType: string | undefined; readonly stripeVersion: string | undefined };

export class FakeStripeServer {
  readonly secretKey = 'sk_test_fake_0123456789';
  readonly webhookSecret = 'whsec_fake_0123456789abcdef';
  readonly paymentIntents = new Map<string, FakePaymentIntent>();
  readonly charges = new Map<string, FakeCharge>();
  readonly refunds = new Map<string, FakeRefund>();
  readonly disputes = new Map<string, FakeDispute>();
  readonly events: FakeStripeEvent[] = [];
  readonly requests: RecordedRequest[] = [];
  private readonly saved = new Map<string, Saved>();
  private readonly inFlight = new Set<string>();
  private readonly faults: { readonly method: string; readonly path: RegExp; fault: InjectedFault; times: number }[] = [];
  private readonly routes: { readonly method: string; readonly path: RegExp; readonly handler: Handler }[];
  private server: Server | undefined;
  private sequence = 0;

  constructor() {
    this.routes = [
      { method: 'POST', path: /^\/v1\/payment_intents$/, handler: (params) => this.createPaymentIntent(params) },
      { method: 'GET', path: /^\/v1\/payment_intents\/([^/]+)$/, handler: (_, match) => ({ status: 200, body: this.intent(match[1] ?? '') }) },
      { method: 'POST', path: /^\/v1\/payment_intents\/([^/]+)$/, handler: (params, match) => this.updatePaymentIntent(match[1] ?? '', params) },
      { method: 'POST', path: /^\/v1\/payment_intents\/([^/]+)\/confirm$/, handler: (params, match) => this.confirm(match[1] ?? '', params) },
      { method: 'POST', path: /^\/v1\/payment_intents\/([^/]+)\/capture$/, handler: (params, match) => this.capture(match[1] ?? '', params) },
      { method: 'POST', path: /^\/v1\/payment_intents\/([^/]+)\/cancel$/, handler: (params, match) => this.cancel(match[1] ?? '', params) },
      { method: 'POST', path: /^\/v1\/payment_intents\/([^/]+)\/increment_authorization$/, handler: (params, match) => this.incrementAuthorization(match[1] ?? '', params) },
      { method: 'POST', path: /^\/v1\/refunds$/, handler: (params) => this.createRefund(params) },
      { method: 'GET', path: /^\/v1\/refunds$/, handler: (params) => this.listRefunds(params) },
      { method: 'GET', path: /^\/v1\/refunds\/([^/]+)$/, handler: (_, match) => ({ status: 200, body: this.refundById(match[1] ?? '') }) },
      { method: 'GET', path: /^\/v1\/charges\/([^/]+)$/, handler: (_, match) => ({ status: 200, body: this.charge(match[1] ?? '') }) },
      { method: 'GET', path: /^\/v1\/disputes$/, handler: (params) => this.listDisputes(params) },
      { method: 'GET', path: /^\/v1\/disputes\/([^/]+)$/, handler: (_, match) => ({ status: 200, body: this.disputeById(match[1] ?? '') }) },
    ];
  }

  async start(): Promise<{ host: string; port: number; protocol: 'http' }> {
    const server = createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    return { host: '127.0.0.1', port: (server.address() as AddressInfo).port, protocol: 'http' };
  }

  get url(): string {
    const address = this.server?.address() as AddressInfo | undefined;
    if (address === undefined) throw new Error('the fake Stripe server is not started');
    return `http://127.0.0.1:${address.port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Stripe prunes idempotency keys after 24 hours: after this, the key's next request runs afresh. */
  forgetIdempotencyKey(key: string): void {
    this.saved.delete(key);
  }

  /** The next `times` requests of `method` on a path matching `path` meet `fault`. */
  inject(method: string, path: RegExp, fault: InjectedFault, times = 1): void {
    this.faults.push({ method, path, fault, times });
  }

  /** Forgets every fault injected and not yet met. */
  clearInjected(): void {
    this.faults.length = 0;
  }

  /** What Stripe.js does in the browser: confirm the PaymentIntent with a (test) payment method. Answers the HTTP status and body. */
  confirmAsCustomer(paymentIntentId: string, paymentMethod = 'pm_card_visa'): Answer {
    try {
      return this.confirm(paymentIntentId, { payment_method: paymentMethod });
    } catch (error) {
      if (error instanceof StripeFailure) return { status: error.status, body: { error: error.body } };
      throw error;
    }
  }

  /**
   * Stripe is still processing the customer's payment (a bank debit, say): the authorised
   * PaymentIntent is `processing`, which cannot be canceled or captured, until `finishProcessing`.
   */
  startProcessing(paymentIntentId: string): void {
    const intent = this.intent(paymentIntentId);
    if (intent.status !== 'requires_capture') throw new Error(`PaymentIntent ${paymentIntentId} is ${intent.status}, not requires_capture`);
    intent.status = 'processing';
    intent.amount_capturable = 0;
    this.emit('payment_intent.processing', intent);
  }

  /** Processing is over: the PaymentIntent is authorised for its whole amount again (`requires_capture`). */
  finishProcessing(paymentIntentId: string): void {
    const intent = this.intent(paymentIntentId);
    if (intent.status !== 'processing') throw new Error(`PaymentIntent ${paymentIntentId} is ${intent.status}, not processing`);
    intent.status = 'requires_capture';
    intent.amount_capturable = intent.amount;
    this.emit('payment_intent.amount_capturable_updated', intent);
  }

  /**
   * What the next refunds are created as: `succeeded` (a card refund, usually), or `pending` (the
   * bank has not confirmed it yet; `settleRefund` decides it later). A pending refund counts in the
   * charge's `amount_refunded` until it fails.
   */
  nextRefundStatus: 'succeeded' | 'pending' = 'succeeded';

  /** Runs `run` with the refunds it makes created `pending`, then back to `succeeded`, whatever `run` does. */
  async whileRefundsPending<T>(run: () => T | Promise<T>): Promise<T> {
    this.nextRefundStatus = 'pending';
    try {
      return await run();
    } finally {
      this.nextRefundStatus = 'succeeded';
    }
  }

  /**
   * The bank decides a pending refund: `succeeded`, or `failed` (the money stays with the merchant:
   * the charge's `amount_refunded` drops back and `refunded` is false again). Sends `refund.updated`.
   */
  settleRefund(refundId: string, outcome: 'succeeded' | 'failed'): FakeRefund {
    const refund = this.refundById(refundId);
    if (refund.status !== 'pending') throw new Error(`refund ${refundId} is ${refund.status}, not pending`);
    refund.status = outcome;
    if (outcome === 'failed') {
      refund.failure_reason = 'expired_or_canceled_card';
      const charge = this.charge(refund.charge);
      charge.amount_refunded -= refund.amount;
      charge.refunded = false;
    }
    this.emit('refund.updated', refund);
    return refund;
  }

  /**
   * The bank sends back a refund that had succeeded (the card was closed since): the refund turns
   * `failed` with its `failure_reason`, the money is the merchant's again (the charge's
   * `amount_refunded` drops back, `refunded` is false). Sends `refund.updated` and `refund.failed`.
   */
  returnRefund(refundId: string): FakeRefund {
    const refund = this.refundById(refundId);
    if (refund.status !== 'succeeded') throw new Error(`refund ${refundId} is ${refund.status}, not succeeded`);
    refund.status = 'failed';
    refund.failure_reason = 'expired_or_canceled_card';
    const charge = this.charge(refund.charge);
    charge.amount_refunded -= refund.amount;
    charge.refunded = false;
    this.emit('refund.updated', refund);
    this.emit('refund.failed', refund);
    return refund;
  }

  /** An operator refunds in Stripe's dashboard (no idempotency key of ours), the whole remaining amount unless `amount`. */
  dashboardRefund(paymentIntentId: string, amount?: number): FakeRefund {
    return this.refund({ payment_intent: paymentIntentId, ...(amount === undefined ? {} : { amount: String(amount) }) });
  }

  /**
   * The card's bank disputes the captured charge of this PaymentIntent (the whole amount): Stripe
   * creates the dispute in `needs_response` and sends `charge.dispute.created`. An inquiry (a
   * retrieval request) is created in `warning_needs_response`, the charge still refundable.
   */
  openDispute(paymentIntentId: string, reason = 'fraudulent', inquiry = false): FakeDispute {
    const intent = this.intent(paymentIntentId);
    const charge = this.charge(intent.latest_charge ?? '');
    if (!charge.captured) throw new Error(`charge ${charge.id} is not captured: nothing to dispute`);
    const created = nowSeconds();
    const dispute: FakeDispute = {
      id: `dp_${this.next()}`,
      object: 'dispute',
      amount: charge.amount_captured,
      balance_transactions: [],
      charge: charge.id,
      created,
      currency: charge.currency,
      evidence_details: { due_by: created + 7 * 86_400, has_evidence: false, past_due: false, submission_count: 0 },
      is_charge_refundable: inquiry,
      livemode: false,
      metadata: {},
      payment_intent: intent.id,
      reason,
      status: inquiry ? 'warning_needs_response' : 'needs_response',
    };
    this.disputes.set(dispute.id, dispute);
    charge.disputed = true;
    this.emit('charge.dispute.created', dispute);
    return dispute;
  }

  /** The bank decides the dispute: `charge.dispute.closed` with status won or lost. */
  closeDispute(disputeId: string, outcome: 'won' | 'lost' | 'warning_closed'): FakeDispute {
    const dispute = this.disputeById(disputeId);
    if (dispute.status === 'won' || dispute.status === 'lost' || dispute.status === 'warning_closed') throw new Error(`dispute ${disputeId} is already ${dispute.status}`);
    dispute.status = outcome;
    this.emit('charge.dispute.closed', dispute);
    return dispute;
  }

  /** The PaymentIntent whose metadata names our payment. */
  intentOf(paymentId: string): FakePaymentIntent {
    const found = [...this.paymentIntents.values()].find((intent) => intent.metadata['paymentId'] === paymentId);
    if (found === undefined) throw new Error(`the fake has no PaymentIntent for payment ${paymentId}`);
    return found;
  }

  /** Events of `type` about the PaymentIntent or charge `objectId`, oldest first. */
  eventsOf(type: string, objectId?: string): FakeStripeEvent[] {
    return this.events.filter((event) => event.type === type && (objectId === undefined || JSON.stringify(event.data.object).includes(`"${objectId}"`)));
  }

  /** A raw body and its `Stripe-Signature`, signed with the SDK's test helper (Stripe's scheme: t=…,v1=HMAC-SHA256 of "t.body"). */
  signed(event: object, options: { secret?: string; timestamp?: number } = {}): { body: string; signature: string } {
    const body = JSON.stringify(event);
    const signature = Stripe.webhooks.generateTestHeaderString({ payload: body, secret: options.secret ?? this.webhookSecret, ...(options.timestamp === undefined ? {} : { timestamp: options.timestamp }) });
    return { body, signature };
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const url = new URL(request.url ?? '/', 'http://fake');
    const method = request.method ?? 'GET';
    const raw = method === 'GET' ? url.search.slice(1) : Buffer.concat(chunks).toString('utf8');
    const params = parseForm(raw);
    const idempotencyKey = header(request, 'idempotency-key');
    this.requests.push({ method, path: url.pathname, params, idempotencyKey, contentType: header(request, 'content-type'), stripeVersion: header(request, 'stripe-version') });
    const answer = await this.answer(method, url.pathname, params, idempotencyKey, header(request, 'authorization'));
    response.writeHead(answer.status, { 'content-type': 'application/json', 'request-id': `req_${this.next()}`, ...(idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }) });
    response.end(JSON.stringify(answer.body));
  }

  private async answer(method: string, path: string, params: Params, idempotencyKey: string | undefined, authorization: string | undefined): Promise<Answer> {
    if (authorization !== `Bearer ${this.secretKey}`) return failure(401, { type: 'invalid_request_error', message: 'Invalid API Key provided' });
    const route = this.routes.find((candidate) => candidate.method === method && candidate.path.test(path));
    if (route === undefined) return failure(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${path})` });
    const fault = this.takeFault(method, path);
    if (fault?.kind === 'delay') await new Promise((resolve) => setTimeout(resolve, fault.ms));
    if (fault?.kind === 'error' && fault.when === 'before') return failure(fault.status, { type: fault.type, ...(fault.code === undefined ? {} : { code: fault.code }), message: `injected ${fault.type}` });
    const fingerprint = `${method} ${path} ${createHash('sha256').update(JSON.stringify(params)).digest('hex')}`;
    if (method === 'POST' && idempotencyKey !== undefined) {
      const saved = this.saved.get(idempotencyKey);
      if (saved !== undefined) {
        if (saved.fingerprint !== fingerprint) {
          return failure(400, {
            type: 'idempotency_error',
            message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`,
          });
        }
        return { status: saved.status, body: saved.body };
      }
      if (this.inFlight.has(idempotencyKey)) {
        return failure(409, { type: 'idempotency_error', code: 'idempotency_key_in_use', message: 'There is currently another in-progress request using this Stripe-Idempotency-Key.' });
      }
    }
    let result: Answer;
    try {
      if (idempotencyKey !== undefined) this.inFlight.add(idempotencyKey);
      if (fault?.kind === 'error' && fault.when === 'instead') throw new StripeFailure(fault.status, { type: fault.type, ...(fault.code === undefined ? {} : { code: fault.code }), message: `injected ${fault.type}` });
      result = route.handler(params, route.path.exec(path) as RegExpExecArray);
    } catch (error) {
      if (!(error instanceof StripeFailure)) throw error;
      result = { status: error.status, body: { error: error.body } };
    } finally {
      if (idempotencyKey !== undefined) this.inFlight.delete(idempotencyKey);
    }
    // Stripe saves the result of a request that began executing, errors included (not one refused before).
    if (method === 'POST' && idempotencyKey !== undefined) this.saved.set(idempotencyKey, { fingerprint, ...result });
    if (fault?.kind === 'error' && fault.when === 'after') return failure(fault.status, { type: fault.type, ...(fault.code === undefined ? {} : { code: fault.code }), message: `injected ${fault.type} after the effect` });
    return result;
  }

  private takeFault(method: string, path: string): InjectedFault | undefined {
    const index = this.faults.findIndex((candidate) => candidate.method === method && candidate.path.test(path));
    const found = this.faults[index];
    if (found === undefined) return undefined;
    found.times -= 1;
    if (found.times <= 0) this.faults.splice(index, 1);
    return found.fault;
  }

  private createPaymentIntent(params: Params): Answer {
    const amount = integerParam(params, 'amount');
    const currency = stringParam(params, 'currency');
    if (amount === undefined || amount < 1) throw invalid('amount', 'Missing required param: amount.');
    if (currency === undefined || !/^[a-z]{3}$/.test(currency)) throw invalid('currency', 'Invalid currency: must be a lowercase three-letter ISO code.');
    const captureMethod = stringParam(params, 'capture_method') ?? 'automatic';
    if (captureMethod !== 'automatic' && captureMethod !== 'manual') throw invalid('capture_method', `Invalid capture_method: ${captureMethod}`);
    const id = `pi_${this.next()}`;
    const intent: FakePaymentIntent = {
      id,
      object: 'payment_intent',
      amount,
      amount_capturable: 0,
      amount_received: 0,
      currency,
      capture_method: captureMethod,
      client_secret: `${id}_secret_${randomBytes(12).toString('hex')}`,
      created: nowSeconds(),
      canceled_at: null,
      cancellation_reason: null,
      description: stringParam(params, 'description') ?? null,
      last_payment_error: null,
      latest_charge: null,
      livemode: false,
      metadata: mapParam(params, 'metadata'),
      payment_method: null,
      status: 'requires_payment_method',
    };
    this.paymentIntents.set(id, intent);
    this.emit('payment_intent.created', intent);
    return { status: 200, body: intent };
  }

  /**
   * `POST /v1/payment_intents/{id}`: `amount`, `currency`, `description` and `metadata` of a
   * PaymentIntent the buyer has not confirmed yet (Stripe refuses a new amount once it is authorised,
   * short of an incremental authorisation, which this fake does not offer).
   */
  private updatePaymentIntent(id: string, params: Params): Answer {
    const intent = this.intent(id);
    if (intent.status !== 'requires_payment_method' && intent.status !== 'requires_confirmation' && intent.status !== 'requires_action') throw unexpectedState(intent, 'update');
    const amount = integerParam(params, 'amount');
    const currency = stringParam(params, 'currency');
    if (amount !== undefined && amount < 1) throw invalid('amount', 'Invalid amount: must be a positive integer.');
    if (currency !== undefined && !/^[a-z]{3}$/.test(currency)) throw invalid('currency', 'Invalid currency: must be a lowercase three-letter ISO code.');
    intent.amount = amount ?? intent.amount;
    intent.currency = currency ?? intent.currency;
    intent.description = stringParam(params, 'description') ?? intent.description;
    intent.metadata = { ...intent.metadata, ...mapParam(params, 'metadata') };
    return { status: 200, body: intent };
  }

  private confirm(id: string, params: Params): Answer {
    const intent = this.intent(id);
    if (intent.status !== 'requires_payment_method' && intent.status !== 'requires_confirmation') throw unexpectedState(intent, 'confirm');
    const paymentMethod = stringParam(params, 'payment_method') ?? 'pm_card_visa';
    const declineCode = DECLINING_TEST_METHODS[paymentMethod];
    const charge: FakeCharge = {
      id: `ch_${this.next()}`,
      object: 'charge',
      amount: intent.amount,
      amount_captured: 0,
      amount_refunded: 0,
      captured: false,
      currency: intent.currency,
      created: nowSeconds(),
      disputed: false,
      livemode: false,
      metadata: { ...intent.metadata },
      paid: declineCode === undefined,
      payment_intent: id,
      refunded: false,
      status: declineCode === undefined ? 'succeeded' : 'failed',
    };
    this.charges.set(charge.id, charge);
    intent.latest_charge = charge.id;
    intent.payment_method = paymentMethod;
    if (declineCode !== undefined) {
      const error: StripeErrorBody = { type: 'card_error', code: 'card_declined', decline_code: declineCode, message: 'Your card was declined.' };
      intent.last_payment_error = error;
      intent.status = 'requires_payment_method';
      this.emit('charge.failed', charge);
      this.emit('payment_intent.payment_failed', intent);
      throw new StripeFailure(402, { ...error, payment_intent: { ...intent } });
    }
    intent.last_payment_error = null;
    if (intent.capture_method === 'manual') {
      intent.status = 'requires_capture';
      intent.amount_capturable = intent.amount;
      this.emit('payment_intent.amount_capturable_updated', intent);
    } else {
      this.settle(intent, charge);
    }
    return { status: 200, body: intent };
  }

  private capture(id: string, params: Params = {}): Answer {
    const intent = this.intent(id);
    if (intent.status !== 'requires_capture') throw unexpectedState(intent, 'capture');
    const amount = integerParam(params, 'amount_to_capture') ?? intent.amount_capturable;
    if (amount < 1 || amount > intent.amount_capturable) throw invalid('amount_to_capture', `amount_to_capture (${amount}) must be at most the amount capturable (${intent.amount_capturable})`);
    this.settle(intent, this.charge(intent.latest_charge ?? ''), amount);
    return { status: 200, body: intent };
  }

  /**
   * `POST /v1/payment_intents/{id}/increment_authorization`: `amount`, the new total, above the
   * current one, of an authorised PaymentIntent (Stripe offers it for eligible cards only; every card
   * is eligible here).
   */
  private incrementAuthorization(id: string, params: Params): Answer {
    const intent = this.intent(id);
    if (intent.status !== 'requires_capture') throw unexpectedState(intent, 'increment the authorization of');
    const amount = integerParam(params, 'amount');
    if (amount === undefined || amount <= intent.amount) throw invalid('amount', `amount must be greater than the PaymentIntent's current amount (${intent.amount})`);
    intent.amount = amount;
    intent.amount_capturable = amount;
    return { status: 200, body: intent };
  }

  /** The bank authorised only `amount` of the confirmed PaymentIntent (a partial authorisation): less is capturable than its `amount`. */
  authorisePartly(paymentIntentId: string, amount: number): FakePaymentIntent {
    const intent = this.intent(paymentIntentId);
    if (intent.status !== 'requires_capture' || amount < 1 || amount >= intent.amount) throw new Error(`cannot authorise ${amount} of ${intent.id} (${intent.status}, ${intent.amount})`);
    intent.amount_capturable = amount;
    return intent;
  }

  /** An operator captures the authorised PaymentIntent in Stripe's dashboard, `amountToCapture` of it (the rest is released). */
  dashboardCapture(paymentIntentId: string, amountToCapture: number): FakePaymentIntent {
    return this.capture(paymentIntentId, { amount_to_capture: String(amountToCapture) }).body as FakePaymentIntent;
  }

  /** Captures `amount` (a partial capture releases the rest: since API version 2025-03-31 no Refund and no `amount_refunded` for it). */
  private settle(intent: FakePaymentIntent, charge: FakeCharge, amount = intent.amount): void {
    intent.status = 'succeeded';
    intent.amount_received = amount;
    intent.amount_capturable = 0;
    charge.captured = true;
    charge.amount_captured = amount;
    this.emit('charge.captured', charge);
    this.emit('payment_intent.succeeded', intent);
  }

  private cancel(id: string, params: Params): Answer {
    const intent = this.intent(id);
    // Stripe cancels a `processing` PaymentIntent only "in rare cases": here never.
    if (intent.status === 'succeeded' || intent.status === 'canceled' || intent.status === 'processing') throw unexpectedState(intent, 'cancel');
    intent.status = 'canceled';
    intent.canceled_at = nowSeconds();
    intent.cancellation_reason = stringParam(params, 'cancellation_reason') ?? null;
    intent.amount_capturable = 0;
    this.emit('payment_intent.canceled', intent);
    return { status: 200, body: intent };
  }

  private createRefund(params: Params): Answer {
    return { status: 200, body: this.refund(params) };
  }

  private refund(params: Params): FakeRefund {
    const intentId = stringParam(params, 'payment_intent');
    if (intentId === undefined) throw invalid('payment_intent', 'One of the following params should be provided for this request: payment_intent or charge.');
    const intent = this.intent(intentId);
    const charge = intent.latest_charge === null ? undefined : this.charges.get(intent.latest_charge);
    if (intent.status !== 'succeeded' || charge === undefined) {
      throw new StripeFailure(400, { type: 'invalid_request_error', code: 'charge_not_captured', message: `This PaymentIntent (${intentId}) does not have a successful charge to refund.` });
    }
    // An inquiry leaves the charge refundable (`is_charge_refundable`); a chargeback does not.
    if (charge.disputed && [...this.disputes.values()].some((dispute) => dispute.charge === charge.id && !dispute.is_charge_refundable)) {
      throw new StripeFailure(400, { type: 'invalid_request_error', code: 'charge_disputed', message: `Charge ${charge.id} has been charged back; cannot issue a refund.` });
    }
    const left = charge.amount_captured - charge.amount_refunded;
    if (left <= 0) throw new StripeFailure(400, { type: 'invalid_request_error', code: 'charge_already_refunded', message: `Charge ${charge.id} has already been refunded.` });
    const amount = integerParam(params, 'amount') ?? left;
    if (amount < 1 || amount > left) throw invalid('amount', `Refund amount (${amount}) is greater than unrefunded amount on charge (${left})`);
    const refund: FakeRefund = {
      id: `re_${this.next()}`,
      object: 'refund',
      amount,
      charge: charge.id,
      created: nowSeconds(),
      currency: charge.currency,
      metadata: mapParam(params, 'metadata'),
      payment_intent: intent.id,
      reason: stringParam(params, 'reason') ?? null,
      status: this.nextRefundStatus,
      failure_reason: null,
    };
    this.refunds.set(refund.id, refund);
    charge.amount_refunded += amount;
    charge.refunded = charge.amount_refunded === charge.amount_captured;
    this.emit('refund.created', refund);
    this.emit('charge.refunded', charge);
    return refund;
  }

  private refundById(id: string): FakeRefund {
    const refund = this.refunds.get(id);
    if (refund === undefined) throw new StripeFailure(404, { type: 'invalid_request_error', code: 'resource_missing', message: `No such refund: '${id}'`, param: 'id' });
    return refund;
  }

  /**
   * `GET /v1/refunds` (API reference: List all refunds): newest first, `payment_intent`, `created[gte]`,
   * `limit` (at most 100), `starting_after` (the last id of the page before), and
   * `expand[]=data.payment_intent` and `expand[]=data.charge`.
   */
  private listRefunds(params: Params): Answer {
    const intentId = stringParam(params, 'payment_intent');
    const gte = mapParam(params, 'created')['gte'];
    let data = [...this.refunds.values()].filter((refund) => (intentId === undefined || refund.payment_intent === intentId) && (gte === undefined || refund.created >= Number(gte))).reverse();
    const after = stringParam(params, 'starting_after');
    if (after !== undefined) {
      const index = data.findIndex((refund) => refund.id === after);
      if (index === -1) throw new StripeFailure(400, { type: 'invalid_request_error', code: 'resource_missing', param: 'starting_after', message: `No such refund: '${after}'` });
      data = data.slice(index + 1);
    }
    const limit = Math.min(integerParam(params, 'limit') ?? 10, 100);
    const expand = Object.values(mapParam(params, 'expand'));
    const page = data.slice(0, limit).map((refund) => ({
      ...refund,
      ...(expand.includes('data.payment_intent') ? { payment_intent: this.intent(refund.payment_intent) } : {}),
      ...(expand.includes('data.charge') ? { charge: this.charges.get(refund.charge) ?? refund.charge } : {}),
    }));
    return { status: 200, body: { object: 'list', data: page, has_more: data.length > limit, url: '/v1/refunds' } };
  }

  /**
   * `GET /v1/disputes` (API reference: List all disputes): newest first, `created[gte]`, `limit` (at
   * most 100), `starting_after` (the last id of the page before), and `expand[]=data.payment_intent`.
   */
  private listDisputes(params: Params): Answer {
    const gte = mapParam(params, 'created')['gte'];
    let data = [...this.disputes.values()].filter((dispute) => gte === undefined || dispute.created >= Number(gte)).reverse();
    const after = stringParam(params, 'starting_after');
    if (after !== undefined) {
      const index = data.findIndex((dispute) => dispute.id === after);
      if (index === -1) throw new StripeFailure(400, { type: 'invalid_request_error', code: 'resource_missing', param: 'starting_after', message: `No such dispute: '${after}'` });
      data = data.slice(index + 1);
    }
    const limit = Math.min(integerParam(params, 'limit') ?? 10, 100);
    const expandIntent = Object.values(mapParam(params, 'expand')).includes('data.payment_intent');
    const page = data.slice(0, limit).map((dispute) => (expandIntent && dispute.payment_intent !== null ? { ...dispute, payment_intent: this.intent(dispute.payment_intent) } : dispute));
    return { status: 200, body: { object: 'list', data: page, has_more: data.length > limit, url: '/v1/disputes' } };
  }

  private intent(id: string): FakePaymentIntent {
    const intent = this.paymentIntents.get(id);
    if (intent === undefined) throw new StripeFailure(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'intent', message: `No such payment_intent: '${id}'` });
    return intent;
  }

  private charge(id: string): FakeCharge {
    const charge = this.charges.get(id);
    if (charge === undefined) throw new StripeFailure(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'id', message: `No such charge: '${id}'` });
    return charge;
  }

  private disputeById(id: string): FakeDispute {
    const dispute = this.disputes.get(id);
    if (dispute === undefined) throw new StripeFailure(404, { type: 'invalid_request_error', code: 'resource_missing', param: 'dispute', message: `No such dispute: '${id}'` });
    return dispute;
  }

  private emit(type: string, object: object): void {
    // A snapshot, as Stripe sends the object as it was when the event happened.
    this.events.push({ id: `evt_${this.next()}`, object: 'event', api_version: API_VERSION, created: nowSeconds(), livemode: false, pending_webhooks: 1, type, data: { object: structuredClone(object) } });
  }

  private next(): string {
    this.sequence += 1;
    return `fake${String(this.sequence).padStart(6, '0')}${randomBytes(4).toString('hex')}`;
  }
}

/** Stripe's documented test PaymentMethods that decline, with their decline codes. */
const DECLINING_TEST_METHODS: Record<string, string> = {
  pm_card_visa_chargeDeclined: 'generic_decline',
  pm_card_visa_chargeDeclinedInsufficientFunds: 'insufficient_funds',
  pm_card_chargeDeclinedExpiredCard: 'expired_card',
};

function failure(status: number, error: StripeErrorBody): Answer {
  return { status, body: { error } };
}

function invalid(param: string, message: string): StripeFailure {
  return new StripeFailure(400, { type: 'invalid_request_error', param, message });
}

function unexpectedState(intent: FakePaymentIntent, action: string): StripeFailure {
  return new StripeFailure(400, {
    type: 'invalid_request_error',
    code: 'payment_intent_unexpected_state',
    message: `You cannot ${action} this PaymentIntent because it has a status of ${intent.status}.`,
    payment_intent: { ...intent },
  });
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** `a=1&metadata[k]=v` -> `{ a: '1', metadata: { k: 'v' } }` (one level of brackets: all the adapter sends). */
function parseForm(raw: string): Params {
  const params: Params = {};
  for (const [key, value] of new URLSearchParams(raw)) {
    const nested = /^([^[]+)\[([^\]]*)\]$/.exec(key);
    if (nested === null) {
      params[key] = value;
      continue;
    }
    const outer = nested[1] ?? '';
    const existing = params[outer];
    const map = typeof existing === 'object' ? existing : {};
    map[nested[2] ?? ''] = value;
    params[outer] = map;
  }
  return params;
}

function stringParam(params: Params, name: string): string | undefined {
  const value = params[name];
  return typeof value === 'string' ? value : undefined;
}

function integerParam(params: Params, name: string): number | undefined {
  const value = stringParam(params, name);
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value)) throw invalid(name, `Invalid integer: ${value}`);
  return Number(value);
}

function mapParam(params: Params, name: string): Record<string, string> {
  const value = params[name];
  return typeof value === 'object' ? { ...value } : {};
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
