import { Logger, Module, type DynamicModule } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { PG_POOL } from '@app/database';
import { CommandHandling, PaymentStreams } from '@app/event-sourcing';
import type { Pool } from 'pg';
import { AddTokensHandler } from './add-tokens/add-tokens.command.js';
import { AdjustTokensHandler } from './adjust-tokens/adjust-tokens.command.js';
import { UseTokensHandler } from './use-tokens/use-tokens.command.js';
import { GetBalanceHandler } from './get-balance/get-balance.query.js';
import { GetTransactionsHandler } from './get-transactions/get-transactions.query.js';
import { CreditExpiryJob } from './holds/credit-expiry.job.js';
import { CreditExpiryScheduler } from './holds/credit-expiry.scheduler.js';
import { GetHoldHandler, GetHoldsHandler } from './holds/get-holds.query.js';
import { HoldTokensHandler } from './holds/hold-tokens.command.js';
import { ReleaseHoldHandler } from './holds/release-hold.command.js';
import { SettleHoldHandler } from './holds/settle-hold.command.js';
import { GetLotsHandler } from './lots/get-lots.query.js';
import { GrantTokensHandler, VoidGrantHandler } from './lots/grant-tokens.command.js';
import { DEFAULT_TOKEN_ACCOUNTS_OPTIONS, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from './token-accounts.options.js';

/**
 * Token accounts: the command and query handlers of the token use cases (usage, purchases,
 * adjustments, holds, grants) and the credit expiry job. Needs EventSourcingModule and DatabaseModule.
 */
@Module({})
export class TokenAccountsModule {
  static forRoot(options: TokenAccountsOptions = DEFAULT_TOKEN_ACCOUNTS_OPTIONS): DynamicModule {
    return {
      module: TokenAccountsModule,
      imports: [CqrsModule],
      providers: [
        { provide: TOKEN_ACCOUNTS_OPTIONS, useValue: options },
        { provide: PaymentStreams, inject: [PG_POOL], useFactory: (pool: Pool) => new PaymentStreams(pool) },
        {
          provide: CreditExpiryJob,
          inject: [PG_POOL, CommandHandling],
          useFactory: (pool: Pool, commands: CommandHandling) => {
            const logger = new Logger('CreditExpiry');
            return new CreditExpiryJob(pool, commands, (userId, error) => logger.warn(`account ${userId} not expired, retried next run: ${error instanceof Error ? error.message : String(error)}`));
          },
        },
        CreditExpiryScheduler,
        AddTokensHandler,
        UseTokensHandler,
        AdjustTokensHandler,
        HoldTokensHandler,
        SettleHoldHandler,
        ReleaseHoldHandler,
        GrantTokensHandler,
        VoidGrantHandler,
        GetBalanceHandler,
        GetTransactionsHandler,
        GetHoldsHandler,
        GetHoldHandler,
        GetLotsHandler,
      ],
      exports: [CreditExpiryJob],
    };
  }
}
