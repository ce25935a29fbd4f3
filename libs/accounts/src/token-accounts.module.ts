import { Logger, Module, type DynamicModule } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { PG_POOL } from '@app/database';
import { EVENT_STORE, EventStoreDBEventStore, PostgresEventStore, type EventStore } from '@app/event-store';
import { InlineProjections, PROJECTIONS, TOKEN_ACCOUNTS_PROJECTION } from '@app/projections';
import type { Pool } from 'pg';
import { CommandHandling, DEFAULT_COMMAND_HANDLING_OPTIONS, PostgresSnapshotStore, ReadModelConsistency } from '@app/event-sourcing';
import { AccountAudit, ProjectionsAdmin } from '@app/operations';
import { AddTokensHandler } from './commands/add-tokens.command.js';
import { UseTokensHandler } from './commands/use-tokens.command.js';
import { AdjustTokensHandler } from './commands/adjust-tokens.command.js';
import { ProjectionsLifecycle } from './projections.lifecycle.js';
import { GetBalanceHandler } from './queries/get-balance.query.js';
import { GetTransactionsHandler } from './queries/get-transactions.query.js';
import { TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from './token-accounts.tokens.js';

/** Token accounts: the event store, command and query handlers, and the projections behind them. */
@Module({})
export class TokenAccountsModule {
  static forRoot(options: TokenAccountsOptions): DynamicModule {
    const logger = new Logger('EventStore');
    return {
      module: TokenAccountsModule,
      // Global so that PaymentsModule appends through the same CommandHandling (one per-stream mutex and cache per process).
      global: true,
      imports: [CqrsModule],
      providers: [
        { provide: TOKEN_ACCOUNTS_OPTIONS, useValue: options },
        {
          provide: EVENT_STORE,
          inject: [PG_POOL],
          // Only the events move to EventStoreDB: read models, checkpoints and snapshots stay in PostgreSQL.
          useFactory: (pool: Pool): EventStore =>
            options.eventStore?.kind === 'eventstoredb'
              ? EventStoreDBEventStore.connect(options.eventStore.url)
              : new PostgresEventStore(pool, {
                  connectionString: options.databaseUrl,
                  onError: (error) => logger.warn(`event notifications: ${error.message}`),
                  // Events and the rows they produce commit in one transaction: writes answer with read models that show them.
                  appendHook: new InlineProjections(PROJECTIONS),
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
        {
          provide: ProjectionsAdmin,
          inject: [EVENT_STORE, PG_POOL, ProjectionsLifecycle],
          useFactory: (store: EventStore, pool: Pool, projections: ProjectionsLifecycle) =>
            new ProjectionsAdmin(store, pool, {
              connectionString: options.databaseUrl,
              runners: projections.views,
              onLog: (message) => new Logger('Rebuilds').log(message),
            }),
        },
        {
          provide: AccountAudit,
          inject: [EVENT_STORE, PG_POOL],
          useFactory: (store: EventStore, pool: Pool) => new AccountAudit(store, pool),
        },
        AddTokensHandler,
        UseTokensHandler,
        AdjustTokensHandler,
        GetBalanceHandler,
        GetTransactionsHandler,
      ],
      exports: [EVENT_STORE, ProjectionsLifecycle, ProjectionsAdmin, AccountAudit, CommandHandling, ReadModelConsistency],
    };
  }
}
