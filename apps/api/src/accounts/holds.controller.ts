import { Body, Controller, Get, HttpCode, HttpStatus, Param, Post, Query, Req } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { ApiBadRequestResponse, ApiConflictResponse, ApiCreatedResponse, ApiHeader, ApiNotFoundResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { GetHoldsQuery, GetLotsQuery, HoldTokensCommand, ReleaseHoldCommand, SettleHoldCommand } from '@app/token-accounts';
import type { FastifyRequest } from 'fastify';
import { commandContextOf, IDEMPOTENCY_KEY_API_HEADER } from '../http/command-context.js';
import { UserIdParams } from './accounts.dto.js';
import { HoldPageResponse, HoldParams, HoldRequest, HoldResponse, HoldsQuery, LotPageResponse, LotsQuery, ReleaseResponse, SettleRequest, SettleResponse } from './holds.dto.js';

/** Holds (reserve, settle, release) and credit lots of an account: maps requests to commands and queries, nothing more. */
@ApiTags('holds and lots')
@ApiBadRequestResponse({ description: 'Validation failed: problem VALIDATION_FAILED naming each field and rule.' })
@Controller({ path: 'accounts/:userId', version: '1' })
export class HoldsController {
  constructor(
    private readonly commandBus: CommandBus,
    private readonly queryBus: QueryBus,
  ) {}

  @Post('holds')
  @HttpCode(HttpStatus.CREATED)
  @ApiHeader(IDEMPOTENCY_KEY_API_HEADER)
  @ApiCreatedResponse({ type: HoldResponse, description: 'The hold, its expiry, and the totals after it.' })
  @ApiConflictResponse({ description: 'INSUFFICIENT_AVAILABLE_BALANCE (with balance, held, available, requested); HOLD_LIMIT_REACHED; ACCOUNT_IN_SHORTFALL (with shortfall: tokens lost payment disputes left owing).' })
  hold(@Param() { userId }: UserIdParams, @Body() body: HoldRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new HoldTokensCommand(userId, body.amount, body.description ?? null, body.expiresInSeconds ?? null, commandContextOf(request), body.metadata ?? null));
  }

  @Post('holds/:holdId/settle')
  @HttpCode(HttpStatus.OK)
  @ApiHeader(IDEMPOTENCY_KEY_API_HEADER)
  @ApiOkResponse({ type: SettleResponse, description: 'The usage debited from the hold and the part released, in one append.' })
  @ApiConflictResponse({ description: 'SETTLE_EXCEEDS_HOLD (with held and requested); HOLD_NOT_ACTIVE (with status: settled, released or expired).' })
  @ApiNotFoundResponse({ description: 'HOLD_NOT_FOUND.' })
  settle(@Param() { userId, holdId }: HoldParams, @Body() body: SettleRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new SettleHoldCommand(userId, holdId, body.amount, body.description ?? null, commandContextOf(request), body.metadata ?? null));
  }

  @Post('holds/:holdId/release')
  @HttpCode(HttpStatus.OK)
  @ApiHeader(IDEMPOTENCY_KEY_API_HEADER)
  @ApiOkResponse({ type: ReleaseResponse })
  @ApiConflictResponse({ description: 'HOLD_NOT_ACTIVE (with status).' })
  @ApiNotFoundResponse({ description: 'HOLD_NOT_FOUND.' })
  release(@Param() { userId, holdId }: HoldParams, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new ReleaseHoldCommand(userId, holdId, commandContextOf(request)));
  }

  @Get('holds')
  @ApiOkResponse({ type: HoldPageResponse, description: 'Newest first; by cursor (stable) or offset (classic, unstable).' })
  @ApiBadRequestResponse({ description: 'INVALID_CURSOR: the cursor is not a nextCursor of this list, user and filter.' })
  holds(@Param() { userId }: UserIdParams, @Query() query: HoldsQuery) {
    return this.queryBus.execute(new GetHoldsQuery(userId, query.status ?? null, query.limit, query.position()));
  }

  @Get('lots')
  @ApiOkResponse({ type: LotPageResponse, description: 'In draw-down order; by cursor (stable) or offset (classic, unstable).' })
  @ApiBadRequestResponse({ description: 'INVALID_CURSOR: the cursor is not a nextCursor of this list, user and filter.' })
  lots(@Param() { userId }: UserIdParams, @Query() query: LotsQuery) {
    return this.queryBus.execute(new GetLotsQuery(userId, query.status ?? null, query.limit, query.position()));
  }
}
