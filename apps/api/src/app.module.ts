import { Module, type DynamicModule } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { TerminusModule } from '@nestjs/terminus';
import { TokenAccountsModule, type EventStoreChoice } from '@app/accounts';
import { DatabaseModule } from '@app/database';
import { AccountsController } from './accounts/accounts.controller.js';
import { AdminController } from './admin/admin.controller.js';
import { ConfigError, type AppConfig } from './config/app.config.js';
import { DatabaseHealthIndicator, HealthController } from './health/health.controller.js';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig, databaseUrl: string): DynamicModule {
    return {
      module: AppModule,
      imports: [
        DatabaseModule.forRoot({ url: databaseUrl, poolSizeMax: config.DATABASE_POOL_SIZE }),
        CqrsModule.forRoot(),
        TerminusModule.forRoot({ logger: false }),
        TokenAccountsModule.forRoot({
          databaseUrl,
          projectionsEnabled: config.PROJECTIONS_ENABLED,
          readYourWritesTimeoutMs: config.READ_YOUR_WRITES_TIMEOUT_MS,
          eventStore: eventStoreChoiceOf(config),
        }),
      ],
      controllers: [AccountsController, HealthController, AdminController],
      providers: [DatabaseHealthIndicator],
    };
  }
}

function eventStoreChoiceOf(config: AppConfig): EventStoreChoice {
  if (config.EVENT_STORE === 'postgres') return { kind: 'postgres' };
  // loadConfig has refused this already; a config built by hand has not.
  if (config.EVENTSTORE_URL === undefined) throw new ConfigError('EVENTSTORE_URL is required when EVENT_STORE=eventstoredb');
  return { kind: 'eventstoredb', url: config.EVENTSTORE_URL };
}
