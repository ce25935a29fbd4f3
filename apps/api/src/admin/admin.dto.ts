import { ApiProperty } from '@nestjs/swagger';
import { REASON_LENGTH_MAX, TOKEN_AMOUNT_MAX } from '@app/ledger';
import { Transform } from 'class-transformer';
import { IsInt, IsString, Matches, Max, Min, NotEquals } from 'class-validator';
import { IsNotBlank, IsStorableText, MaxCharacters } from '../http/storable-text.js';
import { IsCanonicalUuid } from '../http/canonical-uuid.js';

export class ProjectionNameParams {
  @ApiProperty({ example: 'token_accounts' })
  @Matches(/^[a-z][a-z0-9_]{0,62}$/, { message: 'name must be a projection name: lower-case letters, digits and underscores' })
  name!: string;
}

export class RebuildParams extends ProjectionNameParams {
  @ApiProperty({ format: 'uuid' })
  @IsCanonicalUuid()
  id!: string;
}

/** An admin's correction: a signed token amount and the reason it is recorded with. */
export class AdjustmentRequest {
  @ApiProperty({ type: 'integer', minimum: -TOKEN_AMOUNT_MAX, maximum: TOKEN_AMOUNT_MAX, description: 'Signed and never 0: positive credits, negative debits.', example: -50 })
  @IsInt()
  @NotEquals(0, { message: 'amount must not be 0' })
  @Min(-TOKEN_AMOUNT_MAX)
  @Max(TOKEN_AMOUNT_MAX)
  amount!: number;

  @ApiProperty({ minLength: 1, maxLength: REASON_LENGTH_MAX, description: 'Why the balance is corrected; surrounding white space is trimmed.', example: 'Chargeback on order 1042' })
  // Trimmed first, so a reason of only white space is empty and refused.
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value))
  @IsString()
  @IsNotBlank()
  @MaxCharacters(REASON_LENGTH_MAX)
  @IsStorableText()
  reason!: string;
}
