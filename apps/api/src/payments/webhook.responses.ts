import { ApiProperty } from '@nestjs/swagger';

/** What a payment provider is answered when its notification was taken. */
export class MockWebhookResponse {
  @ApiProperty({ enum: [true] }) received!: true;
  @ApiProperty({ description: 'This event id was processed before: nothing happened.' }) duplicate!: boolean;
}

export class StripeWebhookResponse extends MockWebhookResponse {
  @ApiProperty({ description: 'The event is not about a payment of ours: acknowledged, nothing happened.' }) ignored!: boolean;
}
