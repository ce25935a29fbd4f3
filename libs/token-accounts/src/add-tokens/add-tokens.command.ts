import { randomUUID } from 'node:crypto';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { decideTokenAccountWithState, invariant, tokenAccountDecider, tokenAccountStreamId } from '@app/ledger';
import { transactionOf } from '@app/projections';
import { CommandHandling, eventMetadata, ReadModelConsistency, type CommandContext } from '@app/event-sourcing';
import { ledgerWriteResult, type LedgerWriteResult } from '../transaction.view.js';

/** Credits the tokens of a payment, once per `paymentId`; a repeat returns the first result. */
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
  ) {}

  async execute({ userId, paymentId, amount, description, context, amountMax }: AddTokensCommand): Promise<LedgerWriteResult> {
    const command = { type: 'AddTokens', data: { userId, paymentId, amount, description, transactionId: randomUUID(), now: new Date(), amountMax } } as const;
    const handled = await this.commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccountWithState(command, state), metadata: eventMetadata(context), idempotency: context.idempotency });
    const purchase = handled.state.purchases.get(paymentId);
    invariant(purchase !== undefined, `payment ${paymentId} is not credited after AddTokens`);
    // The state keeps each purchase's event data: a repeat answers with the first credit's row.
    return ledgerWriteResult(transactionOf({ type: 'TokensPurchased', data: purchase }), handled, this.consistency);
  }
}
