import { Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { LeaderElection, type AdvisoryLockLeadership } from '@app/database';
import { IdempotencyStore } from './idempotency.store.js';

const PURGE_INTERVAL_MS = 3_600_000;

/** The leadership worker of the purge. */
export const IDEMPOTENCY_PURGE_WORKER = 'idempotency-purge';

/**
 * Deletes expired Idempotency-Key rows when this process comes to lead `idempotency-purge`, then
 * once an hour while it leads (the DELETE is idempotent; leadership only keeps N processes from
 * repeating it). The run on taking the lead matters: a leader replaced more often than hourly (a
 * rolling deploy, restarts) would otherwise never purge, and the table would grow without bound.
 */
@Injectable()
export class IdempotencyPurgeJob implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Idempotency');
  private readonly leadership: AdvisoryLockLeadership;

  constructor(
    election: LeaderElection,
    store: IdempotencyStore,
    private readonly enabled: boolean,
  ) {
    this.leadership = election.every(
      IDEMPOTENCY_PURGE_WORKER,
      {
        intervalMs: PURGE_INTERVAL_MS,
        runOnLead: true,
        run: async () => {
          const purged = await store.purge();
          if (purged > 0) this.logger.log(`purged ${purged} expired idempotency keys`);
        },
        onError: (error) => this.logger.warn(`purge failed: ${error instanceof Error ? error.message : String(error)}`),
      },
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.enabled) await this.leadership.start();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.leadership.stop();
  }
}
