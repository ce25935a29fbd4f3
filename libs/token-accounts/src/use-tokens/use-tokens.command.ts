import { randomUUID } from 'node:crypto';
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { decideTokenAccountWithState, invariant, tokenAccountDecider, tokenAccountStreamId, type Metadata, type TokensUsed } from '@app/ledger';
import { transactionOf } from '@app/projections';
import { CommandHandling, eventMetadata, ReadModelConsistency, type CommandContext } from '@app/event-sourcing';
import { ledgerWriteResult, type LedgerWriteResult } from '../transaction.view.js';
import { nowOf, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from '../token-accounts.options.js';

/** Spends tokens; refused with INSUFFICIENT_BALANCE when the balance is short. */
export class UseTokensCommand extends Command<LedgerWriteResult> {
  constructor(
    readonly userId: string,
    readonly amount: number,
    readonly description: string | null,
    readonly context: CommandContext,
    /** The caller's metadata, stored in the event and shown in history; null: none. */
    readonly metadata: Metadata | null = null,
  ) {
    super();
  }
}

@CommandHandler(UseTokensCommand)
export class UseTokensHandler implements ICommandHandler<UseTokensCommand> {
  constructor(
    private readonly commands: CommandHandling,
    private readonly consistency: ReadModelConsistency,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId, amount, description, context, metadata }: UseTokensCommand): Promise<LedgerWriteResult> {
    const command = { type: 'UseTokens', data: { userId, amount, description, metadata, transactionId: randomUUID(), now: nowOf(this.options) } } as const;
    const handled = await this.commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccountWithState(command, state), metadata: eventMetadata(context), idempotency: context.idempotency });
    // A replayed request's event is the one its first attempt recorded: the response is rebuilt from it.
    // Expiries due at the command's time may precede it in the same append.
    const used = handled.events.find((event): event is TokensUsed => event.type === 'TokensUsed');
    invariant(used !== undefined, 'UseTokens appended no TokensUsed event');
    return ledgerWriteResult(transactionOf(used), handled, this.consistency);
  }
}
