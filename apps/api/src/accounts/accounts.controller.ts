import { Body, Controller, Get, HttpCode, HttpStatus, Inject, Param, Post, Query, Req } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { ApiConflictResponse, ApiCreatedResponse, ApiOkResponse, ApiTags, ApiBadRequestResponse } from '@nestjs/swagger';
import { AddTokensCommand, GetBalanceQuery, GetTransactionsQuery, UseTokensCommand } from '@app/token-accounts';
import type { FastifyRequest } from 'fastify';
import { commandContextOf } from '../http/command-context.js';
import { PURCHASE_TOKENS_MAX } from './purchase-limit.js';
import {
  BalanceResponse,
  HistoryQuery,
  LedgerWriteResponse,
  PurchaseRequest,
  TransactionPageResponse,
  UsageRequest,
  UserIdParams,
} from './accounts.dto.js';

/** Token accounts: maps requests to commands and queries, nothing more. */
@ApiTags('accounts')
@ApiBadRequestResponse({ description: 'Validation failed: problem VALIDATION_FAILED naming each field and rule.' })
@Controller({ path: 'accounts/:userId', version: '1' })
export class AccountsController {
  constructor(
    private readonly commandBus: CommandBus,
    private readonly queryBus: QueryBus,
    @Inject(PURCHASE_TOKENS_MAX) private readonly purchaseTokensMax: number,
  ) {}

  @Get('balance')
  @ApiOkResponse({ type: BalanceResponse, description: 'The balance; 0 for a user never seen.' })
  balance(@Param() { userId }: UserIdParams) {
    return this.queryBus.execute(new GetBalanceQuery(userId));
  }

  @Post('purchases')
  @HttpCode(HttpStatus.CREATED)
  @ApiCreatedResponse({ type: LedgerWriteResponse, description: 'Credited, or the first result again for a repeated paymentId.' })
  @ApiConflictResponse({ description: 'PAYMENT_ID_REUSED: the payment was credited with another amount or description.' })
  @ApiBadRequestResponse({ description: 'AMOUNT_OUT_OF_RANGE above PURCHASE_TOKENS_MAX (the problem names the field and `max`).' })
  purchase(@Param() { userId }: UserIdParams, @Body() body: PurchaseRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new AddTokensCommand(userId, body.paymentId, body.amount, body.description ?? null, commandContextOf(request), this.purchaseTokensMax));
  }

  @Post('usage')
  @HttpCode(HttpStatus.CREATED)
  @ApiCreatedResponse({ type: LedgerWriteResponse })
  @ApiConflictResponse({ description: 'INSUFFICIENT_BALANCE, with balance and requested; ACCOUNT_IN_SHORTFALL, with shortfall (tokens lost payment disputes left owing).' })
  @ApiBadRequestResponse({ description: 'VALIDATION_FAILED naming metadata and the rule it breaks (metadataKeysMax, metadataKey, metadataValueType, ...).' })
  use(@Param() { userId }: UserIdParams, @Body() body: UsageRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new UseTokensCommand(userId, body.amount, body.description ?? null, commandContextOf(request), body.metadata ?? null));
  }

  @Get('transactions')
  @ApiOkResponse({ type: TransactionPageResponse, description: 'Newest first; by cursor (stable) or offset (classic, unstable).' })
  @ApiBadRequestResponse({ description: 'INVALID_CURSOR: the cursor is not a nextCursor of this list, user and filter.' })
  transactions(@Param() { userId }: UserIdParams, @Query() query: HistoryQuery) {
    return this.queryBus.execute(new GetTransactionsQuery(userId, query.limit, query.position()));
  }
}
