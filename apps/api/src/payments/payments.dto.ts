import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { PAYMENT_STATUSES, type PaymentStatus } from '@app/ledger';
import { IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { HistoryQuery } from '../accounts/accounts.dto.js';
import { IsCanonicalUuid } from '../http/canonical-uuid.js';
import { PageResponse } from '../http/page-query.js';

export class CreatePaymentRequest {
  @ApiProperty({ format: 'uuid', example: '8d0e0a57-2a4f-4f0e-9d3c-6a1f0b7f2c11' })
  @IsCanonicalUuid()
  userId!: string;

  @ApiProperty({ description: 'A token package id from the server configuration (TOKEN_PACKAGES).', example: 'starter' })
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9-]{0,63}$/, { message: 'packageId must be 1-64 lower-case letters, digits or dashes' })
  packageId!: string;
}

export class PaymentIdParams {
  @ApiProperty({ format: 'uuid' })
  @IsCanonicalUuid()
  paymentId!: string;
}

/** The list's paging (limit, and a cursor or an offset), and a status to filter by. */
export class PaymentListQuery extends HistoryQuery {
  @ApiPropertyOptional({ enum: PAYMENT_STATUSES })
  @IsOptional()
  @IsIn(PAYMENT_STATUSES)
  status?: PaymentStatus;
}

/** A provider notification of the mock provider; the signature covers its timestamp and the raw body. */
export class MockWebhookRequest {
  @ApiProperty({ description: "The provider's event id: the same on every retry of one notification; a second delivery of it changes nothing.", example: 'evt_1' })
  @Matches(/^[A-Za-z0-9_-]{1,100}$/, { message: 'id must be 1-100 letters, digits, underscores or dashes' })
  id!: string;

  @ApiProperty({ enum: ['order.captured', 'order.declined', 'order.refunded'] })
  @IsIn(['order.captured', 'order.declined', 'order.refunded'])
  type!: string;

  @ApiProperty({ description: 'The order id the provider gave us.' })
  @IsString()
  @MaxLength(200)
  orderId!: string;

  @ApiProperty({ format: 'uuid', description: 'Our payment id, given to the provider as its merchant reference.' })
  @IsCanonicalUuid()
  paymentId!: string;
}

export class PaymentResponse {
  @ApiProperty({ format: 'uuid' }) paymentId!: string;
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty() orderId!: string;
  @ApiProperty() packageId!: string;
  @ApiProperty({ enum: PAYMENT_STATUSES }) status!: string;
  @ApiProperty({ type: 'integer' }) tokens!: number;
  @ApiProperty({ type: 'integer', description: 'Price in minor units of currency (cents).' }) amount!: number;
  @ApiProperty({ example: 'USD' }) currency!: string;
  @ApiProperty({ example: 'mock' }) provider!: string;
  @ApiProperty({ nullable: true, type: String }) providerTransactionId!: string | null;
  @ApiProperty({ type: 'object', additionalProperties: true, description: "FAILED: `error` ('Payment timed out' on expiry); REFUNDED: `providerRefundId` and `tokensDebited`; COMPLETED after a refund that failed at the provider: `refundError`" }) metadata!: object;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
  @ApiProperty({ format: 'date-time' }) expiresAt!: string;
}

export class CreatedPaymentResponse extends PaymentResponse {
  @ApiProperty({ nullable: true, type: String }) position!: string | null;
  @ApiProperty() readModelUpToDate!: boolean;
  @ApiProperty({ nullable: true, type: String, description: "Stripe: the PaymentIntent's client_secret, for Stripe.js to confirm the payment in the browser. Null with providers that need none." })
  clientSecret!: string | null;
}

export class PaymentWriteResponse {
  @ApiProperty({ type: PaymentResponse }) payment!: PaymentResponse;
  @ApiProperty({ type: 'integer', description: 'The token balance after this write.' }) balance!: number;
  @ApiProperty({ nullable: true, type: String }) position!: string | null;
  @ApiProperty() readModelUpToDate!: boolean;
}

export class PaymentPageResponse extends PageResponse {
  @ApiProperty({ type: [PaymentResponse] }) data!: PaymentResponse[];
  @ApiProperty({ type: 'integer', description: 'Every payment of the account (of the status, when given).' }) total!: number;
}

export class TokenPackageResponse {
  @ApiProperty({ example: 'starter', description: 'The id a payment names (POST /v1/payments).' }) id!: string;
  @ApiProperty({ type: 'integer', example: 100, description: 'Tokens credited when a payment for this package is captured.' }) tokens!: number;
  @ApiProperty({ type: 'integer', example: 500, description: 'Price in minor units of currency (cents).' }) price!: number;
  @ApiProperty({ example: 'USD', description: 'ISO 4217 code.' }) currency!: string;
  @ApiProperty({ example: 'stripe', description: 'The payment provider that takes the money (PAYMENT_PROVIDER).' }) provider!: string;
  @ApiProperty({
    type: 'integer',
    nullable: true,
    example: null,
    description: 'How many days the tokens bought last from the capture, after which what is left of them expires; null: they never expire. A payment keeps the terms it was opened with.',
  })
  expiresInDays!: number | null;
  @ApiProperty({ type: 'integer', example: 100, description: 'Draw-down priority of the tokens bought: lower is spent first (admin grants default to 10, paid credit to 100).' }) priority!: number;
}

export class TokenPackageListResponse {
  @ApiProperty({ type: [TokenPackageResponse] }) data!: TokenPackageResponse[];
}
