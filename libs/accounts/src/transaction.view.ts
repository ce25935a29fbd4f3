export type TransactionType = 'purchase' | 'usage' | 'refund' | 'adjustment';

/** A `token_transactions` row as the API shows it. `amount` is signed: negative for usage. */
export type TransactionView = {
  readonly id: string;
  readonly userId: string;
  readonly amount: number;
  readonly transactionType: TransactionType;
  readonly description: string | null;
  readonly paymentId: string | null;
  readonly balanceAfter: number;
  readonly createdAt: string;
};

/** What a write returns: the decided outcome, and whether the read models already show it. */
export type LedgerWriteResult = {
  readonly userId: string;
  readonly balance: number;
  readonly transaction: TransactionView;
  /** `$all` position of the write, as `commit/prepare`. */
  readonly position: string | null;
  readonly readModelUpToDate: boolean;
};
