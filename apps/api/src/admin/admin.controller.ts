import { Body, Controller, Get, HttpCode, HttpStatus, NotFoundException, Param, Post, Req, Res } from '@nestjs/common';
import { CommandBus } from '@nestjs/cqrs';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiTags,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import { AdjustTokensCommand, GrantTokensCommand, VoidGrantCommand } from '@app/token-accounts';
import { ProjectionsAdmin } from '@app/operations';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LedgerWriteResponse, UserIdParams } from '../accounts/accounts.dto.js';
import { commandContextOf, IDEMPOTENCY_KEY_API_HEADER } from '../http/command-context.js';
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
  @ApiOkResponse({ description: 'Every projection: state, checkpoint, head, lag in events and seconds, failure, running rebuild.' })
  async projections() {
    return { data: await this.admin.status() };
  }

  @Post('projections/:name/rebuild')
  @HttpCode(HttpStatus.ACCEPTED)
  @ApiAcceptedResponse({ description: 'The rebuild started; its progress is at the Location header.' })
  @ApiNotFoundResponse({ description: 'UNKNOWN_PROJECTION' })
  @ApiConflictResponse({ description: 'REBUILD_IN_PROGRESS, with the running rebuild id.' })
  async rebuild(@Param() { name }: ProjectionNameParams, @Res({ passthrough: true }) reply: FastifyReply) {
    const rebuild = await this.admin.startRebuild(name);
    void reply.header('location', `/v1/admin/projections/${name}/rebuilds/${rebuild.id}`);
    return rebuild;
  }

  @Get('projections/:name/rebuilds/:id')
  @ApiOkResponse({ description: 'Progress: phase, events done and total, events/s, ETA, error.' })
  @ApiNotFoundResponse({ description: 'No such rebuild of this projection.' })
  async rebuildProgress(@Param() { name, id }: RebuildParams) {
    const rebuild = await this.admin.getRebuild(id);
    if (rebuild === undefined || rebuild.projection !== name) throw new NotFoundException(`no rebuild ${id} of ${name}`);
    return rebuild;
  }

  @Post('accounts/:userId/rebuild')
  @HttpCode(HttpStatus.OK)
  @ApiOkResponse({ description: "The user's rows recomputed from the stream in every projection that has per-account rows." })
  rebuildAccount(@Param() { userId }: UserIdParams) {
    return this.admin.rebuildAccount(userId);
  }

  @Post('accounts/:userId/adjustments')
  @HttpCode(HttpStatus.CREATED)
  @ApiHeader(IDEMPOTENCY_KEY_API_HEADER)
  @ApiCreatedResponse({ type: LedgerWriteResponse, description: "The adjustment transaction (its description is the reason) and the new balance; a user never seen may be credited." })
  @ApiBadRequestResponse({ description: 'VALIDATION_FAILED naming each field and rule (amount 0, not an integer, beyond the safe range; reason missing, blank or too long).' })
  @ApiConflictResponse({ description: 'ADJUSTMENT_EXCEEDS_BALANCE, with balance and requested: a debit may not take the balance below zero; nothing is written.' })
  @ApiUnprocessableEntityResponse({ description: 'BALANCE_OUT_OF_RANGE: a credit would take the balance past the largest safe integer.' })
  adjust(@Param() { userId }: UserIdParams, @Body() body: AdjustmentRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new AdjustTokensCommand(userId, body.amount, body.reason, commandContextOf(request)));
  }

  @Post('accounts/:userId/grants')
  @HttpCode(HttpStatus.CREATED)
  @ApiHeader(IDEMPOTENCY_KEY_API_HEADER)
  @ApiCreatedResponse({ type: LotWriteResponse, description: 'A promotional credit with a lot of its own (an adjustment row whose description is the reason).' })
  @ApiBadRequestResponse({ description: 'VALIDATION_FAILED; LOT_EXPIRY_OUT_OF_RANGE (expiresAt not in the future).' })
  @ApiConflictResponse({ description: 'LOT_LIMIT_REACHED.' })
  grant(@Param() { userId }: UserIdParams, @Body() body: GrantRequest, @Req() request: FastifyRequest) {
    const expiresAt = body.expiresAt === undefined ? null : new Date(body.expiresAt);
    return this.commandBus.execute(new GrantTokensCommand(userId, body.amount, body.reason, expiresAt, body.priority ?? null, commandContextOf(request)));
  }

  @Post('accounts/:userId/grants/:lotId/void')
  @HttpCode(HttpStatus.OK)
  @ApiHeader(IDEMPOTENCY_KEY_API_HEADER)
  @ApiOkResponse({ type: LotWriteResponse, description: "The grant's remainder taken back (a negative adjustment row with the reason)." })
  @ApiConflictResponse({ description: 'LOT_NOT_A_GRANT; LOT_HELD (settle or release its holds first).' })
  @ApiNotFoundResponse({ description: 'LOT_NOT_FOUND: no lot with tokens left has this id.' })
  voidGrant(@Param() { userId, lotId }: GrantParams, @Body() body: VoidGrantRequest, @Req() request: FastifyRequest) {
    return this.commandBus.execute(new VoidGrantCommand(userId, lotId, body.reason, commandContextOf(request)));
  }
}
