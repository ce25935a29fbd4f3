import { Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { IdempotencyStore } from './idempotency.store.js';

const PURGE_INTERVAL_MS = 3_600_000;

/** Deletes expired Idempotency-Key rows once an hour (any instance may: the DELETE is idempotent). */
@Injectable()
export class IdempotencyPurgeJob implements OnApplicationBootstrap {
  private readonly logger = new Logger('Idempotency');

  constructor(
    private readonly registry: SchedulerRegistry,
    private readonly store: IdempotencyStore,
    private readonly enabled: boolean,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.enabled) return;
    this.registry.addInterval(
      'idempotency-purge',
      setInterval(() => {
        this.store.purge().then(
          (purged) => purged > 0 && this.logger.log(`purged ${purged} expired idempotency keys`),
          (error: unknown) => this.logger.warn(`purge failed: ${error instanceof Error ? error.message : String(error)}`),
        );
      }, PURGE_INTERVAL_MS),
    );
  }
}
