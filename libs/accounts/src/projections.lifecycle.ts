import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { EVENT_STORE, type EventStore } from '@app/event-store';
import { PG_POOL } from '@app/database';
import { DEFAULT_RUNNER_OPTIONS, ProjectionRunner, tokenAccountsProjection } from '@app/projections';
import type { Pool } from 'pg';
import { TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from './token-accounts.tokens.js';

/**
 * Owns the projection runners of this process: started after the app boots (when enabled), and
 * stopped before the database pool closes.
 */
@Injectable()
export class ProjectionsLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Projections');
  readonly tokenAccounts: ProjectionRunner;

  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    @Inject(PG_POOL) pool: Pool,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {
    this.tokenAccounts = new ProjectionRunner(store, pool, tokenAccountsProjection, {
      ...DEFAULT_RUNNER_OPTIONS,
      onFailure: (projection, failure) =>
        this.logger.error(`projection ${projection} failed at ${failure.position} (${failure.eventType}), attempt ${failure.attempts}: ${failure.error}`),
    });
  }

  onApplicationBootstrap(): void {
    if (this.options.projectionsEnabled) this.tokenAccounts.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.tokenAccounts.stop();
    await this.store.close();
  }
}
