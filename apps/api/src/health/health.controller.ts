import { Controller, Get, Inject, Injectable } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../openapi/api-problems.decorator.js';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { PG_POOL } from '@app/database';
import type { Pool } from 'pg';

@Injectable()
export class DatabaseHealthIndicator {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    private readonly indicators: HealthIndicatorService,
  ) {}

  async check(key: string) {
    const indicator = this.indicators.check(key);
    try {
      await this.pool.query('SELECT 1');
      return indicator.up();
    } catch (error) {
      return indicator.down({ message: error instanceof Error ? error.message : String(error) });
    }
  }
}

/** Liveness and readiness in one: 200 when the database answers, 503 otherwise. */
@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly database: DatabaseHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  @ApiOperation({ operationId: 'checkHealth', summary: 'Check that the service and its database answer' })
  @ApiProblems('SERVICE_UNAVAILABLE')
  // Stated here rather than left to @HealthCheck, whose schema depends on how @nestjs/swagger was loaded (Jest's ESM loader gives none).
  @ApiOkResponse({
    description: 'Every check is up.',
    schema: {
      type: 'object',
      required: ['status', 'info', 'error', 'details'],
      properties: {
        status: { type: 'string', enum: ['ok'] },
        info: { type: 'object', additionalProperties: true, example: { database: { status: 'up' } } },
        error: { type: 'object', additionalProperties: true, example: {} },
        details: { type: 'object', additionalProperties: true, example: { database: { status: 'up' } } },
      },
    },
  })
  check() {
    return this.health.check([() => this.database.check('database')]);
  }
}
