import { randomUUID } from 'node:crypto';
import { Inject } from '@nestjs/common';
import { Command, CommandHandler, type ICommandHandler } from '@nestjs/cqrs';
import { decideTokenAccountWithState, invariant, shortfallCoverTransactionId, tokenAccountDecider, tokenAccountStreamId, type TokenAccountState } from '@app/ledger';
import { PG_POOL } from '@app/database';
import { EVENT_STORE, type EventStore, type RecordedEvent } from '@app/event-store';
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
    @Inject(EVENT_STORE) private readonly store: EventStore,
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
    return ledgerWriteResult(transaction, handled, this.consistency, await firstAnswersBalance(this.store, this.pool, userId, paymentId, transaction));
  }
}

/**
 * The balance a purchase's first answer gave, for a repeat (which decided nothing): its row's, less
 * the shortfall of lost disputes it paid off in the same decision (ADR 0024), the `ShortfallCovered`
 * right after its `TokensPurchased`, whose transaction id is derived from the purchase's. Read from
 * the stream's end backwards, `reach.page` events a read, as a retry comes soon after its purchase;
 * past `reach.events`, from the history, whose row for the cover any read model has long since written.
 */
export async function firstAnswersBalance(
  store: EventStore,
  pool: Pool,
  userId: string,
  paymentId: string,
  purchase: TransactionView,
  reach: { readonly events: number; readonly page: number } = { events: REPEAT_LOOKBACK_EVENTS_MAX, page: REPEAT_LOOKBACK_PAGE },
): Promise<number> {
  const coverId = shortfallCoverTransactionId(purchase.id);
  const streamId = tokenAccountStreamId(userId);
  let next: RecordedEvent | undefined;
  let fromRevision: bigint | undefined;
  for (let read = 0; read < reach.events; ) {
    const maxCount = Math.min(reach.page, reach.events - read);
    const page = await store.readStream(streamId, { direction: 'backwards', maxCount, ...(fromRevision === undefined ? {} : { fromRevision }) });
    for (const event of page) {
      if (event.type === 'TokensPurchased' && (event.data as { paymentId?: unknown }).paymentId === paymentId) {
        const cover = next?.type === 'ShortfallCovered' ? (next.data as { transactionId?: unknown; balanceAfter?: unknown }) : undefined;
        return cover?.transactionId === coverId && typeof cover.balanceAfter === 'number' ? cover.balanceAfter : purchase.balanceAfter;
      }
      next = event;
    }
    const oldest = page.at(-1);
    if (oldest === undefined || oldest.revision === 0n || page.length < maxCount) break;
    read += page.length;
    fromRevision = oldest.revision - 1n;
  }
  const { rows } = await pool.query<{ balance_after: string }>(COVER_BALANCE_SQL, [coverId, userId]);
  return rows[0] === undefined ? purchase.balanceAfter : Number(rows[0].balance_after);
}

/** How many of the stream's newest events a repeated purchase reads for its first answer's balance (`firstAnswersBalance`), and a page of them. */
export const REPEAT_LOOKBACK_EVENTS_MAX = 10_000;
const REPEAT_LOOKBACK_PAGE = 500;

/** The balance after the shortfall cover of this id, on this account (no row: the purchase covered none). */
const COVER_BALANCE_SQL = "SELECT balance_after FROM token_transactions WHERE id = $1 AND user_id = $2 AND transaction_type = 'chargeback'";
