import { Body, Controller, Get, HttpCode, HttpStatus, NotFoundException, Param, Post, Req, Res } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import { ApiAcceptedResponse, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { AdjustTokensCommand, GrantTokensCommand, VoidGrantCommand } from '@app/token-accounts';
import { idempotentValueId } from '@app/event-sourcing';
import { ProjectionsAdmin } from '@app/operations';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LedgerWriteResponse, UserIdParams } from '../accounts/accounts.dto.js';
import { commandContextOf } from '../http/command-context.js';
import { idempotentRequestOf } from '../http/idempotency/idempotency.hooks.js';
import { EmptyBody, NoBody } from '../http/no-body.js';
import { ApiProblems, COMMAND_WRITE_PROBLEMS } from '../openapi/api-problems.decorator.js';
import { AccountRebuildResponse, ProjectionStatusListResponse, RebuildResponse } from './admin.responses.js';
import { AdjustmentRequest, ProjectionNameParams, RebuildParams } from './admin.dto.js';
import { GrantParams, GrantRequest, LotWriteResponse, VoidGrantRequest } from '../accounts/holds.dto.js';

/** Operators' endpoints: projections, per-account rebuilds and balance adjustments (roles: see ENDPOINT_ACTIONS). */
@ApiTags('admin')
@Controller({ path: 'admin', version: '1' })
export class AdminController {
  constructor(
    private readonly admin: ProjectionsAdmin,
    private readonly commandBus: CommandBus,
  ) {}

  @Get('projections')
  @ApiOperation({ operationId: 'listProjections', summary: 'Read the state of every projection' })
  @ApiOkResponse({ type: ProjectionStatusListResponse, description: 'Every projection: state, checkpoint, head, lag in events and seconds, failure, running rebuild.' })
  async projections() {
    return { data: await this.admin.status() };
  }

  @Post('projections/:name/rebuild')
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiOperation({ operationId: 'startProjectionRebuild', summary: 'Rebuild a projection without downtime', description: 'Builds shadow tables and swaps them in; 409 REBUILD_IN_PROGRESS with the running rebuild id.' })
  @ApiAcceptedResponse({
    type: RebuildResponse,
    description: 'The rebuild started; its progress is at the Location header.',
    headers: { Location: { description: 'Where its progress is read.', schema: { type: 'string' } } },
  })
  @ApiProblems('UNKNOWN_PROJECTION', 'REBUILD_IN_PROGRESS')
  async rebuild(@Param() { name }: ProjectionNameParams, @NoBody() _body: EmptyBody, @Req() request: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply) {
    // Keyed, the rebuild's id is the request's: a retry whose first answer was never stored returns that rebuild.
    const idempotency = idempotentRequestOf(request);
    const rebuild = await this.admin.startRebuild(name, idempotency === undefined ? undefined : idempotentValueId(idempotency.requestId, 'projectionRebuild'));
    void reply.header('location', `/v1/admin/projections/${name}/rebuilds/${rebuild.id}`);
    return rebuild;
  }

  @Get('projections/:name/rebuilds/:id')
  @ApiOperation({ operationId: 'getProjectionRebuild', summary: 'Read the progress of a rebuild' })
  @ApiOkResponse({ type: RebuildResponse, description: 'Progress: phase, events done and total, events/s, ETA, error.' })
  @ApiProblems('NOT_FOUND')
  async rebuildProgress(@Param() { name, id }: RebuildParams) {
    const rebuild = await this.admin.getRebuild(id);
    if (rebuild === undefined || rebuild.projection !== name) throw new NotFoundException(`no rebuild ${id} of ${name}`);
    return rebuild;
  }

  @Post('accounts/:userId/rebuild')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ operationId: 'rebuildAccount', summary: "Recompute one account's read-model rows" })
  @ApiOkResponse({ type: AccountRebuildResponse, description: "The user's rows recomputed from the stream in every projection that has per-account rows." })
  @ApiProblems('ACCOUNT_CHECKS_BUSY')
  rebuildAccount(@Param() { userId }: UserIdParams, @NoBody() _body: EmptyBody) {
    return this.admin.rebuildAccount(userId);
  }

  @Post('accounts/:userId/adjustments')
  @HttpCode(HttpStatus.CREATED)
  @ApiOperation({
    operationId: 'adjustBalance',
    summary: 'Adjust a balance, with a reason',
    description: 'A signed credit or debit; 409 ADJUSTMENT_EXCEEDS_BALANCE (with balance and requested) when a debit would take the balance below zero, 409 INSUFFICIENT_AVAILABLE_BALANCE (with balance, held, available and requested) when it would take tokens holds set aside, 422 BALANCE_OUT_OF_RANGE when a credit would pass the largest safe integer.',
  })
  @ApiCreatedResponse({ type: LedgerWriteResponse, description: "The adjustment transaction (its description is the reason) and the new balance; a user never seen may be credited." })
  @ApiProblems('ADJUSTMENT_EXCEEDS_BALANCE', 'INSUFFICIENT_AVAILABLE_BALANCE', 'BALANCE_OUT_OF_RANGE', 'LOT_LIMIT_REACHED', ...COMMAND_WRITE_PROBLEMS)
  adjust(@Param() { userId }: UserIdParams, @Body() body: AdjustmentRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new AdjustTokensCommand(userId, body.amount, body.reason, commandContextOf(request)));
  }

  @Post('accounts/:userId/grants')
  @HttpCode(HttpStatus.CREATED)
  @ApiOperation({ operationId: 'grantTokens', summary: 'Grant promotional tokens', description: 'A credit with a lot of its own, an optional expiry and priority; 400 LOT_EXPIRY_OUT_OF_RANGE when expiresAt is not in the future.' })
  @ApiCreatedResponse({ type: LotWriteResponse, description: 'A promotional credit with a lot of its own (an adjustment row whose description is the reason).' })
  @ApiProblems('LOT_EXPIRY_OUT_OF_RANGE', 'LOT_LIMIT_REACHED', 'BALANCE_OUT_OF_RANGE', ...COMMAND_WRITE_PROBLEMS)
  grant(@Param() { userId }: UserIdParams, @Body() body: GrantRequest, @Req() request: FastifyRequest) {
    const expiresAt = body.expiresAt === undefined || body.expiresAt === null ? null : new Date(body.expiresAt);
    return this.commandBus.execute(new GrantTokensCommand(userId, body.amount, body.reason, expiresAt, body.priority ?? null, commandContextOf(request)));
  }

  @Post('accounts/:userId/grants/:lotId/void')
  @HttpCode(HttpStatus.OK)
  @ApiOperation({ operationId: 'voidGrant', summary: "Take back a grant's remainder", description: "409 LOT_NOT_A_GRANT with source (a purchase's, an adjustment's or the opening lot, whatever its state); LOT_NOT_ACTIVE with lotStatus spent, expired (from its expiresAt on, recorded or not) or voided, once the grant has ended; LOT_HELD (settle or release its holds first). 404 LOT_NOT_FOUND only when this account never had a lot with this id." })
  @ApiOkResponse({ type: LotWriteResponse, description: "The grant's remainder taken back (a negative adjustment row with the reason)." })
  @ApiProblems('LOT_NOT_FOUND', 'LOT_NOT_ACTIVE', 'LOT_NOT_A_GRANT', 'LOT_HELD', ...COMMAND_WRITE_PROBLEMS)
  voidGrant(@Param() { userId, lotId }: GrantParams, @Body() body: VoidGrantRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new VoidGrantCommand(userId, lotId, body.reason, commandContextOf(request)));
  }
}
