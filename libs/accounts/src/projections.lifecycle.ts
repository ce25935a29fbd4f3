import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { EVENT_STORE, PostgresEventStore, type EventStore } from '@app/event-store';
import { PG_POOL } from '@app/database';
import { DEFAULT_RUNNER_OPTIONS, PROJECTIONS, ProjectionRunner, SET_BASED_BATCH_MIN, TOKEN_ACCOUNTS_PROJECTION } from '@app/projections';
import type { Pool } from 'pg';
import { TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from './token-accounts.tokens.js';

/**
 * Owns the projection runners of this process, one per registered projection (PROJECTIONS): started
 * after the app boots (when enabled), and stopped before the database pool closes.
 */
@Injectable()
export class ProjectionsLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Projections');
  readonly runners: ReadonlyMap<string, ProjectionRunner>;
  readonly tokenAccounts: ProjectionRunner;

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(PG_POOL) pool: Pool,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {
    this.runners = new Map(
      PROJECTIONS.map((projection) => [
        projection.name,
        new ProjectionRunner(store, pool, projection, {
          ...DEFAULT_RUNNER_OPTIONS,
          // Large batches (a runner catching up) in one set-based pass, when the events are in this database.
          ...(store instanceof PostgresEventStore ? { setBasedBatchMin: SET_BASED_BATCH_MIN } : {}),
          onFailure: (name, failure) =>
            this.logger.error(`projection ${name} failed at ${failure.position} (${failure.eventType}), attempt ${failure.attempts}: ${failure.error}`),
        }),
      ]),
    );
    const tokenAccounts = this.runners.get(TOKEN_ACCOUNTS_PROJECTION);
    if (tokenAccounts === undefined) throw new Error(`${TOKEN_ACCOUNTS_PROJECTION} is not registered in PROJECTIONS`);
    this.tokenAccounts = tokenAccounts;
  }

  onApplicationBootstrap(): void {
    if (this.options.projectionsEnabled) for (const runner of this.runners.values()) runner.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await Promise.all([...this.runners.values()].map((runner) => runner.stop()));
    await this.store.close();
  }
}
