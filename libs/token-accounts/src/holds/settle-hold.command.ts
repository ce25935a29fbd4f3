import { randomUUID } from 'node:crypto';
import { Inject } from '@nestjs/common';
import { PG_POOL } from '@app/database';
import type { Pool } from 'pg';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { decideTokenAccountWithState, invariant, tokenAccountDecider, tokenAccountStreamId, type HoldSettled, type Metadata } from '@app/ledger';
import { transactionOf, type TransactionView } from '@app/projections';
import { CommandHandling, eventMetadata, ReadModelConsistency, type CommandContext } from '@app/event-sourcing';
import { nowOf, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from '../token-accounts.options.js';
import { refusalOfEndedHold, totalsAfter, writeTrace, type AccountTotals, type WriteTrace } from './hold.view.js';

export type SettleResult = AccountTotals &
  WriteTrace & { readonly userId: string; readonly holdId: string; readonly settledAmount: number; readonly releasedAmount: number; readonly transaction: TransactionView };

/**
 * Debits the actual cost of held work (a `usage` linked to the hold) and releases the rest, in one
 * append; refused with SETTLE_EXCEEDS_HOLD above the held amount, HOLD_NOT_ACTIVE once it ended.
 */
export class SettleHoldCommand extends Command<SettleResult> {
  constructor(
    readonly userId: string,
    readonly holdId: string,
    readonly amount: number,
    readonly description: string | null,
    readonly context: CommandContext,
    /** The usage's metadata; null takes the hold's. */
    readonly metadata: Metadata | null = null,
  ) {
    super();
  }
}

@CommandHandler(SettleHoldCommand)
export class SettleHoldHandler implements ICommandHandler<SettleHoldCommand> {
  constructor(
    private readonly commands: CommandHandling,
    private readonly consistency: ReadModelConsistency,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId, holdId, amount, description, context, metadata }: SettleHoldCommand): Promise<SettleResult> {
    const now = nowOf(this.options);
    const command = { type: 'SettleHold', data: { userId, holdId, amount, description, metadata, transactionId: randomUUID(), now } } as const;
    const handled = await this.commands
      .handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccountWithState(command, state), metadata: eventMetadata(context), idempotency: context.idempotency })
      .catch((error: unknown) => refusalOfEndedHold(this.pool, error, userId, holdId));
    const settled = handled.events.find((event): event is HoldSettled => event.type === 'HoldSettled');
    invariant(settled !== undefined, 'SettleHold appended no HoldSettled event');
    // Null only for a settle written before ADR 0028 (its TokensUsed made the row), which a replay of
    // an Idempotency-Key may return.
    const transaction = transactionOf(settled) ?? handled.events.map((event) => transactionOf(event)).find((row) => row?.holdId === settled.data.holdId);
    invariant(transaction !== undefined && transaction !== null, 'SettleHold appended no usage');
    return {
      userId,
      holdId: settled.data.holdId,
      settledAmount: settled.data.settledAmount,
      releasedAmount: settled.data.releasedAmount,
      transaction,
      ...(await totalsAfter(userId, handled, this.commands)),
      ...(await writeTrace(handled, this.consistency)),
    };
  }
}
