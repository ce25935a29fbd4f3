import { Module } from '@nestjs/common';
import { CqrsModule } from '@nestjs/cqrs';
import { AddTokensHandler } from './add-tokens/add-tokens.command.js';
import { AdjustTokensHandler } from './adjust-tokens/adjust-tokens.command.js';
import { UseTokensHandler } from './use-tokens/use-tokens.command.js';
import { GetBalanceHandler } from './get-balance/get-balance.query.js';
import { GetTransactionsHandler } from './get-transactions/get-transactions.query.js';

/** Token accounts: the command and query handlers of the token use cases. Needs EventSourcingModule and DatabaseModule. */
@Module({
  imports: [CqrsModule],
  providers: [AddTokensHandler, UseTokensHandler, AdjustTokensHandler, GetBalanceHandler, GetTransactionsHandler],
})
export class TokenAccountsModule {}
