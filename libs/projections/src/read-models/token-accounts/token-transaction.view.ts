import { isSettleWithDebit, type Draw, type GrantVoided, type LotExpired, type Metadata, type ShortfallCovered, type TokenAccountEvent, type TokensAdjusted, type TokensChargedBack, type TokensGranted, type TokensPurchased, type TokensRefunded, type TokensUsed } from '@app/ledger';

/** `chargeback`: tokens a lost payment dispute took back, at once or later by paying off the shortfall (ADR 0024). */
export type TransactionType = 'purchase' | 'usage' | 'refund' | 'adjustment' | 'expiry' | 'chargeback';

/** A `token_transactions` row as the API shows it. `amount` is signed: negative for usage and refunds. */
export type TransactionView = {
  readonly id: string;
  readonly userId: string;
  readonly amount: number;
  readonly transactionType: TransactionType;
  readonly description: string | null;
  readonly paymentId: string | null;
  readonly balanceAfter: number;
  readonly createdAt: string;
  /** The hold a usage settled. */
  readonly holdId: string | null;
  /** The lot a credit created (null for a credit written before lots). */
  readonly lotId: string | null;
  /** The lots a debit drew from (null for a debit written before lots: the opening lot). */
  readonly draws: readonly Draw[] | null;
  /** The caller's metadata of a usage (its settle's, else its hold's); null for every other row and a usage without. */
  readonly metadata: Metadata | null;
};

/**
 * The token account events that always make a transaction row. Of the others, a `HoldSettled` makes a
 * `usage` row since ADR 0028 (before, its `TokensUsed` did); payment lifecycle and other hold events make none.
 */
export type TransactionEvent = TokensPurchased | TokensUsed | TokensRefunded | TokensAdjusted | TokensGranted | GrantVoided | LotExpired | TokensChargedBack | ShortfallCovered;

/** What an expiry row says, in `transactionOf` and its SQL twin alike. */
export function lotExpiredDescription(lotId: string): string {
  return `Credit lot ${lotId} expired`;
}

/**
 * The one rule from an event to its `token_transactions` row, or null for an event that makes no
 * row. The projection writes it (`tokenAccountsProjection.project`), the verification replay shows
 * it, and the command handlers answer with it, so a response, a replay and the read model cannot
 * disagree. Every value comes from the event, time included.
 *
 * Its SQL twin is `insertTransactions` in token-accounts.bulk.ts. The rebuild specs prove the two
 * equal for every event type: projection-rebuild.spec.ts ("rebuilds payments in every state
 * set-based, identically to the incremental build" and "merges later ranges of payment events
 * set-based (the delta) at many cut points") compare every row the SQL writes with the rows of an
 * incremental build through `project`, over histories with purchases, usage, refunds and
 * adjustments both ways.
 */
export function transactionOf(event: TransactionEvent): TransactionView;
export function transactionOf(event: TokenAccountEvent): TransactionView | null;
export function transactionOf(event: TokenAccountEvent): TransactionView | null {
  switch (event.type) {
    case 'TokensPurchased':
      return row(event.data, { amount: event.data.amount, transactionType: 'purchase', description: event.data.description, paymentId: event.data.paymentId });
    case 'TokensUsed':
      return row(event.data, { amount: -event.data.amount, transactionType: 'usage', description: event.data.description, paymentId: null });
    case 'TokensRefunded':
      return row(event.data, { amount: -event.data.amount, transactionType: 'refund', description: event.data.description, paymentId: event.data.paymentId });
    case 'TokensAdjusted':
      // The only signed event amount; the reason is the row's description.
      return row(event.data, { amount: event.data.amount, transactionType: 'adjustment', description: event.data.reason, paymentId: null });
    case 'TokensGranted':
      return row(event.data, { amount: event.data.amount, transactionType: 'adjustment', description: event.data.reason, paymentId: null });
    case 'GrantVoided':
      return row(event.data, { amount: -event.data.amount, transactionType: 'adjustment', description: event.data.reason, paymentId: null });
    case 'LotExpired':
      return row(event.data, { amount: -event.data.amount, transactionType: 'expiry', description: lotExpiredDescription(event.data.lotId), paymentId: null });
    case 'TokensChargedBack':
      return row(event.data, { amount: -event.data.amount, transactionType: 'chargeback', description: event.data.description, paymentId: event.data.paymentId });
    case 'ShortfallCovered':
      return row(event.data, { amount: -event.data.amount, transactionType: 'chargeback', description: event.data.description, paymentId: null });
    case 'HoldSettled': {
      const { data } = event;
      if (!isSettleWithDebit(data)) return null;
      return row(data, { amount: -data.settledAmount, transactionType: 'usage', description: data.description ?? null, paymentId: null });
    }
    case 'PaymentDisputeOpened':
    case 'PaymentDisputeClosed':
    case 'TokensHeld':
    case 'HoldReleased':
    case 'HoldExpired':
    case 'PaymentInitiated':
    case 'PaymentCaptured':
    case 'PaymentFailed':
    case 'PaymentExpired':
    case 'PaymentRefundRequested':
    case 'PaymentRefundFailed':
    case 'PaymentRefunded':
      return null;
    default: {
      const unknown: never = event;
      throw new Error(`unknown token account event ${JSON.stringify(unknown)}`);
    }
  }
}

type RowData = {
  readonly transactionId: string;
  readonly userId: string;
  readonly balanceAfter: number;
  readonly occurredAt: string;
  readonly holdId?: string;
  readonly lot?: { readonly lotId: string };
  readonly draws?: readonly Draw[];
  readonly metadata?: Metadata;
};
type RowMovement = Pick<TransactionView, 'amount' | 'transactionType' | 'description' | 'paymentId'>;

function row(data: RowData, movement: RowMovement): TransactionView {
  return {
    id: data.transactionId,
    userId: data.userId,
    amount: movement.amount,
    transactionType: movement.transactionType,
    description: movement.description,
    paymentId: movement.paymentId,
    balanceAfter: data.balanceAfter,
    createdAt: data.occurredAt,
    holdId: data.holdId ?? null,
    lotId: data.lot?.lotId ?? null,
    draws: data.draws ?? null,
    metadata: data.metadata ?? null,
  };
}
