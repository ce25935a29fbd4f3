import { Module, type DynamicModule } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { TerminusModule } from '@nestjs/terminus';
import { TokenAccountsModule } from '@app/accounts';
import { DatabaseModule } from '@app/database';
import { AccountsController } from './accounts/accounts.controller.js';
import type { AppConfig } from './config/app.config.js';
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
        }),
      ],
      controllers: [AccountsController, HealthController],
      providers: [DatabaseHealthIndicator],
    };
  }
}
