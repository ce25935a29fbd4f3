/**
 * Work that must commit in the same transaction as appended events, offered only by the PostgreSQL
 * adapter (events and read models in one database). The projection engine installs one to apply
 * its inline projections, so a command's events and the rows they produce commit together.
 */
export interface AppendTransactionHook {
  /**
   * SQL for one transaction that appended events: one or more statements without parameters, run
   * after its appends in the same round trip as its COMMIT. `transactionId` is the commit part of
   * every position appended in it: its events are exactly `events.transaction_id = transactionId`.
   * A failing statement rolls back every append of the transaction.
   */
  statementsAfterAppend(transactionId: bigint): string;
}
