import { Controller, Get, HttpCode, HttpStatus, NotFoundException, Param, Post, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiConflictResponse, ApiNotFoundResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { ProjectionsAdmin } from '@app/accounts';
import type { FastifyReply } from 'fastify';
import { UserIdParams } from '../accounts/accounts.dto.js';
import { ProjectionNameParams, RebuildParams } from './admin.dto.js';

/** Operators' endpoints for projections. No authentication yet: roles arrive with issue 6. */
@ApiTags('admin')
@Controller({ path: 'admin', version: '1' })
export class AdminController {
  constructor(private readonly admin: ProjectionsAdmin) {}

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
}
