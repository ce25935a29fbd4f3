import { ApiProperty } from '@nestjs/swagger';

// The shapes the operators' endpoints answer with, for the OpenAPI document: what ProjectionsAdmin returns, as JSON.

class ProjectionFailureResponse {
  @ApiProperty({ description: 'The failing event\'s position (commit/prepare), or `unknown` when the batch failed before any event.' }) position!: string;
  @ApiProperty() eventType!: string;
  @ApiProperty() error!: string;
  @ApiProperty({ type: 'integer', description: 'Failures in a row at this position.' }) attempts!: number;
  @ApiProperty({ format: 'date-time' }) failedAt!: string;
  @ApiProperty({ format: 'date-time' }) firstFailedAt!: string;
}

class ProjectionRebuildSummary {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() phase!: string;
  @ApiProperty({ description: 'No process runs it any more (it died).' }) interrupted!: boolean;
}

class ProjectionStatusResponse {
  @ApiProperty({ example: 'token_accounts' }) name!: string;
  @ApiProperty({ enum: ['running', 'catching_up', 'rebuilding', 'failed', 'standby', 'stopped'] }) state!: string;
  @ApiProperty({ nullable: true, type: String, description: 'The checkpoint (commit/prepare); null before the first batch.' }) checkpoint!: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'The newest event a reader can see; null for an empty store.' }) head!: string | null;
  @ApiProperty({ nullable: true, type: 'integer', description: 'Events after the checkpoint; null when the event store cannot count them.' }) lagEvents!: number | null;
  @ApiProperty({ type: 'number', description: 'Age of the oldest event not yet applied; 0 when caught up.' }) lagSeconds!: number;
  @ApiProperty({ type: ProjectionFailureResponse, nullable: true }) failure!: ProjectionFailureResponse | null;
  @ApiProperty({ type: ProjectionRebuildSummary, nullable: true }) rebuild!: ProjectionRebuildSummary | null;
}

export class ProjectionStatusListResponse {
  @ApiProperty({ type: [ProjectionStatusResponse] }) data!: ProjectionStatusResponse[];
}

export class RebuildResponse {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'token_accounts' }) projection!: string;
  @ApiProperty({ enum: ['loading', 'indexing', 'catching_up', 'swapping', 'completed', 'failed'] }) phase!: string;
  @ApiProperty({ type: 'integer' }) eventsDone!: number;
  @ApiProperty({ type: 'integer' }) eventsTotal!: number;
  @ApiProperty({ type: 'number' }) eventsPerSecond!: number;
  @ApiProperty({ nullable: true, type: 'number', description: 'Seconds until done at the rate so far; null when finished, interrupted or before any progress.' }) etaSeconds!: number | null;
  @ApiProperty({ nullable: true, type: String, description: 'How far the shadow tables have got in $all.' }) position!: string | null;
  @ApiProperty({ format: 'date-time' }) startedAt!: string;
  @ApiProperty({ nullable: true, type: String, format: 'date-time' }) finishedAt!: string | null;
  @ApiProperty({ nullable: true, type: String }) error!: string | null;
  @ApiProperty({ description: 'Unfinished, and no process runs it any more (it died); the next rebuild of the projection marks it failed.' }) interrupted!: boolean;
}

class AccountRecomputationResponse {
  @ApiProperty({ example: 'token_accounts' }) name!: string;
  @ApiProperty({ type: 'integer' }) eventsApplied!: number;
  @ApiProperty({ nullable: true, type: String, description: 'The checkpoint the rows were recomputed up to.' }) checkpoint!: string | null;
}

export class AccountRebuildResponse {
  @ApiProperty({ format: 'uuid' }) userId!: string;
  @ApiProperty({ type: [AccountRecomputationResponse] }) projections!: AccountRecomputationResponse[];
}
