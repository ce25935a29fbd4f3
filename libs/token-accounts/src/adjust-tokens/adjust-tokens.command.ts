import { randomUUID } from 'node:crypto';
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { decideTokenAccountWithState, invariant, tokenAccountDecider, tokenAccountStreamId, type TokensAdjusted } from '@app/ledger';
import { transactionOf } from '@app/projections';
import { CommandHandling, eventMetadata, ReadModelConsistency, type CommandContext } from '@app/event-sourcing';
import { ledgerWriteResult, type LedgerWriteResult } from '../transaction.view.js';
import { nowOf, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from '../token-accounts.options.js';

/**
 * An admin's correction of a balance, either way, with a required reason; refused with
 * ADJUSTMENT_EXCEEDS_BALANCE when a debit would take the balance below zero.
 */
export class AdjustTokensCommand extends Command<LedgerWriteResult> {
  constructor(
    readonly userId: string,
    /** Signed: positive credits, negative debits. */
    readonly amount: number,
    readonly reason: string,
    readonly context: CommandContext,
  ) {
    super();
  }
}

@CommandHandler(AdjustTokensCommand)
export class AdjustTokensHandler implements ICommandHandler<AdjustTokensCommand> {
  constructor(
    private readonly commands: CommandHandling,
    private readonly consistency: ReadModelConsistency,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId, amount, reason, context }: AdjustTokensCommand): Promise<LedgerWriteResult> {
    const command = { type: 'AdjustTokens', data: { userId, amount, reason, transactionId: randomUUID(), now: nowOf(this.options) } } as const;
    const handled = await this.commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccountWithState(command, state), metadata: eventMetadata(context), idempotency: context.idempotency });
    // A replayed request's event is the one its first attempt recorded: the response is rebuilt from it.
    // Expiries due at the command's time may precede it in the same append.
    const adjusted = handled.events.find((event): event is TokensAdjusted => event.type === 'TokensAdjusted');
    invariant(adjusted !== undefined, 'AdjustTokens appended no TokensAdjusted event');
    return ledgerWriteResult(transactionOf(adjusted), handled, this.consistency);
  }
}
