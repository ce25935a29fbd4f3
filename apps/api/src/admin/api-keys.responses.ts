import { ApiProperty } from '@nestjs/swagger';
import { API_KEY_ROLES, API_KEY_SCOPES } from '@app/auth';

/** An API key's record, never its secret. */
export class ApiKeyResponse {
  @ApiProperty({ description: 'The 24 hex characters after tlk_.', example: '0123456789abcdef01234567' }) id!: string;
  @ApiProperty({ example: 'billing-backend' }) name!: string;
  @ApiProperty({ enum: API_KEY_ROLES }) role!: string;
  @ApiProperty({ enum: API_KEY_SCOPES, isArray: true }) scopes!: string[];
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) expiresAt!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) revokedAt!: string | null;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) lastUsedAt!: string | null;
  @ApiProperty({ description: 'The key whose Idempotency-Keys this one uses: its own id, or the first of the keys it replaced (`replaces`).', example: '0123456789abcdef01234567' })
  idempotencyScope!: string;
  @ApiProperty({
    nullable: true,
    type: String,
    description: 'Who created it: `jwt:<sub>`, `api_key:<key id>` (a key may create keys: after a leak, revoke the keys the leaked one created too) or `cli`; null for a key made before this was recorded, or by an older version during a rolling deploy.',
    example: 'api_key:0123456789abcdef01234567',
  })
  createdBy!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'Who revoked it, named as `createdBy`; null while it is not revoked, or for a key revoked before this was recorded or by an older version.', example: null })
  revokedBy!: string | null;
}

/** A new key: the secret is in this response only. */
export class CreatedApiKeyResponse extends ApiKeyResponse {
  @ApiProperty({ description: 'The secret to send as X-API-Key: shown once, never stored.', example: 'tlk_0123456789abcdef01234567_…' }) key!: string;
}

export class ApiKeyListResponse {
  @ApiProperty({ type: [ApiKeyResponse] }) data!: ApiKeyResponse[];
}
