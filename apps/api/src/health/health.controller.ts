import { Controller, Get, Inject, Injectable, Logger } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../openapi/api-problems.decorator.js';
import { DownLog } from './down-log.js';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { PG_POOL, pendingMigrations } from '@app/database';
import { ProjectionsAdmin } from '@app/operations';
import type { Pool } from 'pg';

/** Injection token of the readiness settings (READY_MAX_PROJECTION_LAG). */
export const READINESS_SETTINGS = Symbol('READINESS_SETTINGS');
export type ReadinessSettings = { readonly maxProjectionLagMs: number };

/**
 * The health routes need no credentials, so a check that fails says only which check and that it is
 * down: the driver's message (a host and port, a role, a database name) goes to the log (`DownLog`:
 * when it goes down and at most once a minute after, not on every probe).
 */
function downFor(log: DownLog, check: string, error: unknown): { readonly message: string } {
  log.failed(check, error);
  return { message: `the ${check} check could not be made: see the service's log` };
}

@Injectable()
export class DatabaseHealthIndicator {
  private readonly log = new DownLog(new Logger('Health'));

  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    private readonly indicators: HealthIndicatorService,
  ) {}

  async check(key: string) {
    const indicator = this.indicators.check(key);
    try {
      await this.pool.query('SELECT 1');
      this.log.answered(key);
      return indicator.up();
    } catch (error) {
      return indicator.down(downFor(this.log, key, error));
    }
  }

  /** Down while a migration of this build is not applied (an older schema than the code expects). */
  async migrations(key: string) {
    const indicator = this.indicators.check(key);
    try {
      const pending = await pendingMigrations(this.pool);
      if (pending.length === 0) {
        this.log.answered(key);
        return indicator.up();
      }
      this.log.failed(key, `migrations not applied: ${pending.join(', ')}`);
      return indicator.down({ pending });
    } catch (error) {
      return indicator.down(downFor(this.log, key, error));
    }
  }
}

@Injectable()
export class ReadModelsHealthIndicator {
  private readonly log = new DownLog(new Logger('Health'));

  constructor(
    private readonly projections: ProjectionsAdmin,
    private readonly indicators: HealthIndicatorService,
    @Inject(READINESS_SETTINGS) private readonly settings: ReadinessSettings,
  ) {}

  /** Down while a projection is further behind the events than READY_MAX_PROJECTION_LAG, or failed. */
  async check(key: string) {
    const indicator = this.indicators.check(key);
    try {
      const statuses = await this.projections.status();
      const maxLagSeconds = this.settings.maxProjectionLagMs / 1_000;
      const behind = statuses.filter((status) => status.lagSeconds > maxLagSeconds || status.state === 'failed');
      // Tenths of a second, rounded up: a lag reported as the limit itself would read as within it.
      const lags = Object.fromEntries(statuses.map((status) => [status.name, { state: status.state, lagSeconds: Math.ceil(status.lagSeconds * 10) / 10 }]));
      if (behind.length === 0) {
        this.log.answered(key);
        return indicator.up({ maxLagSeconds, projections: lags });
      }
      // Names and states, not lags: a reason that changes on every probe would be logged on every probe.
      this.log.failed(key, `projections behind by more than ${maxLagSeconds} s or failed: ${behind.map((status) => `${status.name} (${status.state})`).join(', ')}`);
      return indicator.down({ maxLagSeconds, projections: lags });
    } catch (error) {
      return indicator.down(downFor(this.log, key, error));
    }
  }
}

/**
 * A health route's 200 body, stated here rather than left to @HealthCheck, whose schema depends on how
 * @nestjs/swagger was loaded (Jest's ESM loader gives none). Its own documentation is turned off
 * (`swaggerDocumentation: false`): in the built service it added a 200 schema of its own (`degraded`,
 * nothing required) and, on `/health/live`, a 503 that route never sends, with no code.
 */
const HEALTH_OK = {
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
} as const;

/**
 * Liveness (`/health/live`: the process answers; it checks nothing else, so a database outage does
 * not get the process restarted) and readiness (`/health/ready`: the database answers, its schema
 * is this build's, and the read models are within READY_MAX_PROJECTION_LAG of the events). `/health`
 * answers as it always has: 200 when the database answers, 503 otherwise.
 */
@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly database: DatabaseHealthIndicator,
    private readonly readModels: ReadModelsHealthIndicator,
  ) {}

  @Get()
  @HealthCheck({ noCache: true, swaggerDocumentation: false })
  @ApiOperation({ operationId: 'checkHealth', summary: 'Check that the service and its database answer' })
  @ApiProblems('SERVICE_UNAVAILABLE')
  @ApiOkResponse(HEALTH_OK)
  check() {
    return this.health.check([() => this.database.check('database')]);
  }

  @Get('live')
  @HealthCheck({ noCache: true, swaggerDocumentation: false })
  @ApiOperation({ operationId: 'checkLiveness', summary: 'Check that the process answers (liveness: checks nothing else)' })
  @ApiOkResponse(HEALTH_OK)
  live() {
    return this.health.check([]);
  }

  @Get('ready')
  @HealthCheck({ noCache: true, swaggerDocumentation: false })
  @ApiOperation({ operationId: 'checkReadiness', summary: 'Check that the service can serve: database, migrations, read-model lag' })
  @ApiProblems('SERVICE_UNAVAILABLE')
  @ApiOkResponse(HEALTH_OK)
  ready() {
    return this.health.check([() => this.database.check('database'), () => this.database.migrations('migrations'), () => this.readModels.check('readModels')]);
  }
}
