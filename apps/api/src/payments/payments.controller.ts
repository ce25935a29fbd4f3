import { Body, Controller, Get, HttpCode, HttpStatus, Param, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { ApiAcceptedResponse, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CapturePaymentCommand, GetPaymentQuery, HandleStripeEventCommand, InitiatePaymentCommand, ListPaymentsQuery, RefundPaymentCommand, SettlePaymentCommand } from '@app/payments';
import { systemActor } from '@app/event-sourcing';
import type { RawBodyRequest } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { commandContextOf } from '../http/command-context.js';
import { EmptyBody, NoBody } from '../http/no-body.js';
import { ApiProblems, COMMAND_WRITE_PROBLEMS } from '../openapi/api-problems.decorator.js';
import { MockWebhookResponse, StripeWebhookResponse } from './webhook.responses.js';
import { UserIdParams } from '../accounts/accounts.dto.js';
import {
  CreatedPaymentResponse,
  CreatePaymentRequest,
  MockWebhookRequest,
  PaymentIdParams,
  PaymentListQuery,
  PaymentPageResponse,
  PaymentResponse,
  PaymentWriteResponse,
} from './payments.dto.js';
import { WEBHOOK_SIGNATURE_HEADER, WebhookSignatureGuard } from './webhook-signature.guard.js';

/** Payments: maps requests to commands and queries, nothing more. */
@ApiTags('payments')
@Controller({ path: 'payments', version: '1' })
export class PaymentsController {
  constructor(
    private readonly commandBus: CommandBus,
    private readonly queryBus: QueryBus,
  ) {}

  @Post()
  @HttpCode(HttpStatus.CREATED)
  @ApiOperation({ operationId: 'createPayment', summary: 'Start a payment for a token package', description: 'A PENDING payment at the provider, priced by the server; capture it once the buyer has paid.' })
  @ApiCreatedResponse({ type: CreatedPaymentResponse, description: 'A PENDING payment for the package, priced by the server.' })
  @ApiProblems('PACKAGE_NOT_FOUND', 'TOO_MANY_PENDING_PAYMENTS', 'PAYMENTS_DISABLED', 'PROVIDER_UNAVAILABLE', 'PROVIDER_REJECTED', 'PROVIDER_RATE_LIMITED', ...COMMAND_WRITE_PROBLEMS)
  create(@Body() body: CreatePaymentRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new InitiatePaymentCommand(body.userId, body.packageId, commandContextOf(request)));
  }

  @Post(':paymentId/capture')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ operationId: 'capturePayment', summary: 'Capture a payment and credit its tokens', description: 'Capture and credit are one append: a repeat returns the payment without crediting again. 502 PROVIDER_UNAVAILABLE is safe to retry.' })
  @ApiOkResponse({ type: PaymentWriteResponse, description: 'Captured and credited; a repeat returns the payment without crediting again.' })
  @ApiProblems('PAYMENT_NOT_FOUND', 'PAYMENT_EXPIRED', 'PAYMENT_DECLINED', 'PAYMENT_NOT_AUTHORIZED', 'PAYMENT_CAPTURED_IN_PART', 'PAYMENTS_DISABLED', 'PROVIDER_UNAVAILABLE', 'PROVIDER_REJECTED', 'PROVIDER_RATE_LIMITED', 'LOT_LIMIT_REACHED', 'BALANCE_OUT_OF_RANGE', ...COMMAND_WRITE_PROBLEMS)
  capture(@Param() { paymentId }: PaymentIdParams, @NoBody() _body: EmptyBody, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new CapturePaymentCommand(paymentId, commandContextOf(request)));
  }

  @Post(':paymentId/refund')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ operationId: 'refundPayment', summary: 'Refund a payment and take its tokens back', description: '409 REFUND_EXCEEDS_BALANCE or REFUND_EXCEEDS_LOT (nothing refunded), PAYMENT_NOT_CAPTURED.' })
  @ApiOkResponse({ type: PaymentWriteResponse, description: 'Refunded at the provider and the tokens taken back; a repeat refunds nothing more.' })
  @ApiAcceptedResponse({
    type: PaymentWriteResponse,
    description:
      "Asked of the provider, not finished (Stripe's refund is pending until the bank confirms it): the payment stays REFUND_PENDING, its tokens reserved, and is refunded once the provider's refund succeeded (its notification, the reconciliation job, or this request again, which under the same Idempotency-Key asks again rather than replaying this answer).",
  })
  @ApiProblems('PAYMENT_NOT_FOUND', 'PAYMENT_NOT_CAPTURED', 'REFUND_EXCEEDS_BALANCE', 'REFUND_EXCEEDS_LOT', 'PAYMENT_DISPUTED', 'REFUND_FAILED', 'PAYMENTS_DISABLED', 'PROVIDER_UNAVAILABLE', 'PROVIDER_REJECTED', 'PROVIDER_RATE_LIMITED', ...COMMAND_WRITE_PROBLEMS)
  // Refunds are whole (ADR 0021): a body naming an amount is refused, never read as a partial refund and carried out whole.
  async refund(@Param() { paymentId }: PaymentIdParams, @NoBody() _body: EmptyBody, @Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply) {
    const result = await this.commandBus.execute(new RefundPaymentCommand(paymentId, commandContextOf(request)));
    if (result.payment.status === 'REFUND_PENDING') void reply.code(HttpStatus.ACCEPTED);
    return result;
  }

  @Get(':paymentId')
  @ApiOperation({ operationId: 'getPayment', summary: 'Read a payment' })
  @ApiOkResponse({ type: PaymentResponse, description: 'The payment as the ledger knows it.' })
  @ApiProblems('PAYMENT_NOT_FOUND')
  get(@Param() { paymentId }: PaymentIdParams) {
    return this.queryBus.execute(new GetPaymentQuery(paymentId));
  }

  @Post('webhooks/mock')
  @HttpCode(HttpStatus.OK)
  @UseGuards(WebhookSignatureGuard)
  @ApiHeader({
    name: WEBHOOK_SIGNATURE_HEADER,
    required: true,
    description: 't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with PAYMENT_WEBHOOK_SECRET> (one v1 per secret during a rotation)',
  })
  @ApiOperation({ operationId: 'receiveMockWebhook', summary: "Receive the mock provider's signed notification", description: '401 WEBHOOK_SIGNATURE_INVALID when the signature is missing, malformed or bad, or its timestamp is outside PAYMENT_WEBHOOK_TOLERANCE_SECONDS (the detail says which); 404 PROVIDER_NOT_CONFIGURED when PAYMENT_PROVIDER is not mock; nothing happens then.' })
  @ApiOkResponse({ type: MockWebhookResponse, description: 'Recorded, or (duplicate) this event id was processed before and nothing happened.' })
  @ApiProblems('WEBHOOK_SIGNATURE_INVALID', 'PROVIDER_NOT_CONFIGURED', 'PAYMENT_NOT_FOUND', 'BALANCE_OUT_OF_RANGE', 'PROVIDER_UNAVAILABLE', 'PROVIDER_REJECTED', 'PROVIDER_RATE_LIMITED', 'DATABASE_UNAVAILABLE', ...COMMAND_WRITE_PROBLEMS)
  async webhook(@Body() body: MockWebhookRequest, @Req() request: FastifyRequest) {
    // The notification only says where to look: the provider is asked what happened to the order.
    const context = { requestId: request.id, actor: systemActor('mock-provider', 'webhook') };
    const { duplicate } = await this.commandBus.execute(new SettlePaymentCommand(body.paymentId, { provider: 'mock', eventId: body.id }, context));
    return { received: true, duplicate };
  }

  @Post('webhooks/stripe')
  @HttpCode(HttpStatus.OK)
  @ApiHeader({ name: 'stripe-signature', required: true, description: "Stripe's signature of the raw body (t=<unix seconds>,v1=<hex HMAC-SHA256>), checked by the Stripe SDK with STRIPE_WEBHOOK_SECRET" })
  @ApiOperation({ operationId: 'receiveStripeWebhook', summary: "Receive Stripe's signed event", description: "401 WEBHOOK_SIGNATURE_INVALID when the signature is missing or bad or too old; 404 PROVIDER_NOT_CONFIGURED when PAYMENT_PROVIDER is not stripe. Takes bodies of up to 1 MiB (other routes 64 KiB): Stripe's events carry whole objects, a dispute's with the merchant's evidence." })
  @ApiOkResponse({
    type: StripeWebhookResponse,
    description:
      'Processed and committed; or this event id was processed before (duplicate); or the event is not about a payment of ours (ignored); or the ledger refused what it asked for, which no redelivery would change (refused: an auto-capture refused before any money moved, or a PaymentIntent an operator captured in part); or taken, with a disagreement left to an operator (unresolved: a refund that failed after it succeeded).',
  })
  @ApiProblems('WEBHOOK_SIGNATURE_INVALID', 'PROVIDER_NOT_CONFIGURED', 'BALANCE_OUT_OF_RANGE', 'PROVIDER_UNAVAILABLE', 'PROVIDER_REJECTED', 'PROVIDER_RATE_LIMITED', 'DATABASE_UNAVAILABLE', ...COMMAND_WRITE_PROBLEMS)
  stripeWebhook(@Req() request: RawBodyRequest<FastifyRequest>) {
    // The event is read from the exact bytes Stripe signed, never from the parsed body.
    const context = { requestId: request.id, actor: systemActor('stripe', 'webhook') };
    return this.commandBus.execute(new HandleStripeEventCommand(request.rawBody, request.headers['stripe-signature'], context));
  }
}

/** A user's payments. */
@ApiTags('payments')
@Controller({ path: 'accounts/:userId/payments', version: '1' })
export class AccountPaymentsController {
  constructor(private readonly queryBus: QueryBus) {}

  @Get()
  @ApiOperation({ operationId: 'listPayments', summary: 'List the payments of an account', description: 'Newest first, optionally of one status; by cursor (stable while rows arrive) or offset (classic, unstable).' })
  @ApiOkResponse({ type: PaymentPageResponse, description: 'Newest first; by cursor (stable) or offset (classic, unstable).' })
  @ApiProblems('INVALID_CURSOR')
  list(@Param() { userId }: UserIdParams, @Query() query: PaymentListQuery) {
    return this.queryBus.execute(new ListPaymentsQuery(userId, query.limit, query.position(), query.status));
  }
}
