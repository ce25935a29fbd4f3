import { formatPosition, type RecordedEvent } from '@app/event-store';
import { TOKEN_ACCOUNT_EVENT_TYPES, type TokenAccountEvent } from '@app/ledger';
import { projectPaymentEvent } from './payments.projection.js';
import type { Projection, RowChange } from '../../projection.js';
import { TOKEN_ACCOUNTS_INLINE_COMMITS, tokenAccountsAccountRows, tokenAccountsBulkLoad } from './token-accounts.bulk.js';
import { transactionOf, type TransactionView } from './token-transaction.view.js';

export const TOKEN_ACCOUNTS_PROJECTION = 'token_accounts';

const UPSERT_BALANCE = `
  INSERT INTO user_tokens (user_id, balance, transaction_count, created_at, updated_at, last_event_revision, last_event_position)
  VALUES ($1, $2, 1, $3, $3, $4, $5)
  ON CONFLICT (user_id) DO UPDATE SET
    balance = excluded.balance,
    transaction_count = user_tokens.transaction_count + 1,
    updated_at = excluded.updated_at,
    last_event_revision = excluded.last_event_revision,
    last_event_position = excluded.last_event_position`;

const INSERT_TRANSACTION = `
  INSERT INTO token_transactions (id, user_id, amount, transaction_type, description, payment_id, balance_after, created_at, event_id, stream_revision)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`;

/**
 * `user_tokens`, `token_transactions` (the row is `transactionOf` the event) and `payments`. Every
 * value comes from the event (time included), so a rebuild produces exactly the rows of the
 * incremental build.
 */
export const tokenAccountsProjection: Projection = {
  name: TOKEN_ACCOUNTS_PROJECTION,
  tables: ['user_tokens', 'token_transactions', 'payments', TOKEN_ACCOUNTS_INLINE_COMMITS],
  bulkLoad: tokenAccountsBulkLoad,
  accountRows: tokenAccountsAccountRows,
  project(recorded: RecordedEvent): readonly RowChange[] {
    if (!TOKEN_ACCOUNT_EVENT_TYPES.has(recorded.type)) return [];
    const event = { type: recorded.type, data: recorded.data } as TokenAccountEvent;
    switch (event.type) {
      case 'TokensPurchased':
      case 'TokensUsed':
      case 'TokensRefunded':
      case 'TokensAdjusted':
        return transactionChanges(recorded, transactionOf(event));
      case 'PaymentInitiated':
      case 'PaymentCaptured':
      case 'PaymentFailed':
      case 'PaymentExpired':
      case 'PaymentRefundRequested':
      case 'PaymentRefunded':
        return projectPaymentEvent(recorded, event);
      default: {
        const unknown: never = event;
        throw new Error(`token_accounts cannot project ${JSON.stringify(unknown)}`);
      }
    }
  },
};

/** The row of the transaction, and the balance it leaves. */
function transactionChanges(recorded: RecordedEvent, transaction: TransactionView): readonly RowChange[] {
  const revision = recorded.revision.toString();
  const { id, userId, amount, transactionType, description, paymentId, balanceAfter, createdAt } = transaction;
  return [
    { text: UPSERT_BALANCE, values: [userId, balanceAfter, createdAt, revision, formatPosition(recorded.position)] },
    { text: INSERT_TRANSACTION, values: [id, userId, amount, transactionType, description, paymentId, balanceAfter, createdAt, recorded.id, revision] },
  ];
}
