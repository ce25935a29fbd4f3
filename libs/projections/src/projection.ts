import type { RecordedEvent } from '@app/event-store';

/** One parameterised statement; projections return these and the runner executes them. */
export type RowChange = { readonly text: string; readonly values: readonly unknown[] };

/**
 * A projection is a pure function from a recorded event to row changes. The runner applies the
 * changes of a batch and the projection's checkpoint in one transaction.
 *
 * Its SQL names its tables unqualified (`user_tokens`, not `public.user_tokens`): a rebuild runs the
 * same statements against shadow tables of the same names in another schema (search_path).
 */
export type Projection = {
  readonly name: string;
  /** The read-model tables it owns, for status and rebuilds. */
  readonly tables: readonly string[];
  project(event: RecordedEvent): readonly RowChange[];
  /** Optional: a set-based build of the tables straight from the PostgreSQL `events` table, for fast rebuilds. */
  readonly bulkLoad?: BulkLoad;
  /** Optional: the rows one account's stream produces, for per-account rebuilds. */
  readonly accountRows?: (userId: string) => AccountRows;
};

/**
 * Statements that produce exactly the rows `project` would produce for every event up to a position,
 * applied in `$all` order. Parameters: `$1` commit and `$2` prepare of the last position included
 * (text); the chunked statements also get `$3`..`$4`, an inclusive `events.global_position` range.
 * The tables have no indexes or unique constraints yet while these run.
 *
 * Each statement is a transaction of its own, and while a transaction holds a transaction id `$all`
 * shows no newer event to anyone (the live runner included): a chunked statement should be quick
 * for one chunk, and a final statement should finish its long computation before its first write
 * (PostgreSQL assigns the id at the first row written).
 */
export type BulkLoad = {
  /** The event types the statements handle; a rebuild with any other type `project` handles falls back to `project`. */
  readonly eventTypes: readonly string[];
  /** Run once per global_position range; each event belongs to exactly one range. */
  readonly chunked: readonly string[];
  /**
   * Run once after every chunk: each list in order on one session, the lists side by side on the
   * rebuild's two sessions. A statement may depend only on earlier ones of its own list, and two lists
   * must not write the same table (their row locks could wait on each other in a cycle). A table's
   * indexes are built as soon as every list that writes it is done (`tableWrittenBy`), beside the lists
   * still running: those of a table only the chunks write, at once.
   */
  readonly final: readonly (readonly string[])[];
  /**
   * Merge the events after `$1`/`$2` (exclusive) up to `$3`/`$4` (inclusive) into tables that hold
   * everything up to `$1`/`$2` and have their indexes: the rebuild's catch-up and the swap's last step.
   */
  readonly delta: readonly string[];
  /**
   * Optional: the statements that merge the rows of the events `where` selects (an SQL condition on
   * `events` that brings its own parameters) into the tables, as `delta` does for a range: one
   * account's recompute runs them on its stream's events, set-based, after deleting its rows.
   */
  readonly ofEvents?: (where: string) => readonly string[];
  /**
   * Present when the projection is applied inline: in the transaction that appends the events
   * (PostgreSQL store only), so a command's events and rows commit together.
   */
  readonly inline?: InlineApplication;
};

/**
 * How a projection applies the events of the transaction that is appending them. The statements take
 * no parameters and see only that transaction's events; the transaction's id is then recorded in
 * `appliedTransactions` (one of the projection's `tables`), and the `delta` statements and the
 * catch-up runner leave events of recorded transactions alone.
 */
export type InlineApplication = {
  readonly appliedTransactions: string;
  /** `transaction`: an SQL expression of type xid8 (`pg_current_xact_id()`, or a literal). */
  readonly statements: (transaction: string) => readonly string[];
  /**
   * A function (no arguments) whose body is `statements(pg_current_xact_id())` with the LOCK and the
   * record, installed by a migration: called instead of the statements, its plans are kept per session.
   */
  readonly function?: string;
  /**
   * A query (one row, column `id`: text or null) of the earliest committed transaction with events
   * after the transaction id `$1` that neither `liveTable` (qualified) nor the session's own
   * `appliedTransactions` table records: an append made without the inline projection. A rebuild
   * carries inline transactions over ahead of its swap only below it (ADR 0007); without this query,
   * not at all.
   */
  readonly firstUnrecordedAfter?: (liveTable: string) => string;
};

/** The stream an account's rows come from, the statements that delete them, and queries that read them (one text column, `row`). */
export type AccountRows = {
  readonly streamId: string;
  readonly clear: readonly RowChange[];
  readonly read: readonly RowChange[];
};

/**
 * The table a bulk statement writes: the name after `INSERT INTO` or `UPDATE` at its start; undefined
 * for any other statement, which a rebuild then takes to write every table.
 */
export function tableWrittenBy(statement: string): string | undefined {
  return /^\s*(?:INSERT INTO|UPDATE)\s+(\w+)/.exec(statement)?.[1];
}
