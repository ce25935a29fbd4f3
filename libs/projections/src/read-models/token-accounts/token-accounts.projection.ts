import { formatPosition, type RecordedEvent } from '@app/event-store';
import { TOKEN_ACCOUNT_EVENT_TYPES, type TokenAccountEvent } from '@app/ledger';
import { projectDisputeEvent, projectLateRefund, projectPaymentEvent, projectShortfall } from './payments.projection.js';
import { projectHoldEvent, projectLotChanges } from './holds-and-lots.projection.js';
import type { Projection, RowChange } from '../../projection.js';
import { MERGE_BALANCE, TOKEN_ACCOUNTS_INLINE_COMMITS, tokenAccountsAccountRows, tokenAccountsBulkLoad } from './token-accounts.bulk.js';
import { transactionOf, type TransactionView } from './token-transaction.view.js';

export const TOKEN_ACCOUNTS_PROJECTION = 'token_accounts';

// $6: the held total after the event; $7: 1 for an event with a transaction row, 0 for a hold event.
const UPSERT_BALANCE = `
  INSERT INTO user_tokens (user_id, balance, transaction_count, created_at, updated_at, last_event_revision, last_event_position, held)
  VALUES ($1, $2, $7, $3, $3, $4, $5, $6)
  ${MERGE_BALANCE}`;

const INSERT_TRANSACTION = `
  INSERT INTO token_transactions (id, user_id, amount, transaction_type, description, payment_id, balance_after, created_at, event_id, stream_revision,
                                  hold_id, lot_id, draws, metadata)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14::jsonb)`;

/**
 * `user_tokens`, `token_transactions` (the row is `transactionOf` the event), `payments`,
 * `token_holds` and `token_lots`. Every
 * value comes from the event (time included), so a rebuild produces exactly the rows of the
 * incremental build.
 */
export const tokenAccountsProjection: Projection = {
  name: TOKEN_ACCOUNTS_PROJECTION,
  tables: ['user_tokens', 'token_transactions', 'payments', 'token_holds', 'token_lots', TOKEN_ACCOUNTS_INLINE_COMMITS],
  bulkLoad: tokenAccountsBulkLoad,
  accountRows: tokenAccountsAccountRows,
  project(recorded: RecordedEvent): readonly RowChange[] {
    if (!TOKEN_ACCOUNT_EVENT_TYPES.has(recorded.type)) return [];
    const event = { type: recorded.type, data: recorded.data } as TokenAccountEvent;
    switch (event.type) {
      case 'TokensRefunded':
        return [...transactionChanges(recorded, transactionOf(event), event.data.heldAfter ?? 0), ...projectLotChanges(event, recorded), ...projectLateRefund(event)];
      case 'TokensPurchased':
      case 'TokensUsed':
      case 'TokensAdjusted':
      case 'TokensGranted':
      case 'GrantVoided':
      case 'LotExpired':
      case 'TokensChargedBack':
        return [...transactionChanges(recorded, transactionOf(event), event.data.heldAfter ?? 0), ...projectLotChanges(event, recorded)];
      case 'ShortfallCovered':
        return [...transactionChanges(recorded, transactionOf(event), event.data.heldAfter), ...projectLotChanges(event, recorded), projectShortfall(event.data.userId, event.data.shortfallAfter)];
      case 'PaymentDisputeOpened':
      case 'PaymentDisputeClosed':
        return projectDisputeEvent(event);
      case 'HoldSettled': {
        // Since ADR 0028 the settle is also the usage: its row, its lot draws and the hold's end.
        const transaction = transactionOf(event);
        if (transaction === null) return [balanceChange(recorded, event.data, 0), ...projectHoldEvent(event, recorded)];
        return [...transactionChanges(recorded, transaction, event.data.heldAfter), ...projectHoldEvent(event, recorded), ...projectLotChanges(event, recorded)];
      }
      case 'TokensHeld':
      case 'HoldReleased':
      case 'HoldExpired':
        return [balanceChange(recorded, event.data, 0), ...projectHoldEvent(event, recorded)];
      case 'PaymentInitiated':
      case 'PaymentCaptured':
      case 'PaymentFailed':
      case 'PaymentExpired':
      case 'PaymentRefundRequested':
      case 'PaymentRefundFailed':
      case 'PaymentRefunded':
        return projectPaymentEvent(recorded, event);
      default: {
        const unknown: never = event;
        throw new Error(`token_accounts cannot project ${JSON.stringify(unknown)}`);
      }
    }
  },
};

/** The row of the transaction, and the balance and held total it leaves. */
function transactionChanges(recorded: RecordedEvent, transaction: TransactionView, heldAfter: number): readonly RowChange[] {
  const revision = recorded.revision.toString();
  const { id, userId, amount, transactionType, description, paymentId, balanceAfter, createdAt, holdId, lotId, draws, metadata } = transaction;
  return [
    balanceChange(recorded, { userId, balanceAfter, heldAfter, occurredAt: createdAt }, 1),
    {
      text: INSERT_TRANSACTION,
      values: [id, userId, amount, transactionType, description, paymentId, balanceAfter, createdAt, recorded.id, revision, holdId, lotId, draws === null ? null : JSON.stringify(draws),
        metadata === null ? null : JSON.stringify(metadata),
      ],
    },
  ];
}

function balanceChange(
  recorded: RecordedEvent,
  data: { readonly userId: string; readonly balanceAfter: number; readonly heldAfter: number; readonly occurredAt: string },
  transactions: 0 | 1,
): RowChange {
  const values = [data.userId, data.balanceAfter, data.occurredAt, recorded.revision.toString(), formatPosition(recorded.position), data.heldAfter, transactions];
  return { text: UPSERT_BALANCE, values };
}
