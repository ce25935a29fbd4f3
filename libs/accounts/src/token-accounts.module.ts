import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { AddTokensHandler } from './commands/add-tokens.command.js';
import { AdjustTokensHandler } from './commands/adjust-tokens.command.js';
import { UseTokensHandler } from './commands/use-tokens.command.js';
import { GetBalanceHandler } from './queries/get-balance.query.js';
import { GetTransactionsHandler } from './queries/get-transactions.query.js';

/** Token accounts: the command and query handlers of the token use cases. Needs EventSourcingModule and DatabaseModule. */
@Module({
  imports: [CqrsModule],
  providers: [AddTokensHandler, UseTokensHandler, AdjustTokensHandler, GetBalanceHandler, GetTransactionsHandler],
})
export class TokenAccountsModule {}
