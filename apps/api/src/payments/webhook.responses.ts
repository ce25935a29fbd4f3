import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

/** What a payment provider is answered when its notification was taken. */
export class MockWebhookResponse {
  @ApiProperty({ enum: [true] }) received!: true;
  @ApiProperty({ description: 'This event id was processed before: nothing happened.' }) duplicate!: boolean;
}

/** Why the ledger recorded nothing for a provider event, which no redelivery would change. */
export class WebhookRefusalResponse {
  @ApiProperty({
    enum: ['BALANCE_OUT_OF_RANGE', 'LOT_LIMIT_REACHED', 'PAYMENT_CAPTURED_IN_PART'],
    description:
      'BALANCE_OUT_OF_RANGE, LOT_LIMIT_REACHED: the refusal the capture call would answer (422 or 409). PAYMENT_CAPTURED_IN_PART: Stripe took money that is not the payment\'s price (an operator captured only part of the PaymentIntent, or it was changed to another amount or currency and captured outside the ledger), so nothing was credited, and an open or won dispute of it takes nothing.',
  })
  code!: string;
  @ApiProperty() message!: string;
}

export class StripeWebhookResponse extends MockWebhookResponse {
  @ApiProperty({ description: 'The event is not about a payment of ours: acknowledged, nothing happened.' }) ignored!: boolean;
  @ApiPropertyOptional({
    type: WebhookRefusalResponse,
    description:
      'Present when the ledger did not do what the event asked for, and no redelivery would change that. The event asked for an auto-capture the ledger refused before any money moved (the account would pass the largest balance, or has the most credit lots): nothing was captured or recorded, the payment stays PENDING for a capture call once the account has room, or for its expiry, which cancels the PaymentIntent. Or the PaymentIntent was captured for less or other than the payment\'s price (PAYMENT_CAPTURED_IN_PART), the auto-capture (while the payment is open) or an open or won dispute: nothing was credited for it, so nothing is captured or taken, and the payment is left to the operator (the reconciliation job reports it while it is PENDING). A lost dispute of such a PaymentIntent is not refused: the bank took back what was captured, so the payment fails.',
  })
  refused?: WebhookRefusalResponse;
  @ApiPropertyOptional({
    description:
      "Present when the event was taken and the payment still disagrees with Stripe in a way no rule settles: the ledger changed nothing, logged it, and the reconciliation job reports it while the payment is in its look-back. A refund Stripe reports failed after it succeeded (the card was closed since): the money is the merchant's again and the tokens were taken back, so an operator refunds the customer another way or credits the tokens back. Or a PaymentIntent an operator captured in part while the ledger has the payment open or credited.",
  })
  unresolved?: string;
}
