import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { API_KEY_NAME_FORBIDDEN, API_KEY_ROLES, API_KEY_SCOPES, type ApiKeyRole, type ApiKeyScope } from '@app/auth';
import { isBlank } from '@app/ledger';
import { ArrayMaxSize, ArrayMinSize, ArrayUnique, IsArray, IsIn, IsOptional, IsString, Matches, ValidateBy } from 'class-validator';
import { IsDateTime } from '../http/date-time.js';
import { IsStorableText, MaxCharacters } from '../http/storable-text.js';

/**
 * A name that shows something (`isBlank`, as for reasons): empty, spaces (trimmed to empty) and
 * invisible characters alone (U+200B, U+3164, which `trim` leaves) are refused alike, under the
 * rule name `minLength` an empty name always had.
 */
function IsNotBlankName(): PropertyDecorator {
  return ValidateBy({
    name: 'minLength',
    constraints: [1],
    validator: { validate: (value: unknown) => typeof value === 'string' && !isBlank(value), defaultMessage: (validation) => `${validation?.property ?? 'name'} must not be empty or blank` },
  });
}

export class ApiKeyIdParams {
  @ApiProperty({ description: 'The 24 hex characters after tlk_.', example: '0123456789abcdef01234567' })
  @Matches(/^[0-9a-f]{24}$/, { message: 'id must be an API key id: 24 lower-case hex characters' })
  id!: string;
}

/** A new API key: its secret is in the response only. */
export class CreateApiKeyRequest {
  @ApiProperty({ minLength: 1, maxLength: 100, description: 'Unique among keys not revoked (an expired key keeps its name until it is revoked), e.g. the backend that uses it; surrounding white space is trimmed, and control, line-separator and direction characters are refused, as is a name of invisible characters alone.', example: 'billing-backend' })
  // Trimmed first, so a name of only white space is empty and refused, and " billing" is "billing".
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value))
  @IsString()
  @IsNotBlankName()
  @MaxCharacters(100)
  @IsStorableText()
  // An operator reads the name in lists and logs: no line breaks, tabs, other controls or direction overrides in it.
  @Matches(new RegExp(`^[^${API_KEY_NAME_FORBIDDEN.source.slice(1, -1)}]*$`, 'u'), { message: 'name must not contain control, line-separator or direction characters' })
  name!: string;

  @ApiProperty({ enum: API_KEY_ROLES })
  @IsIn(API_KEY_ROLES)
  role!: ApiKeyRole;

  @ApiPropertyOptional({ enum: API_KEY_SCOPES, isArray: true, description: 'Defaults to every scope of the role; each must be one the role can use.' })
  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(API_KEY_SCOPES.length)
  @ArrayUnique()
  @IsIn(API_KEY_SCOPES, { each: true })
  scopes?: ApiKeyScope[];

  @ApiPropertyOptional({ type: String, format: 'date-time', nullable: true, description: 'When the key stops working, with an offset (Z or ±hh:mm); in the future. Absent or null: never.' })
  @IsOptional()
  @IsDateTime()
  expiresAt?: string | null;

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    pattern: '^[0-9a-f]{24}$',
    description: 'The id of a key of the same role this one replaces (a rotation): both share Idempotency-Keys, so a retry sent with the new key of a request first sent with the old one is answered, not done again. Revoke the old key once nothing retries with it.',
    example: '0123456789abcdef01234567',
  })
  @IsOptional()
  @Matches(/^[0-9a-f]{24}$/, { message: 'replaces must be an API key id: 24 lower-case hex characters' })
  replaces?: string | null;
}
