import { randomUUID } from 'node:crypto';
import { Inject } from '@nestjs/common';
import { PG_POOL } from '@app/database';
import type { Pool } from 'pg';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { decideTokenAccountWithState, invariant, tokenAccountDecider, tokenAccountStreamId, type HoldReleased } from '@app/ledger';
import { CommandHandling, eventMetadata, ReadModelConsistency, type CommandContext } from '@app/event-sourcing';
import { nowOf, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from '../token-accounts.options.js';
import { refusalOfEndedHold, totalsAfter, writeTrace, type AccountTotals, type WriteTrace } from './hold.view.js';

export type ReleaseResult = AccountTotals & WriteTrace & { readonly userId: string; readonly holdId: string; readonly releasedAmount: number };

/** Gives a hold's tokens back to the available balance; HOLD_NOT_ACTIVE once it ended. */
export class ReleaseHoldCommand extends Command<ReleaseResult> {
  constructor(
    readonly userId: string,
    readonly holdId: string,
    readonly context: CommandContext,
  ) {
    super();
  }
}

@CommandHandler(ReleaseHoldCommand)
export class ReleaseHoldHandler implements ICommandHandler<ReleaseHoldCommand> {
  constructor(
    private readonly commands: CommandHandling,
    private readonly consistency: ReadModelConsistency,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId, holdId, context }: ReleaseHoldCommand): Promise<ReleaseResult> {
    const now = nowOf(this.options);
    const command = { type: 'ReleaseHold', data: { userId, holdId, transactionId: randomUUID(), now } } as const;
    const handled = await this.commands
      .handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccountWithState(command, state), metadata: eventMetadata(context), idempotency: context.idempotency })
      .catch((error: unknown) => refusalOfEndedHold(this.pool, error, userId, holdId));
    const released = handled.events.find((event): event is HoldReleased => event.type === 'HoldReleased');
    invariant(released !== undefined, 'ReleaseHold appended no HoldReleased event');
    return { userId, holdId: released.data.holdId, releasedAmount: released.data.amount, ...(await totalsAfter(userId, handled, this.commands)), ...(await writeTrace(handled, this.consistency)) };
  }
}
