import type { PoolClient } from 'pg';

/**
 * Work that must commit in the same transaction as appended events, offered only by the PostgreSQL
 * adapter (events and read models in one database). The projection engine installs one to apply
 * its inline projections, so a command's events and the rows they produce commit together.
 */
export interface AppendTransactionHook {
  /**
   * Called once per transaction that appended events, before it commits, on that transaction's
   * connection. `transactionId` is the commit part of every position appended in it: the events of
   * this transaction are exactly `events.transaction_id = transactionId`. A throw rolls back every
   * append of the transaction.
   */
  afterAppend(client: PoolClient, transactionId: bigint): Promise<void>;
}
