/**
 * Work that must commit in the same transaction as appended events, offered only by the PostgreSQL
 * adapter (events and read models in one database). The projection engine installs one to apply
 * its inline projections, so a command's events and the rows they produce commit together.
 */
export interface AppendTransactionHook {
  /**
   * SQL the append functions execute after the appends of a transaction that appended anything, in
   * the same statement (one round trip): one or more statements without parameters, naming the
   * transaction as `pg_current_xact_id()` (its events are `events.transaction_id =
   * pg_current_xact_id()`). Asked once, when the store is made. A failing statement fails every
   * append of the transaction.
   */
  statementsAfterAppend(): string;
}
