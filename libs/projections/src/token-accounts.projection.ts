import { formatPosition, type RecordedEvent } from '@app/event-store';
import { TOKEN_ACCOUNT_EVENT_TYPES, type TokenAccountEvent } from '@app/ledger';
import { projectPaymentEvent } from './payments.projection.js';
import type { Projection, RowChange } from './projection.js';
import { TOKEN_ACCOUNTS_INLINE_COMMITS, tokenAccountsAccountRows, tokenAccountsBulkLoad } from './token-accounts.bulk.js';

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

type TransactionType = 'purchase' | 'usage' | 'refund' | 'adjustment';

/**
 * `user_tokens` and `token_transactions`. Every value comes from the event (time included), so a
 * rebuild produces exactly the rows of the incremental build.
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
        return transaction(recorded, event.data, 'purchase', event.data.amount, event.data.paymentId);
      case 'TokensUsed':
        return transaction(recorded, event.data, 'usage', -event.data.amount, null);
      case 'TokensRefunded':
        return transaction(recorded, event.data, 'refund', -event.data.amount, event.data.paymentId);
      case 'TokensAdjusted':
        // The only signed event amount; the reason is the row's description.
        return transaction(recorded, { ...event.data, description: event.data.reason }, 'adjustment', event.data.amount, null);
      case 'PaymentInitiated':
      case 'PaymentCaptured':
      case 'PaymentFailed':
      case 'PaymentExpired':
      case 'PaymentRefunded':
        return projectPaymentEvent(recorded, event);
      default: {
        const unknown: never = event;
        throw new Error(`token_accounts cannot project ${JSON.stringify(unknown)}`);
      }
    }
  },
};

function transaction(
  recorded: RecordedEvent,
  data: { userId: string; transactionId: string; description: string | null; balanceAfter: number; occurredAt: string },
  type: TransactionType,
  signedAmount: number,
  paymentId: string | null,
): readonly RowChange[] {
  const revision = recorded.revision.toString();
  return [
    { text: UPSERT_BALANCE, values: [data.userId, data.balanceAfter, data.occurredAt, revision, formatPosition(recorded.position)] },
    {
      text: INSERT_TRANSACTION,
      values: [data.transactionId, data.userId, signedAmount, type, data.description, paymentId, data.balanceAfter, data.occurredAt, recorded.id, revision],
    },
  ];
}
