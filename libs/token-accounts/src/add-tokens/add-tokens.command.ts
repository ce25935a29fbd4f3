import { randomUUID } from 'node:crypto';
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { decideTokenAccountWithState, invariant, shortfallCoverTransactionId, tokenAccountDecider, tokenAccountStreamId, type TokenAccountState } from '@app/ledger';
import { PG_POOL } from '@app/database';
import type { Pool } from 'pg';
import { transactionOf, type TransactionView } from '@app/projections';
import { type CommandContext, CommandHandling, eventMetadata, PaymentStreams, ReadModelConsistency } from '@app/event-sourcing';
import { ledgerWriteResult, type LedgerWriteResult } from '../transaction.view.js';
import { nowOf, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from '../token-accounts.options.js';

/**
 * Credits the tokens of a payment, once per `paymentId` and to one account: a repeat returns the
 * first result; the same `paymentId` for another account is 409 PAYMENT_ID_REUSED.
 */
export class AddTokensCommand extends Command<LedgerWriteResult> {
  constructor(
    readonly userId: string,
    readonly paymentId: string,
    readonly amount: number,
    readonly description: string | null,
    readonly context: CommandContext,
    /** The most this purchase may credit (PURCHASE_TOKENS_MAX for one recorded over HTTP); absent: TOKEN_AMOUNT_MAX. */
    readonly amountMax?: number,
  ) {
    super();
  }
}

@CommandHandler(AddTokensCommand)
export class AddTokensHandler implements ICommandHandler<AddTokensCommand> {
  constructor(
    private readonly commands: CommandHandling,
    private readonly consistency: ReadModelConsistency,
    private readonly paymentStreams: PaymentStreams,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId, paymentId, amount, description, context, amountMax }: AddTokensCommand): Promise<LedgerWriteResult> {
    const command = { type: 'AddTokens', data: { userId, paymentId, amount, description, transactionId: randomUUID(), now: nowOf(this.options), amountMax } } as const;
    const decide = async (state: TokenAccountState) => {
      const decision = decideTokenAccountWithState(command, state);
      // A stream sees its own purchases only: the claim keeps a payment to one account. Made once
      // the purchase is decided (a refused one claims nothing), before its append.
      if (decision.events.length > 0) await this.paymentStreams.record(paymentId, userId);
      return decision;
    };
    // readFirst: the claim is an effect outside the stream, so the purchase is decided alone on the
    // stream as it is (ADR 0029), not on a cached state a conflict would make it decide again.
    const handled = await this.commands.handle({
      streamId: tokenAccountStreamId(userId),
      decider: tokenAccountDecider,
      decide,
      metadata: eventMetadata(context),
      idempotency: context.idempotency,
      readFirst: true,
    });
    const purchase = handled.state.purchases.get(paymentId);
    invariant(purchase !== undefined, `payment ${paymentId} is not credited after AddTokens`);
    // The state keeps each purchase's event data: a repeat answers with the first credit's row.
    const transaction = transactionOf({ type: 'TokensPurchased', data: purchase });
    if (handled.events.length > 0) return ledgerWriteResult(transaction, handled, this.consistency);
    return ledgerWriteResult(transaction, handled, this.consistency, await this.firstAnswersBalance(userId, transaction));
  }

  /**
   * The balance a purchase's first answer gave, for a repeat (which decided nothing): its row's, less
   * the shortfall of lost disputes it paid off in the same decision (ADR 0024), found by the cover's
   * transaction id, derived from the purchase's. The read model shows it: it is written in the
   * append's transaction (on EventStoreDB, once the runner has caught up to the first purchase).
   */
  private async firstAnswersBalance(userId: string, purchase: TransactionView): Promise<number> {
    const { rows } = await this.pool.query<{ balance_after: string }>(COVER_BALANCE_SQL, [shortfallCoverTransactionId(purchase.id), userId]);
    return rows[0] === undefined ? purchase.balanceAfter : Number(rows[0].balance_after);
  }
}

/** The balance after the shortfall cover of this id, on this account (no row: the purchase covered none). */
export const COVER_BALANCE_SQL = "SELECT balance_after FROM token_transactions WHERE id = $1 AND user_id = $2 AND transaction_type = 'chargeback'";
