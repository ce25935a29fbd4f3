import { Body, Controller, Get, HttpCode, HttpStatus, Param, Post, Query, Req, UseGuards } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { CapturePaymentCommand, GetPaymentQuery, HandleStripeEventCommand, InitiatePaymentCommand, ListPaymentsQuery, RefundPaymentCommand, SettlePaymentCommand } from '@app/payments';
import { systemActor } from '@app/event-sourcing';
import type { RawBodyRequest } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { commandContextOf, IDEMPOTENCY_KEY_API_HEADER } from '../http/command-context.js';
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
  RefundPaymentRequest,
} from './payments.dto.js';
import { WEBHOOK_SIGNATURE_HEADER, WebhookSignatureGuard } from './webhook-signature.guard.js';

/** Payments: maps requests to commands and queries, nothing more. */
@ApiTags('payments')
@ApiBadRequestResponse({ description: 'Validation failed: problem VALIDATION_FAILED naming each field and rule.' })
@Controller({ path: 'payments', version: '1' })
export class PaymentsController {
  constructor(
    private readonly commandBus: CommandBus,
    private readonly queryBus: QueryBus,
  ) {}

  @Post()
  @HttpCode(HttpStatus.CREATED)
  @ApiHeader(IDEMPOTENCY_KEY_API_HEADER)
  @ApiCreatedResponse({ type: CreatedPaymentResponse, description: 'A PENDING payment for the package, priced by the server.' })
  @ApiNotFoundResponse({ description: 'PACKAGE_NOT_FOUND' })
  create(@Body() body: CreatePaymentRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new InitiatePaymentCommand(body.userId, body.packageId, commandContextOf(request)));
  }

  @Post(':paymentId/capture')
  @HttpCode(HttpStatus.OK)
  @ApiHeader(IDEMPOTENCY_KEY_API_HEADER)
  @ApiOkResponse({ type: PaymentWriteResponse, description: 'Captured and credited; a repeat returns the payment without crediting again.' })
  @ApiConflictResponse({ description: 'PAYMENT_EXPIRED. Also 402 PAYMENT_DECLINED, 404 PAYMENT_NOT_FOUND, 502 PROVIDER_UNAVAILABLE and 503 PROVIDER_RATE_LIMITED with Retry-After (retry).' })
  capture(@Param() { paymentId }: PaymentIdParams, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new CapturePaymentCommand(paymentId, commandContextOf(request)));
  }

  @Post(':paymentId/refund')
  @HttpCode(HttpStatus.OK)
  @ApiHeader(IDEMPOTENCY_KEY_API_HEADER)
  @ApiOkResponse({ type: PaymentWriteResponse, description: 'Refunded at the provider and the tokens taken back; a repeat refunds nothing more.' })
  @ApiConflictResponse({ description: 'REFUND_EXCEEDS_BALANCE (nothing refunded), PAYMENT_NOT_CAPTURED, PAYMENT_DISPUTED (an open or lost dispute, with disputeId and disputeStatus).' })
  @ApiBadRequestResponse({ description: 'VALIDATION_FAILED: a refund is whole; a body naming an amount (or any property) is refused.' })
  refund(@Param() { paymentId }: PaymentIdParams, @Body() _whole: RefundPaymentRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new RefundPaymentCommand(paymentId, commandContextOf(request)));
  }

  @Get(':paymentId')
  @ApiOkResponse({ type: PaymentResponse })
  @ApiNotFoundResponse({ description: 'PAYMENT_NOT_FOUND' })
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
  @ApiOkResponse({ description: '{ received: true, duplicate }: recorded, or (duplicate) this event id was processed before and nothing happened.' })
  @ApiUnauthorizedResponse({ description: 'Missing or bad signature, or a timestamp outside PAYMENT_WEBHOOK_TOLERANCE_SECONDS; nothing happened.' })
  async webhook(@Body() body: MockWebhookRequest, @Req() request: FastifyRequest) {
    // The notification only says where to look: the provider is asked what happened to the order.
    const context = { requestId: request.id, actor: systemActor('mock-provider', 'webhook') };
    const { duplicate } = await this.commandBus.execute(new SettlePaymentCommand(body.paymentId, { provider: 'mock', eventId: body.id }, context));
    return { received: true, duplicate };
  }

  @Post('webhooks/stripe')
  @HttpCode(HttpStatus.OK)
  @ApiHeader({ name: 'stripe-signature', required: true, description: "Stripe's signature of the raw body (t=<unix seconds>,v1=<hex HMAC-SHA256>), checked by the Stripe SDK with STRIPE_WEBHOOK_SECRET" })
  @ApiOkResponse({ description: '{ received: true, duplicate, ignored }: processed and committed; or this event id was processed before (duplicate); or the event is not about a payment of ours (ignored).' })
  @ApiUnauthorizedResponse({ description: 'WEBHOOK_SIGNATURE_INVALID: missing or bad signature, or a timestamp outside PAYMENT_WEBHOOK_TOLERANCE_SECONDS; nothing happened.' })
  @ApiNotFoundResponse({ description: 'PROVIDER_NOT_CONFIGURED: PAYMENT_PROVIDER is not stripe.' })
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
  @ApiOkResponse({ type: PaymentPageResponse, description: 'Newest first; by cursor (stable) or offset (classic, unstable).' })
  @ApiBadRequestResponse({ description: 'INVALID_CURSOR: the cursor is not a nextCursor of this list, user and filter.' })
  list(@Param() { userId }: UserIdParams, @Query() query: PaymentListQuery) {
    return this.queryBus.execute(new ListPaymentsQuery(userId, query.limit, query.position(), query.status));
  }
}
