import { Body, Controller, Get, HttpCode, HttpStatus, Inject, Param, Post, Query, Req } from '@nestjs/common';
import { CommandBus, QueryBus } from '@nestjs/cqrs';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { AddTokensCommand, GetBalanceQuery, GetTransactionsQuery, UseTokensCommand } from '@app/token-accounts';
import type { FastifyRequest } from 'fastify';
import { commandContextOf } from '../http/command-context.js';
import { ApiProblems, COMMAND_WRITE_PROBLEMS } from '../openapi/api-problems.decorator.js';
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
@Controller({ path: 'accounts/:userId', version: '1' })
export class AccountsController {
  constructor(
    private readonly commandBus: CommandBus,
    private readonly queryBus: QueryBus,
    @Inject(PURCHASE_TOKENS_MAX) private readonly purchaseTokensMax: number,
  ) {}

  @Get('balance')
  @ApiOperation({ operationId: 'getBalance', summary: 'Read the balance of an account', description: 'Balance, tokens held and available, and the next lot to expire. A user never seen has 0.' })
  @ApiOkResponse({ type: BalanceResponse, description: 'The balance; 0 for a user never seen.' })
  balance(@Param() { userId }: UserIdParams) {
    return this.queryBus.execute(new GetBalanceQuery(userId));
  }

  @Post('purchases')
  @HttpCode(HttpStatus.CREATED)
  @ApiCreatedResponse({ type: LedgerWriteResponse, description: 'Credited, or the first result again for a repeated paymentId.' })
  @ApiOperation({
    operationId: 'recordPurchase',
    summary: 'Credit tokens paid for elsewhere',
    description: 'Credits a payment taken outside this service, once per paymentId and to one account: a repeat with the same payload returns the first result; with another payload, or for another account (or naming a payment opened through POST /v1/payments for another account), 409 PAYMENT_ID_REUSED. Above PURCHASE_TOKENS_MAX: 400 AMOUNT_OUT_OF_RANGE naming the field and `max`.',
  })
  @ApiProblems('AMOUNT_OUT_OF_RANGE', 'PAYMENT_ID_REUSED', 'LOT_LIMIT_REACHED', 'BALANCE_OUT_OF_RANGE', ...COMMAND_WRITE_PROBLEMS)
  purchase(@Param() { userId }: UserIdParams, @Body() body: PurchaseRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new AddTokensCommand(userId, body.paymentId, body.amount, body.description ?? null, commandContextOf(request), this.purchaseTokensMax));
  }

  @Post('usage')
  @HttpCode(HttpStatus.CREATED)
  @ApiOperation({ operationId: 'useTokens', summary: 'Spend tokens', description: 'Debits the account; 409 INSUFFICIENT_BALANCE (with `balance`, `held`, `available` and `requested`) when the balance less pending refunds is short, 409 INSUFFICIENT_AVAILABLE_BALANCE (with `balance`, `held`, `available` and `requested`) when it is short only because holds set tokens aside, 409 ACCOUNT_IN_SHORTFALL (with `shortfall`) while lost payment disputes leave it owing; `metadata` is the caller\'s, returned in history.' })
  @ApiCreatedResponse({ type: LedgerWriteResponse, description: 'Debited: the usage transaction and the balance after it.' })
  @ApiProblems('INSUFFICIENT_BALANCE', 'INSUFFICIENT_AVAILABLE_BALANCE', 'ACCOUNT_IN_SHORTFALL', ...COMMAND_WRITE_PROBLEMS)
  use(@Param() { userId }: UserIdParams, @Body() body: UsageRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new UseTokensCommand(userId, body.amount, body.description ?? null, commandContextOf(request), body.metadata ?? null));
  }

  @Get('transactions')
  @ApiOperation({ operationId: 'listTransactions', summary: 'List the transactions of an account', description: 'Newest first; by cursor (stable while rows arrive) or offset (classic, unstable).' })
  @ApiOkResponse({ type: TransactionPageResponse, description: 'Newest first; by cursor (stable) or offset (classic, unstable).' })
  @ApiProblems('INVALID_CURSOR')
  transactions(@Param() { userId }: UserIdParams, @Query() query: HistoryQuery) {
    return this.queryBus.execute(new GetTransactionsQuery(userId, query.limit, query.position()));
  }
}
