import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

// The shapes the auditor's endpoints answer with, for the OpenAPI document: what AccountAudit returns, as JSON.

export class SigningKeyResponse {
  @ApiProperty({ enum: ['Ed25519'] }) algorithm!: string;
  @ApiProperty({ description: 'SHA-256 of the SPKI DER, hex.' }) keyId!: string;
  @ApiProperty({ description: 'The public key, PEM (SPKI).' }) publicKeyPem!: string;
}

class AuditEventResponse {
  @ApiProperty({ description: 'The stream revision, as a decimal string.', example: '0' }) revision!: string;
  @ApiProperty({ description: '$all position, "commit/prepare".' }) position!: string;
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'TokensPurchased' }) type!: string;
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'The event as appended; the domain time is data.occurredAt.' }) data!: Record<string, unknown>;
  @ApiProperty({ type: 'object', additionalProperties: true, description: 'Actor, request, causation and correlation ids, Idempotency-Key, hash.' }) metadata!: Record<string, unknown>;
  @ApiProperty({ format: 'date-time', description: 'When the store recorded it.' }) time!: string;
}

export class AuditEventPageResponse {
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty({ type: [AuditEventResponse] }) data!: AuditEventResponse[];
  @ApiProperty({ description: "The stream's last revision as the store records it." }) streamRevision!: string;
  @ApiProperty({ nullable: true, type: String, description: 'Where the next page starts; null after the last page.' }) nextFromRevision!: string | null;
}

class AuditHoldResponse {
  @ApiProperty({ format: 'uuid' }) holdId!: string;
  @ApiProperty({ type: 'integer' }) amount!: number;
  @ApiProperty({ format: 'date-time' }) expiresAt!: string;
}

class AuditLotResponse {
  @ApiProperty() lotId!: string;
  @ApiProperty() source!: string;
  @ApiProperty({ type: 'integer' }) remaining!: number;
  @ApiProperty({ type: 'integer' }) reserved!: number;
  @ApiProperty({ type: 'integer' }) priority!: number;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) expiresAt!: string | null;
}

class AuditExpiredLotResponse {
  @ApiProperty() lotId!: string;
  @ApiProperty({ type: 'integer', description: 'The remainder that stopped being spendable.' }) amount!: number;
  @ApiProperty({ format: 'date-time' }) expiresAt!: string;
}

class AuditDisputeResponse {
  @ApiProperty() disputeId!: string;
  @ApiProperty({ format: 'uuid' }) paymentId!: string;
  @ApiProperty() status!: string;
}

class AuditHeldBackRefundResponse {
  @ApiProperty({ format: 'uuid' }) paymentId!: string;
  @ApiProperty({ type: 'integer', description: "Tokens an expired hold gave back to the refunded purchase's lot, which the refund takes." }) amount!: number;
}

class AuditExpiredUnrecordedResponse {
  @ApiProperty({ type: [AuditHoldResponse] }) holds!: AuditHoldResponse[];
  @ApiProperty({ type: [AuditExpiredLotResponse] }) lots!: AuditExpiredLotResponse[];
  @ApiPropertyOptional({
    type: [AuditHeldBackRefundResponse],
    description: 'Only when some were: what refunds made at the provider while those holds held part of the purchase take as the holds expire (ADR 0020).',
  })
  refunds?: AuditHeldBackRefundResponse[];
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    description: 'Only when some: what the tokens those holds give back pay off of a shortfall of lost payment disputes (ADR 0024), as the expiry decision records it (ShortfallCovered).',
  })
  shortfallCovered?: number;
}

export class AuditBalanceResponse {
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty({ type: 'integer' }) balance!: number;
  @ApiProperty({ type: 'integer' }) held!: number;
  @ApiProperty({ type: 'integer' }) available!: number;
  @ApiProperty({ type: [AuditHoldResponse] }) holds!: AuditHoldResponse[];
  @ApiProperty({ type: [AuditLotResponse] }) lots!: AuditLotResponse[];
  @ApiProperty({ description: 'The last revision applied; -1 before the first event.', example: '3' }) revision!: string;
  @ApiPropertyOptional({ type: 'integer', description: 'Only for an account with payment disputes: the tokens lost disputes took back that it did not hold (ADR 0024).' }) shortfall?: number;
  @ApiPropertyOptional({ type: [AuditDisputeResponse], description: 'Only for an account with payment disputes: every dispute.' }) disputes?: AuditDisputeResponse[];
  @ApiPropertyOptional({
    type: AuditExpiredUnrecordedResponse,
    description:
      'Only as of a time, when some were due: holds and lot remainders past their expiresAt at that time whose expiry the stream records only later (the expiry job or the next command writes it). The totals count them expired, as every decision from that instant does.',
  })
  expiredUnrecorded?: AuditExpiredUnrecordedResponse;
}

class ChainReportResponse {
  @ApiProperty() ok!: boolean;
  @ApiProperty() reason!: string;
  @ApiPropertyOptional({ type: 'integer', description: 'When ok.' }) eventCount?: number;
  @ApiPropertyOptional({ nullable: true, type: String, description: 'When ok.' }) headHash?: string | null;
  @ApiPropertyOptional({ type: 'integer', description: 'When ok: events written before the chain, not sealed.' }) unsealedPrefix?: number;
  @ApiPropertyOptional({ description: 'When not ok.' }) firstBadRevision?: string;
}

class AccountDifferenceResponse {
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty() projection!: string;
  @ApiProperty({ enum: ['missing', 'unexpected', 'balance', 'payment'] }) kind!: string;
  @ApiProperty() detail!: string;
}

class ReadModelReportResponse {
  @ApiProperty({ type: [AccountDifferenceResponse] }) differences!: AccountDifferenceResponse[];
  @ApiProperty({ nullable: true, type: String, description: 'Set when the replay itself failed; nothing was compared then.' }) replayError!: string | null;
}

export class AuditVerifyResponse {
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty() ok!: boolean;
  @ApiProperty() streamRevision!: string;
  @ApiProperty({ type: ChainReportResponse }) chain!: ChainReportResponse;
  @ApiProperty({ type: ReadModelReportResponse }) readModels!: ReadModelReportResponse;
}
