import { randomUUID } from 'node:crypto';
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { PG_POOL } from '@app/database';
import {
  decideTokenAccountWithState,
  GRANT_PRIORITY_DEFAULT,
  invariant,
  LedgerError,
  tokenAccountDecider,
  tokenAccountStreamId,
  voidOfLotWithoutTokens,
  type GrantVoided,
  type RecordedLot,
  type TokensGranted,
} from '@app/ledger';
import { transactionOf, type TransactionView } from '@app/projections';
import { CommandHandling, eventMetadata, ReadModelConsistency, type CommandContext } from '@app/event-sourcing';
import type { Pool } from 'pg';
import { nowOf, TOKEN_ACCOUNTS_OPTIONS, type TokenAccountsOptions } from '../token-accounts.options.js';
import { totalsAfter, writeTrace, type AccountTotals, type WriteTrace } from '../holds/hold.view.js';

export type LotWriteResult = AccountTotals & WriteTrace & { readonly userId: string; readonly lotId: string; readonly transaction: TransactionView };

/** An admin's promotional grant: a lot of its own, by default spent before paid credit, optionally expiring. */
export class GrantTokensCommand extends Command<LotWriteResult> {
  constructor(
    readonly userId: string,
    readonly amount: number,
    readonly reason: string,
    readonly expiresAt: Date | null,
    /** Null: GRANT_PRIORITY_DEFAULT. */
    readonly priority: number | null,
    readonly context: CommandContext,
  ) {
    super();
  }
}

/** Takes back what is left of a grant, with a reason. */
export class VoidGrantCommand extends Command<LotWriteResult> {
  constructor(
    readonly userId: string,
    readonly lotId: string,
    readonly reason: string,
    readonly context: CommandContext,
  ) {
    super();
  }
}

@CommandHandler(GrantTokensCommand)
export class GrantTokensHandler implements ICommandHandler<GrantTokensCommand> {
  constructor(
    private readonly commands: CommandHandling,
    private readonly consistency: ReadModelConsistency,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId, amount, reason, expiresAt, priority, context }: GrantTokensCommand): Promise<LotWriteResult> {
    const now = nowOf(this.options);
    const data = { userId, amount, reason, expiresAt, priority: priority ?? GRANT_PRIORITY_DEFAULT, transactionId: randomUUID(), now };
    const command = { type: 'GrantTokens', data } as const;
    const handled = await this.commands.handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccountWithState(command, state), metadata: eventMetadata(context), idempotency: context.idempotency });
    const granted = handled.events.find((event): event is TokensGranted => event.type === 'TokensGranted');
    invariant(granted !== undefined, 'GrantTokens appended no TokensGranted event');
    return { userId, lotId: granted.data.lot.lotId, transaction: transactionOf(granted), ...(await totalsAfter(userId, handled, this.commands)), ...(await writeTrace(handled, this.consistency)) };
  }
}

/** The lot as the account's lot list records it; none for a lot the account never had. */
export const RECORDED_LOT_SQL = 'SELECT source, status FROM token_lots WHERE user_id = $1 AND lot_id = $2';

@CommandHandler(VoidGrantCommand)
export class VoidGrantHandler implements ICommandHandler<VoidGrantCommand> {
  constructor(
    private readonly commands: CommandHandling,
    private readonly consistency: ReadModelConsistency,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(TOKEN_ACCOUNTS_OPTIONS) private readonly options: TokenAccountsOptions,
  ) {}

  async execute({ userId, lotId, reason, context }: VoidGrantCommand): Promise<LotWriteResult> {
    const now = nowOf(this.options);
    const command = { type: 'VoidGrant', data: { userId, lotId, reason, transactionId: randomUUID(), now } } as const;
    const handled = await this.commands
      .handle({ streamId: tokenAccountStreamId(userId), decider: tokenAccountDecider, decide: (state) => decideTokenAccountWithState(command, state), metadata: eventMetadata(context), idempotency: context.idempotency })
      .catch(async (error: unknown) => {
        // Ended lots leave the folded state, so the decider cannot tell a grant spent or expired from
        // an id the account never had; the lot list can (written in the append's transaction, so it
        // shows every event the refusal was decided on).
        if (!(error instanceof LedgerError && error.code === 'LOT_NOT_FOUND')) throw error;
        throw voidOfLotWithoutTokens(lotId, await this.recordedLot(userId, lotId));
      });
    const voided = handled.events.find((event): event is GrantVoided => event.type === 'GrantVoided');
    invariant(voided !== undefined, 'VoidGrant appended no GrantVoided event');
    return { userId, lotId: voided.data.lotId, transaction: transactionOf(voided), ...(await totalsAfter(userId, handled, this.commands)), ...(await writeTrace(handled, this.consistency)) };
  }

  private async recordedLot(userId: string, lotId: string): Promise<RecordedLot | undefined> {
    const result = await this.pool.query<RecordedLot>(RECORDED_LOT_SQL, [userId, lotId]);
    return result.rows[0];
  }
}
