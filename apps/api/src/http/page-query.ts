import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { CURSOR_LENGTH_MAX, type PagePosition } from '@app/database';
import { IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { QueryInteger } from './query-integer.js';
import { RequestValidationError } from './request-validation.error.js';

export const PAGE_LIMIT_MAX = 100;
export const PAGE_LIMIT_DEFAULT = 10;

/**
 * The paging of every list (ADR 0026): `limit`, and where the page starts: after `cursor` (the
 * previous page's `nextCursor`; stable while rows are written) or at `offset` (classic paging, kept
 * for the clients that use it; a row written meanwhile shifts the pages, so one row can come twice
 * or not at all). Neither: the first page.
 */
export class PageQuery {
  @ApiPropertyOptional({ minimum: 1, maximum: PAGE_LIMIT_MAX, default: PAGE_LIMIT_DEFAULT, type: 'integer', description: 'Rows per page.' })
  @IsOptional()
  @QueryInteger()
  @IsInt()
  @Min(1)
  @Max(PAGE_LIMIT_MAX)
  limit: number = PAGE_LIMIT_DEFAULT;

  @ApiPropertyOptional({
    type: String,
    maxLength: CURSOR_LENGTH_MAX,
    description: "The previous page's nextCursor, unchanged: the page starts after its last row. Stable while rows are written. Not with offset; anything else is 400 INVALID_CURSOR.",
  })
  @IsOptional()
  @IsString()
  cursor?: string;

  @ApiPropertyOptional({
    minimum: 0,
    maximum: Number.MAX_SAFE_INTEGER,
    default: 0,
    type: 'integer',
    description: 'Classic offset paging, unstable: a row written between two pages shifts them (a row repeated or skipped). Prefer cursor; not with it.',
  })
  @IsOptional()
  @QueryInteger()
  @IsInt()
  @Min(0)
  @Max(Number.MAX_SAFE_INTEGER)
  offset?: number;

  /** Where the page starts; a cursor and an offset together are refused, naming both. */
  position(): PagePosition {
    if (this.cursor !== undefined && this.offset !== undefined) {
      const message = 'give at most one of cursor and offset';
      throw new RequestValidationError([
        { field: 'cursor', rule: 'atMostOneOf', message },
        { field: 'offset', rule: 'atMostOneOf', message },
      ]);
    }
    return this.cursor === undefined ? { offset: this.offset ?? 0 } : { cursor: this.cursor };
  }
}

/** The paging members of every list's response. */
export class PageResponse {
  @ApiProperty({ type: 'integer' }) limit!: number;
  @ApiProperty({ type: 'integer', nullable: true, description: 'The offset the page was asked at; null for a page asked by cursor.' }) offset!: number | null;
  @ApiProperty({ description: 'Whether rows follow this page.' }) hasMore!: boolean;
  @ApiProperty({ type: String, nullable: true, description: 'Pass as cursor for the next page; null when hasMore is false.' }) nextCursor!: string | null;
}
