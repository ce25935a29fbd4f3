import { Body, Controller, Get, HttpCode, HttpStatus, Param, Post, Query, Req } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { GetHoldQuery, GetHoldsQuery, GetLotsQuery, HoldTokensCommand, ReleaseHoldCommand, SettleHoldCommand } from '@app/token-accounts';
import type { FastifyRequest } from 'fastify';
import { commandContextOf } from '../http/command-context.js';
import { EmptyBody, NoBody } from '../http/no-body.js';
import { ApiProblems, COMMAND_WRITE_PROBLEMS } from '../openapi/api-problems.decorator.js';
import { UserIdParams } from './accounts.dto.js';
import { HoldPageResponse, HoldParams, HoldRequest, HoldResponse, HoldsQuery, HoldViewResponse, LotPageResponse, LotsQuery, ReleaseResponse, SettleRequest, SettleResponse } from './holds.dto.js';

/** Holds (reserve, settle, release) and credit lots of an account: maps requests to commands and queries, nothing more. */
@ApiTags('holds and lots')
@Controller({ path: 'accounts/:userId', version: '1' })
export class HoldsController {
  constructor(
    private readonly commandBus: CommandBus,
    private readonly queryBus: QueryBus,
  ) {}

  @Post('holds')
  @HttpCode(HttpStatus.CREATED)
  @ApiOperation({ operationId: 'createHold', summary: 'Reserve tokens', description: 'Sets tokens aside until settled, released or expired; 409 INSUFFICIENT_AVAILABLE_BALANCE (with balance, held, available, requested) or HOLD_LIMIT_REACHED.' })
  @ApiCreatedResponse({ type: HoldResponse, description: 'The hold, its expiry, and the totals after it.' })
  @ApiProblems('HOLD_TTL_OUT_OF_RANGE', 'INSUFFICIENT_AVAILABLE_BALANCE', 'HOLD_LIMIT_REACHED', 'ACCOUNT_IN_SHORTFALL', ...COMMAND_WRITE_PROBLEMS)
  hold(@Param() { userId }: UserIdParams, @Body() body: HoldRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new HoldTokensCommand(userId, body.amount, body.description ?? null, body.expiresInSeconds ?? null, commandContextOf(request), body.metadata ?? null));
  }

  @Post('holds/:holdId/settle')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ operationId: 'settleHold', summary: 'Settle a hold', description: 'Debits the amount used from the hold and releases the rest, in one append; 409 SETTLE_EXCEEDS_HOLD (with held and requested) or HOLD_NOT_ACTIVE (with holdStatus).' })
  @ApiOkResponse({ type: SettleResponse, description: 'The usage debited from the hold and the part released, in one append.' })
  @ApiProblems('HOLD_NOT_FOUND', 'HOLD_NOT_ACTIVE', 'SETTLE_EXCEEDS_HOLD', ...COMMAND_WRITE_PROBLEMS)
  settle(@Param() { userId, holdId }: HoldParams, @Body() body: SettleRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new SettleHoldCommand(userId, holdId, body.amount, body.description ?? null, commandContextOf(request), body.metadata ?? null));
  }

  @Post('holds/:holdId/release')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ operationId: 'releaseHold', summary: 'Release a hold', description: 'Returns every held token to the available balance; 409 HOLD_NOT_ACTIVE (with holdStatus) once the hold has ended.' })
  @ApiOkResponse({ type: ReleaseResponse, description: 'The hold, released, and the totals after it.' })
  @ApiProblems('HOLD_NOT_FOUND', 'HOLD_NOT_ACTIVE', ...COMMAND_WRITE_PROBLEMS)
  release(@Param() { userId, holdId }: HoldParams, @NoBody() _body: EmptyBody, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new ReleaseHoldCommand(userId, holdId, commandContextOf(request)));
  }

  @Get('holds')
  @ApiOperation({ operationId: 'listHolds', summary: 'List the holds of an account', description: 'Newest first, optionally of one status; by cursor (stable while rows arrive) or offset (classic, unstable).' })
  @ApiOkResponse({ type: HoldPageResponse, description: 'Newest first; by cursor (stable) or offset (classic, unstable).' })
  @ApiProblems('INVALID_CURSOR')
  holds(@Param() { userId }: UserIdParams, @Query() query: HoldsQuery) {
    return this.queryBus.execute(new GetHoldsQuery(userId, query.status ?? null, query.limit, query.position()));
  }

  @Get('holds/:holdId')
  @ApiOperation({ operationId: 'getHold', summary: 'Read one hold of an account', description: 'As the list shows it, as of now: a hold past its expiresAt is expired before the expiry job records it.' })
  @ApiOkResponse({ type: HoldViewResponse })
  @ApiProblems('HOLD_NOT_FOUND')
  holdById(@Param() { userId, holdId }: HoldParams) {
    return this.queryBus.execute(new GetHoldQuery(userId, holdId));
  }

  @Get('lots')
  @ApiOperation({ operationId: 'listLots', summary: 'List the credit lots of an account', description: 'The lots debits draw from, in draw order, optionally of one status; by cursor (stable while rows arrive) or offset (classic, unstable).' })
  @ApiOkResponse({ type: LotPageResponse, description: 'In draw-down order; by cursor (stable) or offset (classic, unstable).' })
  @ApiProblems('INVALID_CURSOR')
  lots(@Param() { userId }: UserIdParams, @Query() query: LotsQuery) {
    return this.queryBus.execute(new GetLotsQuery(userId, query.status ?? null, query.limit, query.position()));
  }
}
