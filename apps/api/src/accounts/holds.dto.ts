import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsMetadata, MetadataResponse } from '../http/metadata.js';
import { type Metadata, OPENING_LOT_ID, DESCRIPTION_LENGTH_MAX, HOLD_TTL_SECONDS_MAX, HOLD_TTL_SECONDS_MIN, LOT_PRIORITY_MAX, LOT_PRIORITY_MIN, REASON_LENGTH_MAX, TOKEN_AMOUNT_MAX, TOKEN_AMOUNT_MIN } from '@app/ledger';
import { HOLD_STATUSES, LOT_STATUSES, type HoldStatus, type LotStatus } from '@app/token-accounts';
import { Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Max, Min, ValidateIf } from 'class-validator';
import { IsNotBlank, IsStorableText, MaxCharacters } from '../http/storable-text.js';
import { IsCanonicalUuid } from '../http/canonical-uuid.js';
import { IsDateTime } from '../http/date-time.js';
import { TransactionResponse, UserIdParams } from './accounts.dto.js';
import { PageQuery, PageResponse } from '../http/page-query.js';

export class HoldParams extends UserIdParams {
  @ApiProperty({ format: 'uuid' })
  @IsCanonicalUuid()
  holdId!: string;
}

export class HoldRequest {
  @ApiProperty({ minimum: TOKEN_AMOUNT_MIN, maximum: TOKEN_AMOUNT_MAX, type: 'integer', description: 'The estimate to set aside.', example: 500 })
  @IsInt()
  @Min(TOKEN_AMOUNT_MIN)
  @Max(TOKEN_AMOUNT_MAX)
  amount!: number;

  @ApiPropertyOptional({ type: String, maxLength: DESCRIPTION_LENGTH_MAX, nullable: true, example: 'streaming reply' })
  @IsOptional()
  @IsString()
  @MaxCharacters(DESCRIPTION_LENGTH_MAX)
  @IsStorableText()
  description?: string | null;

  // Two limits: the service's setting HOLD_TTL_MAX, checked by the ledger, and the cap that setting may
  // reach, checked here. `maximum` states the cap, the same in every deployment; the description both.
  @ApiPropertyOptional({
    type: 'integer',
    nullable: true,
    minimum: HOLD_TTL_SECONDS_MIN,
    maximum: HOLD_TTL_SECONDS_MAX,
    description:
      'Seconds the hold lives; when absent or null, the setting HOLD_TTL_DEFAULT (900 by default, 15 minutes). ' +
      'At most the setting HOLD_TTL_MAX (86400 by default, 24 hours): more is 400 HOLD_TTL_OUT_OF_RANGE with `max`, the setting. ' +
      `\`maximum\` is the most HOLD_TTL_MAX may be set to (${HOLD_TTL_SECONDS_MAX}, 30 days): more is 400 VALIDATION_FAILED.`,
  })
  @IsOptional()
  @IsInt()
  @Min(HOLD_TTL_SECONDS_MIN)
  @Max(HOLD_TTL_SECONDS_MAX)
  expiresInSeconds?: number | null;

  @IsMetadata('Your own data on this hold, kept with it; its settle takes it unless given its own.')
  metadata?: Metadata | null;
}

export class SettleRequest {
  @ApiProperty({ minimum: TOKEN_AMOUNT_MIN, maximum: TOKEN_AMOUNT_MAX, type: 'integer', description: 'The actual cost: at most the held amount; the rest is released.', example: 320 })
  @IsInt()
  @Min(TOKEN_AMOUNT_MIN)
  @Max(TOKEN_AMOUNT_MAX)
  amount!: number;

  @ApiPropertyOptional({ type: String, maxLength: DESCRIPTION_LENGTH_MAX, nullable: true, description: "The usage row's description; the hold's when absent." })
  @IsOptional()
  @IsString()
  @MaxCharacters(DESCRIPTION_LENGTH_MAX)
  @IsStorableText()
  description?: string | null;

  @IsMetadata("The usage row's metadata; the hold's when absent.")
  metadata?: Metadata | null;
}

export class HoldsQuery extends PageQuery {
  @ApiPropertyOptional({ enum: HOLD_STATUSES, description: 'Only holds in this state as of now (a hold past its expiresAt is expired, whether or not its expiry is recorded yet); all when absent.' })
  @IsOptional()
  @IsIn(HOLD_STATUSES)
  status?: HoldStatus;
}

export class LotsQuery extends PageQuery {
  @ApiPropertyOptional({ enum: LOT_STATUSES, description: 'Only lots in this state as of now, as each lot\'s status says (a lot past its expiresAt is expired, whether or not its expiry is recorded yet, except a purchase\'s lot while its refund is in progress, shown as recorded); all when absent.' })
  @IsOptional()
  @IsIn(LOT_STATUSES)
  status?: LotStatus;
}

export class GrantParams extends UserIdParams {
  @ApiProperty({ description: `The lot of the grant: its transaction id, a UUID in either case. \`${OPENING_LOT_ID}\` names the lot of credits written before lots, never a grant.` })
  // A lot id is a UUID or the opening lot's; the ledger, not the validation, says which lot is no grant.
  @ValidateIf(({ lotId }: GrantParams) => lotId !== OPENING_LOT_ID)
  @IsCanonicalUuid()
  lotId!: string;
}

const trimmed = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value);

export class GrantRequest {
  @ApiProperty({ minimum: TOKEN_AMOUNT_MIN, maximum: TOKEN_AMOUNT_MAX, type: 'integer', example: 200 })
  @IsInt()
  @Min(TOKEN_AMOUNT_MIN)
  @Max(TOKEN_AMOUNT_MAX)
  amount!: number;

  @ApiProperty({ minLength: 1, maxLength: REASON_LENGTH_MAX, example: 'Welcome bonus' })
  @Transform(trimmed)
  @IsString()
  @IsNotBlank()
  @MaxCharacters(REASON_LENGTH_MAX)
  @IsStorableText()
  reason!: string;

  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true, description: 'When the remainder stops being spendable, with an offset (Z or ±hh:mm); in the future. Absent or null: never.' })
  @IsOptional()
  @IsDateTime()
  expiresAt?: string | null;

  @ApiPropertyOptional({ type: 'integer', nullable: true, minimum: LOT_PRIORITY_MIN, maximum: LOT_PRIORITY_MAX, description: 'Lower is spent first; absent or null, 10 (before paid credit at 100).' })
  @IsOptional()
  @IsInt()
  @Min(LOT_PRIORITY_MIN)
  @Max(LOT_PRIORITY_MAX)
  priority?: number;
}

export class VoidGrantRequest {
  @ApiProperty({ minLength: 1, maxLength: REASON_LENGTH_MAX, example: 'Granted to the wrong account' })
  @Transform(trimmed)
  @IsString()
  @IsNotBlank()
  @MaxCharacters(REASON_LENGTH_MAX)
  @IsStorableText()
  reason!: string;
}

class DrawResponse {
  @ApiProperty() lotId!: string;
  @ApiProperty({ type: 'integer' }) amount!: number;
}

class TotalsResponse {
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty({ type: 'integer' }) balance!: number;
  @ApiProperty({ type: 'integer', description: 'Tokens active holds set aside.' }) held!: number;
  @ApiProperty({ type: 'integer', description: 'What usage and new holds may take: balance - held - reservedForRefunds (tokens of refunds in progress), as on the balance.' }) available!: number;
  @ApiProperty({ nullable: true, type: String }) position!: string | null;
  @ApiProperty() readModelUpToDate!: boolean;
}

export class HoldResponse extends TotalsResponse {
  @ApiProperty({ format: 'uuid' }) holdId!: string;
  @ApiProperty({ type: 'integer' }) amount!: number;
  @ApiProperty({ nullable: true, type: String }) description!: string | null;
  @ApiProperty({ format: 'date-time' }) expiresAt!: string;
  @MetadataResponse("The caller's metadata of the hold; null when none.") metadata!: Metadata | null;
}

export class SettleResponse extends TotalsResponse {
  @ApiProperty({ format: 'uuid' }) holdId!: string;
  @ApiProperty({ type: 'integer' }) settledAmount!: number;
  @ApiProperty({ type: 'integer' }) releasedAmount!: number;
  @ApiProperty({ type: TransactionResponse, description: 'The usage row, linked to the hold, with its draws.' }) transaction!: TransactionResponse;
}

export class ReleaseResponse extends TotalsResponse {
  @ApiProperty({ format: 'uuid' }) holdId!: string;
  @ApiProperty({ type: 'integer' }) releasedAmount!: number;
}

export class LotWriteResponse extends TotalsResponse {
  @ApiProperty() lotId!: string;
  @ApiProperty({ type: TransactionResponse }) transaction!: TransactionResponse;
}

export class HoldViewResponse {
  @ApiProperty({ format: 'uuid' }) holdId!: string;
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty({ type: 'integer' }) amount!: number;
  @ApiProperty({ nullable: true, type: String }) description!: string | null;
  @ApiProperty({ enum: HOLD_STATUSES, description: 'As of now: a hold past its expiresAt is expired (its endedAt the expiresAt), whether or not the expiry job has recorded it yet.' }) status!: string;
  @ApiProperty({ format: 'date-time' }) expiresAt!: string;
  @ApiProperty({ type: [DrawResponse], description: 'The lots whose tokens it set aside.' }) draws!: DrawResponse[];
  @ApiProperty({ nullable: true, type: 'integer' }) settledAmount!: number | null;
  @ApiProperty({ nullable: true, type: String, format: 'uuid', description: 'The usage transaction of its settle.' }) transactionId!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({
    nullable: true,
    type: String,
    format: 'date-time',
    description: 'When the hold ended: its settle or release; for an expired hold its expiresAt, when it stopped counting as held, however late the expiry was recorded. Null while active.',
  })
  endedAt!: string | null;
  @MetadataResponse("The caller's metadata of the hold; null when none.") metadata!: Metadata | null;
}

export class HoldPageResponse extends PageResponse {
  @ApiProperty({ type: [HoldViewResponse] }) data!: HoldViewResponse[];
}

class LotViewResponse {
  @ApiProperty() lotId!: string;
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty({ enum: ['purchase', 'grant', 'adjustment', 'opening'] }) source!: string;
  @ApiProperty({ nullable: true, type: String, format: 'uuid' }) paymentId!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'uuid' }) transactionId!: string | null;
  @ApiProperty({ type: 'integer' }) original!: number;
  @ApiProperty({ type: 'integer', description: 'What it has left as of now; past its expiresAt, or held back for its refund, only what active holds still hold of it. A purchase\'s lot while its refund is in progress is shown as recorded (the refund reserved its tokens: none expire).' }) remaining!: number;
  @ApiProperty({ type: 'integer' }) priority!: number;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) expiresAt!: string | null;
  @ApiProperty({
    enum: LOT_STATUSES,
    description:
      'As of now: a lot past its expiresAt is expired, whether or not the expiry job has recorded it yet, except a purchase\'s lot while its refund is in progress, shown as recorded. refunded: its purchase was refunded; what it still has is held by holds and goes to the refund as they end. ' +
      'A refunded purchase whose dispute was lost (the refund was taken from other credit) leaves its lot active with what it has left.',
  })
  status!: string;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
}

export class LotPageResponse extends PageResponse {
  @ApiProperty({ type: [LotViewResponse], description: "In draw-down order: priority, earliest expiry (none last), then the order the lots were credited in the account's stream." }) data!: LotViewResponse[];
}
