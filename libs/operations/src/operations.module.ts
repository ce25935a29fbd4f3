import { Logger, Module } from '@nestjs/common';
import { PG_POOL } from '@app/database';
import { EVENT_STORE, type EventStore } from '@app/event-store';
import { EVENT_SOURCING_OPTIONS, ProjectionsLifecycle, type EventSourcingOptions } from '@app/event-sourcing';
import type { Pool } from 'pg';
import { AccountAudit } from './account-audit.js';
import { ProjectionsAdmin } from './projections-admin.js';

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
        }),
    },
    { provide: AccountAudit, inject: [EVENT_STORE, PG_POOL], useFactory: (store: EventStore, pool: Pool) => new AccountAudit(store, pool) },
  ],
  exports: [ProjectionsAdmin, AccountAudit],
})
export class OperationsModule {}
