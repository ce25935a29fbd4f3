import { ApiPropertyOptional } from '@nestjs/swagger';
import { AUDIT_PAGE_SIZE_MAX } from '@app/operations';
import type { AsOf } from '@app/audit';
import { QueryInteger } from '../http/query-integer.js';
import { IsIn, IsInt, IsOptional, Max, Min } from 'class-validator';
import { RequestValidationError } from '../http/request-validation.error.js';
import { IsDateTime } from '../http/date-time.js';

export const AUDIT_PAGE_SIZE_DEFAULT = 100;

export class AuditEventsQuery {
  @ApiPropertyOptional({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, type: 'integer', description: 'First revision of the page. Not with format=ndjson.' })
  @IsOptional()
  @QueryInteger()
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  fromRevision?: number;

  @ApiPropertyOptional({ minimum: 1, maximum: AUDIT_PAGE_SIZE_MAX, default: AUDIT_PAGE_SIZE_DEFAULT, type: 'integer', description: 'Events per page. Not with format=ndjson.' })
  @IsOptional()
  @QueryInteger()
  @IsInt()
  @Min(1)
  @Max(AUDIT_PAGE_SIZE_MAX)
  limit?: number;

  @ApiPropertyOptional({ enum: ['json', 'ndjson'], default: 'json', description: '`ndjson`: the whole stream, one event per line, streamed; fromRevision and limit are refused with it.' })
  @IsOptional()
  @IsIn(['json', 'ndjson'])
  format: 'json' | 'ndjson' = 'json';

  /**
   * The page asked for, or null for the whole stream (format=ndjson). NDJSON takes no paging
   * parameter: one given is refused, naming it, rather than ignored with the whole stream sent.
   */
  page(): { readonly fromRevision: bigint; readonly limit: number } | null {
    if (this.format === 'json') return { fromRevision: BigInt(this.fromRevision ?? 0), limit: this.limit ?? AUDIT_PAGE_SIZE_DEFAULT };
    const given = (['fromRevision', 'limit'] as const).filter((field) => this[field] !== undefined);
    if (given.length > 0) {
      throw new RequestValidationError(given.map((field) => ({ field, rule: 'notWithNdjson', message: `${field} does not apply to format=ndjson, which streams the whole stream` })));
    }
    return null;
  }
}

export class AuditBalanceQuery {
  @ApiPropertyOptional({ format: 'date-time', description: "Replay the stream up to its first event that occurred (data.occurredAt) after this time, with an offset (Z or ±hh:mm; a + percent-encoded as %2B, as a bare + in a query string reads as a space), not later than the service's time (else 400, rule notAfterNow). Give this or revision." })
  @IsOptional()
  @IsDateTime()
  at?: string;

  @ApiPropertyOptional({
    minimum: 0,
    maximum: Number.MAX_SAFE_INTEGER,
    type: 'integer',
    description: "Replay up to and including this revision, at most the stream's last (else 400 REVISION_OUT_OF_RANGE; above the schema's maximum, 400 VALIDATION_FAILED, rule max). Give this or at.",
  })
  @IsOptional()
  @QueryInteger()
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  revision?: number;

  /** The point to replay to; exactly one of `at` and `revision` names it, and a time is not later than `now` (the service's clock). */
  asOf(now: Date): AsOf {
    if (this.at !== undefined && this.revision === undefined) {
      const at = new Date(this.at);
      // Later than now, the answer would be a forecast (holds still active may be settled before then), not a state the ledger passed through.
      if (at.getTime() > now.getTime()) throw new RequestValidationError([{ field: 'at', rule: 'notAfterNow', message: `at must not be later than the service's time (${now.toISOString()})` }]);
      return { at };
    }
    if (this.revision !== undefined && this.at === undefined) return { revision: BigInt(this.revision) };
    const message = 'give exactly one of at and revision';
    throw new RequestValidationError([
      { field: 'at', rule: 'exactlyOneOf', message },
      { field: 'revision', rule: 'exactlyOneOf', message },
    ]);
  }
}
