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
  /** Longest a query waits for a connection of the pool: a new one to open, or a free one. Default CONNECT_TIMEOUT_MS. */
  readonly connectTimeoutMs?: number;
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

/**
 * How long a query waits for a connection: a server that accepts TCP but never answers the login (a
 * frozen one), or a network that drops packets, would otherwise hold it for ever, or for the
 * kernel's connect timeout, and with it whatever lock its caller holds (a command's stream). pg-pool
 * counts the wait for a free client of a full pool in it too, so it is well above any wait a busy
 * pool makes: as long as a stream read's own timeout (twice the append deadline). A wait past it
 * fails with "timeout exceeded when trying to connect": 503 DATABASE_UNAVAILABLE.
 */
export const CONNECT_TIMEOUT_MS = 10_000;

export function createPool(options: DatabaseOptions): Pool {
  const pool = new Pool({ connectionString: options.url, max: options.poolSizeMax, connectionTimeoutMillis: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS });
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
