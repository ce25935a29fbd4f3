import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { DESCRIPTION_LENGTH_MAX, TOKEN_AMOUNT_MAX, TOKEN_AMOUNT_MIN, type Metadata } from '@app/ledger';
import { IsMetadata, MetadataResponse } from '../http/metadata.js';
import { IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { PageQuery, PageResponse } from '../http/page-query.js';
import { IsStorableText, MaxCharacters } from '../http/storable-text.js';
import { IsCanonicalUuid } from '../http/canonical-uuid.js';

export class UserIdParams {
  @ApiProperty({ format: 'uuid', example: '8d0e0a57-2a4f-4f0e-9d3c-6a1f0b7f2c11' })
  @IsCanonicalUuid()
  userId!: string;
}

/** The amount of a ledger write, as `@ApiProperty` shows it, and its rules. */
function IsTokenAmount(description?: string): PropertyDecorator {
  return applyDecorators(ApiProperty({ minimum: TOKEN_AMOUNT_MIN, maximum: TOKEN_AMOUNT_MAX, type: 'integer', example: 30, ...(description === undefined ? {} : { description }) }), IsInt(), Min(TOKEN_AMOUNT_MIN), Max(TOKEN_AMOUNT_MAX));
}

/** The optional description of a ledger write, shown in history, and its rules. */
function IsWriteDescription(): PropertyDecorator {
  return applyDecorators(ApiPropertyOptional({ type: String, maxLength: DESCRIPTION_LENGTH_MAX, nullable: true, example: 'chat completion' }), IsOptional(), IsString(), MaxCharacters(DESCRIPTION_LENGTH_MAX), IsStorableText());
}

/** What every ledger write carries: a token amount and an optional description. */
class TokenAmountRequest {
  @IsTokenAmount()
  amount!: number;

  @IsWriteDescription()
  description?: string | null;
}

export class PurchaseRequest {
  @IsTokenAmount('The tokens to credit. The deployment caps one purchase lower, at PURCHASE_TOKENS_MAX (1,000,000 unless set): above it, 400 AMOUNT_OUT_OF_RANGE with that `max`.')
  amount!: number;

  @IsWriteDescription()
  description?: string | null;

  @ApiProperty({ format: 'uuid', description: 'The payment that paid for the tokens; each payment is credited once.', example: '0c9d4f2e-5b1a-4e7c-8f3d-2a6b9c1e7d40' })
  @IsCanonicalUuid()
  paymentId!: string;
}

export class UsageRequest extends TokenAmountRequest {
  @IsMetadata('Your own data on this debit (a model name, a request id), stored in its event and shown in history and the audit API.')
  metadata?: Metadata | null;
}

/** The history's paging: limit, and a cursor or an offset. */
export class HistoryQuery extends PageQuery {}

export class TransactionResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty({ type: 'integer', description: 'Signed: negative for usage and refunds.' }) amount!: number;
  @ApiProperty({ enum: ['purchase', 'usage', 'refund', 'adjustment', 'expiry', 'chargeback'] }) transactionType!: string;
  @ApiProperty({ nullable: true, type: String }) description!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'uuid' }) paymentId!: string | null;
  @ApiProperty({ type: 'integer' }) balanceAfter!: number;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ nullable: true, type: String, format: 'uuid', description: 'The hold a usage settled.' }) holdId!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'The lot a credit created.' }) lotId!: string | null;
  @ApiProperty({ nullable: true, type: 'array', items: { type: 'object', required: ['lotId', 'amount'], properties: { lotId: { type: 'string' }, amount: { type: 'integer' } } }, description: 'The lots a debit drew from.' })
  draws!: { lotId: string; amount: number }[] | null;
  @MetadataResponse("The caller's metadata of a usage (its settle's, else its hold's); null otherwise.") metadata!: Metadata | null;
}

export class LedgerWriteResponse {
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty({ type: 'integer' }) balance!: number;
  @ApiProperty({ type: TransactionResponse }) transaction!: TransactionResponse;
  @ApiProperty({ nullable: true, type: String, description: 'Position of the write in the event log ($all), as commit/prepare.' }) position!: string | null;
  @ApiProperty({ description: 'True when balance and history reads already include this write.' }) readModelUpToDate!: boolean;
}

class NextExpiryResponse {
  @ApiProperty({ format: 'date-time', description: 'When the lot stops being spendable: always in the future, as the balance is read as of now.' })
  expiresAt!: string;
  @ApiProperty({ type: 'integer', description: 'What the lot has left. The part a hold holds at that instant stays with the hold: settled, it is spent; given back, it expires then.' }) amount!: number;
  @ApiProperty() lotId!: string;
}

export class BalanceResponse {
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty({ type: 'integer' }) balance!: number;
  @ApiProperty({ type: 'integer', description: 'Tokens active holds set aside. Every total here is as of now: a hold or a lot past its expiry counts as expired at once, before the expiry job records it.' }) held!: number;
  @ApiProperty({ type: 'integer', description: 'What usage and new holds can take now: balance - held - reservedForRefunds.' }) available!: number;
  @ApiProperty({ type: NextExpiryResponse, nullable: true, description: 'The next lot remainder due to expire.' }) nextExpiry!: NextExpiryResponse | null;
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    description: 'Present only while a refund is in progress (its payment REFUND_PENDING): the refunded purchase tokens, still in the balance, that nothing may spend.',
  })
  reservedForRefunds?: number;
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    description: 'Present only while lost payment disputes left the account owing tokens: usage and new holds are refused (409 ACCOUNT_IN_SHORTFALL) until credits cover it.',
  })
  shortfall?: number;
}

export class TransactionPageResponse extends PageResponse {
  @ApiProperty({ type: [TransactionResponse] }) data!: TransactionResponse[];
  @ApiProperty({ type: 'integer', description: 'Every transaction of the account.' }) total!: number;
}
