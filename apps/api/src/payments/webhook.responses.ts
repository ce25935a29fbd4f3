import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

/** What a payment provider is answered when its notification was taken. */
export class MockWebhookResponse {
  @ApiProperty({ enum: [true] }) received!: true;
  @ApiProperty({ description: 'This event id was processed before: nothing happened.' }) duplicate!: boolean;
}

/** The ledger's refusal of an auto-capture, made before any money moved. */
export class CaptureRefusalResponse {
  @ApiProperty({ enum: ['BALANCE_OUT_OF_RANGE', 'LOT_LIMIT_REACHED'], description: 'The refusal the capture call would answer (422 or 409).' }) code!: string;
  @ApiProperty() message!: string;
}

export class StripeWebhookResponse extends MockWebhookResponse {
  @ApiProperty({ description: 'The event is not about a payment of ours: acknowledged, nothing happened.' }) ignored!: boolean;
  @ApiPropertyOptional({
    type: CaptureRefusalResponse,
    description:
      'Present when the event asked for an auto-capture the ledger refused before any money moved (the account would pass the largest balance, or has the most credit lots): nothing was captured or recorded, the payment stays PENDING for a capture call once the account has room, or for its expiry, which cancels the PaymentIntent.',
  })
  refused?: CaptureRefusalResponse;
}
