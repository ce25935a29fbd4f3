import { Logger, Module, type DynamicModule } from '@nestjs/common';
import { PG_POOL } from '@app/database';
import { EVENT_STORE, EventStoreDBEventStore, PostgresEventStore, type EventStore } from '@app/event-store';
import { InlineProjections, PROJECTIONS, TOKEN_ACCOUNTS_PROJECTION } from '@app/projections';
import type { Pool } from 'pg';
import { CommandHandling, DEFAULT_COMMAND_HANDLING_OPTIONS } from './command-handling.js';
import { EVENT_SOURCING_OPTIONS, type EventSourcingOptions } from './event-sourcing.tokens.js';
import { ProjectionsLifecycle } from './projections.lifecycle.js';
import { ReadModelConsistency } from './read-model-consistency.js';
import { PostgresSnapshotStore } from './snapshots/postgres-snapshot-store.js';

/**
 * The runtime every feature module works on: the event store, the command path, the projection
 * runners and read-your-writes. Global, so that every feature appends through the same
 * CommandHandling (one per-stream mutex and cache per process) without importing another feature.
 */
@Module({})
export class EventSourcingModule {
  static forRoot(options: EventSourcingOptions): DynamicModule {
    const logger = new Logger('EventStore');
    return {
      module: EventSourcingModule,
      global: true,
      providers: [
        { provide: EVENT_SOURCING_OPTIONS, useValue: options },
        {
          provide: EVENT_STORE,
          inject: [PG_POOL],
          // Only the events move to EventStoreDB: read models, checkpoints and snapshots stay in PostgreSQL.
          useFactory: (pool: Pool): EventStore =>
            options.eventStore?.kind === 'eventstoredb'
              ? EventStoreDBEventStore.connect(options.eventStore.url)
              : new PostgresEventStore(pool, {
                  connectionString: options.databaseUrl,
                  onError: (error) => logger.warn(`event store connection: ${error.message}`),
                  // Events and the rows they produce commit in one transaction: writes answer with read models that show them.
                  appendHook: new InlineProjections(PROJECTIONS),
                  ...(options.onAppendBatch === undefined ? {} : { onAppendBatch: options.onAppendBatch }),
                }),
        },
        {
          provide: CommandHandling,
          inject: [EVENT_STORE, PG_POOL],
          useFactory: (store: EventStore, pool: Pool) =>
            new CommandHandling(store, {
              ...DEFAULT_COMMAND_HANDLING_OPTIONS,
              snapshots: new PostgresSnapshotStore(pool),
              onSnapshotProblem: (streamId, problem) => new Logger('Snapshots').warn(`${streamId}: ${problem}`),
            }),
        },
        ProjectionsLifecycle,
        {
          provide: ReadModelConsistency,
          inject: [PG_POOL, ProjectionsLifecycle],
          useFactory: (pool: Pool, projections: ProjectionsLifecycle) =>
            new ReadModelConsistency(pool, options.projectionsEnabled ? projections.tokenAccounts : undefined, TOKEN_ACCOUNTS_PROJECTION, options.readYourWritesTimeoutMs),
        },
      ],
      exports: [EVENT_SOURCING_OPTIONS, EVENT_STORE, ProjectionsLifecycle, CommandHandling, ReadModelConsistency],
    };
  }
}
