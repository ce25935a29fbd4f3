import type { AppendTransactionHook, RecordedEvent } from '@app/event-store';
import type { ClientBase } from 'pg';
import type { InlineApplication, Projection } from './projection.js';

type Inline = { readonly name: string; readonly tables: readonly string[]; readonly inline: InlineApplication };

/** The projections of `projections` that are applied inline. */
export function inlineProjections(projections: readonly Projection[]): readonly Inline[] {
  const inline: Inline[] = [];
  for (const projection of projections) {
    const application = projection.bulkLoad?.inline;
    if (application === undefined) continue;
    if (!projection.tables.includes(application.appliedTransactions)) {
      throw new Error(`projection ${projection.name} applies inline but does not declare ${application.appliedTransactions} among its tables`);
    }
    // A rebuild's swap carries the transactions applied inline over with these statements.
    if (projection.bulkLoad?.ofEvents === undefined) throw new Error(`projection ${projection.name} applies inline but has no ofEvents`);
    inline.push({ name: projection.name, tables: projection.tables, inline: application });
  }
  return inline;
}

/**
 * Applies the inline projections in the transaction that appends the events (the PostgreSQL store's
 * append hook): their row changes and the record that this transaction applied them commit with the
 * events, or none of it does. No round trip of its own: the store's append functions execute these
 * statements in the statement that appends (ADR 0002); they need no parameters, since each names
 * the transaction as `pg_current_xact_id()`.
 */
export class InlineProjections implements AppendTransactionHook {
  private readonly projections: readonly Inline[];

  constructor(projections: readonly Projection[]) {
    this.projections = inlineProjections(projections);
  }

  /** The projections this hook applies. */
  get names(): readonly string[] {
    return this.projections.map((projection) => projection.name);
  }

  statementsAfterAppend(): string {
    // A statement that does nothing keeps the text valid when no projection applies inline.
    if (this.projections.length === 0) return 'SELECT 1';
    return this.projections
      .map((projection) => (projection.inline.function === undefined ? this.statementsOf(projection, CURRENT_TRANSACTION).join(';\n') : `SELECT ${projection.inline.function}()`))
      .join(';\n');
  }

  /**
   * Every statement of one transaction's application, in order: for each projection, its tables
   * locked in their declared order (the order a rebuild's swap locks them in, so the two never
   * wait on each other in a cycle), its rows, then its record. `transaction` is an SQL expression
   * of type xid8 naming the transaction whose events are applied.
   */
  statements(transaction: string): readonly string[] {
    return this.projections.flatMap((projection) => this.statementsOf(projection, transaction));
  }

  private statementsOf({ tables, inline }: Inline, transaction: string): readonly string[] {
    return [
      `LOCK TABLE ${tables.join(', ')} IN ROW EXCLUSIVE MODE`,
      ...inline.statements(transaction),
      `INSERT INTO ${inline.appliedTransactions} (transaction_id) VALUES (${transaction})`,
    ];
  }
}

/**
 * The planner settings the inline function runs with (its `SET` clauses; migration 124). Its
 * statements join one transaction's events (a group commit: a few to 1,000) to the rows they change,
 * and the planner cannot know that few: `transaction_id = pg_current_xact_id()` is estimated from the
 * column's statistics, and each `jsonb_array_elements` at 100 rows, so it chose hash joins that read
 * all of `token_lots` (and `payments`, `user_tokens`) once per batch: 0.7 ms a batch at 1,000 lots,
 * growing with the table (measured with pg_stat_statements during `npm run bench:http`). Without hash
 * and merge joins every join is a nested loop on the written table's key. And the function keeps its
 * plans for the life of a connection: made while a table was analyzed empty (after a rebuild, on a
 * new deployment) they read it whole by a sequential scan, and went on doing so as it filled
 * (migration 125): no statement here needs one. A migration that replaces the function must repeat
 * these clauses; the inline-projections spec fails otherwise.
 */
export const INLINE_FUNCTION_SETTINGS: Readonly<Record<string, string>> = { enable_hashjoin: 'off', enable_mergejoin: 'off', enable_seqscan: 'off' };

/**
 * The same settings for the rest of the caller's transaction (`SET LOCAL`), wherever else the merge
 * statements run on a bounded set of events: the runner's set-based batches, a rebuild's catch-up
 * steps and swap, one account's recompute. The planner misjudges them as it did the function's: each
 * debit's `jsonb_array_elements` counts as 100 draws, so a 5,000-event catch-up step over a history of
 * 1,000,000 events and 500,000 lots hashed every lot to debit 1,231 of them (1.06 s of the step's
 * 1.9 s; 0.15 s by key). A rebuild's load, which builds whole tables without indexes, does not take them.
 */
export const KEYED_PLANS = Object.entries(INLINE_FUNCTION_SETTINGS)
  .map(([name, value]) => `SET LOCAL ${name} = ${value}`)
  .join('; ');

/** The transaction running the statements: stable within it, so an index condition on it is usable. */
export const CURRENT_TRANSACTION = 'pg_current_xact_id()';

/**
 * The events of `batch` whose transactions `table` (an applied-transactions table, as the session
 * resolves it) does not list: those no inline application or swap carry-over put in the tables yet.
 * The live runner filters its batches through it, and a rebuild its event-by-event steps.
 */
export async function eventsNotAppliedInline(client: ClientBase, table: string, batch: readonly RecordedEvent[]): Promise<readonly RecordedEvent[]> {
  const transactions = [...new Set(batch.map((event) => event.position.commit.toString()))];
  const result = await client.query<{ transaction_id: string }>(`SELECT transaction_id::text FROM ${table} WHERE transaction_id = ANY($1::xid8[])`, [transactions]);
  const applied = new Set(result.rows.map((row) => row.transaction_id));
  return applied.size === 0 ? batch : batch.filter((event) => !applied.has(event.position.commit.toString()));
}
