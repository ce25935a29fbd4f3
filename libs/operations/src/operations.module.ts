import { Logger, Module } from '@nestjs/common';
import { PG_POOL } from '@app/database';
import { EVENT_STORE, type EventStore } from '@app/event-store';
import { EVENT_SOURCING_OPTIONS, ProjectionsLifecycle, type EventSourcingOptions } from '@app/event-sourcing';
import type { Pool } from 'pg';
import { AccountAudit } from './account-audit.js';
import { ProjectionsAdmin } from './projections-admin.js';

/**
 * How long a request's verification or account rebuild waits for its turn (at most half the pool
 * less one run at once, `connectionPairsMaxOf`) before it is answered 503 ACCOUNT_CHECKS_BUSY:
 * well under the minute a client or proxy waits for an answer.
 */
export const ACCOUNT_CHECK_TURN_WAIT_MS = 30_000;

/** The operators' and auditors' tools, for the admin and audit endpoints. Needs EventSourcingModule and DatabaseModule. */
@Module({
  providers: [
    {
      provide: ProjectionsAdmin,
      inject: [EVENT_STORE, PG_POOL, ProjectionsLifecycle, EVENT_SOURCING_OPTIONS],
      useFactory: (store: EventStore, pool: Pool, projections: ProjectionsLifecycle, options: EventSourcingOptions) =>
        new ProjectionsAdmin(store, pool, {
          connectionString: options.databaseUrl,
          runners: projections.views,
          onLog: (message) => new Logger('Rebuilds').log(message),
          turnWaitMs: ACCOUNT_CHECK_TURN_WAIT_MS,
        }),
    },
    { provide: AccountAudit, inject: [EVENT_STORE, PG_POOL], useFactory: (store: EventStore, pool: Pool) => new AccountAudit(store, pool, { turnWaitMs: ACCOUNT_CHECK_TURN_WAIT_MS }) },
  ],
  exports: [ProjectionsAdmin, AccountAudit],
})
export class OperationsModule {}
