import { AsyncResource } from 'node:async_hooks';
import { Inject, Injectable, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { Pool, types } from 'pg';
import { LEADERSHIP_TIMING } from './leadership/advisory-lock-leadership.js';
import { LeaderElection, type JobRunObserver } from './leadership/leader-election.js';

export const PG_POOL = Symbol('PG_POOL');
export const InjectPool = () => Inject(PG_POOL);

export type DatabaseOptions = {
  readonly url: string;
  readonly poolSizeMax: number;
  /** Hears the runs of the interval jobs (metrics). */
  readonly onJobRun?: JobRunObserver;
};

// bigint (int8) and numeric arrive as strings: the callers convert them with range checks.
types.setTypeParser(types.builtins.INT8, (value) => value);

@Injectable()
class PoolCloser implements OnApplicationShutdown {
  constructor(@InjectPool() private readonly pool: Pool) {}

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
  }
}

@Module({})
export class DatabaseModule {
  static forRoot(options: DatabaseOptions): DynamicModule {
    return {
      module: DatabaseModule,
      global: true,
      providers: [
        { provide: PG_POOL, useFactory: () => createPool(options) },
        PoolCloser,
        // Each worker's leadership holds its own session on this database (not a pooled connection).
        { provide: LeaderElection, useFactory: () => new LeaderElection(options.url, LEADERSHIP_TIMING, options.onJobRun) },
      ],
      exports: [PG_POOL, LeaderElection],
    };
  }
}

export function createPool(options: DatabaseOptions): Pool {
  const pool = new Pool({ connectionString: options.url, max: options.poolSizeMax });
  // An idle client that loses its connection is dropped from the pool; without a listener pg would
  // crash the process. Queries in flight fail on their own and are handled by their callers.
  const logger = new Logger('Database');
  // Bound here, outside any request: a connection's events run in the async context of the request
  // that opened it, and its loss (at shutdown, say) is no part of that request or its log lines.
  pool.on('error', AsyncResource.bind((error: Error) => logger.warn(`idle database connection lost: ${error.message}`)));
  // A checked-out client whose connection is lost emits 'error' too, and pg-pool listens only to idle
  // ones: unheard, it would end the process. Its query fails on its own, and pg-pool drops the client on release.
  const lost = AsyncResource.bind((error: Error) => logger.warn(`database connection lost: ${error.message}`));
  pool.on('connect', (client) => client.on('error', lost));
  return pool;
}
