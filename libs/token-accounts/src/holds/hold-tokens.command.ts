import { randomUUID } from 'node:crypto';
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { decideTokenAccountWithState, invariant, tokenAccountDecider, tokenAccountStreamId, type Metadata, type TokensHeld } from '@app/ledger';
import { CommandHandling, eventMetadata, ReadModelConsistency, type CommandContext } from '@app/event-sourcing';
import { nowOf, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from '../token-accounts.options.js';
import { totalsAfter, writeTrace, type AccountTotals, type WriteTrace } from './hold.view.js';

export type HoldResult = AccountTotals &
  WriteTrace & { readonly userId: string; readonly holdId: string; readonly amount: number; readonly description: string | null; readonly expiresAt: string; readonly metadata: Metadata | null };

/** Sets tokens aside before work whose cost is known later; refused with INSUFFICIENT_AVAILABLE_BALANCE when fewer are available. */
export class HoldTokensCommand extends Command<HoldResult> {
  constructor(
    readonly userId: string,
    readonly amount: number,
    readonly description: string | null,
    /** Null: the configured default. */
    readonly expiresInSeconds: number | null,
    readonly context: CommandContext,
    /** The caller's metadata, kept with the hold (a settle without its own takes it); null: none. */
    readonly metadata: Metadata | null = null,
  ) {
    super();
  }
}

@CommandHandler(HoldTokensCommand)
export class HoldTokensHandler implements ICommandHandler<HoldTokensCommand> {
  constructor(
    private readonly commands: CommandHandling,
    private readonly consistency: ReadModelConsistency,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId, amount, description, expiresInSeconds, context, metadata }: HoldTokensCommand): Promise<HoldResult> {
    const now = nowOf(this.options);
    const ttlSeconds = expiresInSeconds ?? this.options.holdTtlSecondsDefault;
    const data = { userId, holdId: randomUUID(), amount, description, metadata, ttlSeconds, ttlSecondsMax: this.options.holdTtlSecondsMax, transactionId: randomUUID(), now };
    const command = { type: 'HoldTokens', data } as const;
    const handled = await this.commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccountWithState(command, state), metadata: eventMetadata(context), idempotency: context.idempotency });
    // A replayed request's hold is the one its first attempt recorded.
    const held = handled.events.find((event): event is TokensHeld => event.type === 'TokensHeld');
    invariant(held !== undefined, 'HoldTokens appended no TokensHeld event');
    const { holdId, expiresAt } = held.data;
    return { userId, holdId, amount: held.data.amount, description: held.data.description, expiresAt, metadata: held.data.metadata ?? null, ...(await totalsAfter(userId, handled, this.commands)), ...(await writeTrace(handled, this.consistency)) };
  }
}
