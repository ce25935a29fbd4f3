import type { Pool, PoolClient } from 'pg';
import type { EventToAppend } from '../event-store.port.js';
import type { AppendTransactionHook } from './append-transaction-hook.js';

/** One append as the SQL functions take it: `kind` is any | no_stream | stream_exists | exact. */
export type AppendRequest = {
  readonly streamId: string;
  readonly kind: string;
  readonly revision: string | null;
  readonly events: readonly EventToAppend[];
};

/** What append_to_stream and append_to_streams return for one append. */
export type AppendRow = {
  status: 'appended' | 'already_appended' | 'wrong_expected' | 'id_conflict';
  next_revision: string | null;
  actual_revision: string;
  commit_position: string | null;
  prepare_position: string | null;
  /** Set by GroupCommit: the append hook ran in the transaction that wrote these events, and committed with them. */
  hooked?: true;
};

export type GroupCommitOptions = {
  /** Batches in flight at once; an append that arrives while all are busy waits for the next batch. */
  readonly maxInFlight: number;
  /** Appends in one batch at most. */
  readonly maxAppends: number;
  /** Events in one batch at most (a larger single append still goes, alone). */
  readonly maxEvents: number;
};

/** Counters since the store was made: how well appends are grouped, and how often a batch failed. */
export type GroupCommitStats = {
  /** Transactions sent through append_to_streams. */
  readonly batches: number;
  /** Appends those transactions carried. */
  readonly appends: number;
  /** Appends retried alone because their batch failed as a whole. */
  readonly retriedAlone: number;
};

/**
 * One batch in flight: measured best on 2 cores at 32 writers (docs/benchmarks.md), since half the
 * writers then share each commit and PostgreSQL spends least CPU per append. A second slot lets one
 * slow append (thousands of events, or a row lock held by another process) not hold up the rest, at
 * the price of smaller batches.
 */
export const DEFAULT_GROUP_COMMIT_OPTIONS: GroupCommitOptions = { maxInFlight: 1, maxAppends: 128, maxEvents: 1_000 };

type Pending = {
  readonly request: AppendRequest;
  readonly resolve: (row: AppendRow) => void;
  readonly reject: (error: unknown) => void;
};

// Named, so each connection parses and plans them once.
const APPEND_ONE = { name: 'event_store_append_one', text: 'SELECT * FROM append_one($1, $2, $3, $4::uuid[], $5::text[], $6::text[], $7::text[])' };
const APPEND_CHECKED = { name: 'event_store_append_checked', text: 'SELECT * FROM append_to_stream($1, $2, $3, $4::uuid[], $5::text[], $6::text[], $7::text[])' };
const APPEND_MANY = {
  name: 'event_store_append_many',
  text: 'SELECT * FROM append_to_streams($1::text[], $2::text[], $3::bigint[], $4::int[], $5::uuid[], $6::text[], $7::text[], $8::text[])',
};
type Statement = { readonly name: string; readonly text: string };
type Queryable = Pool | PoolClient;

/**
 * Group commit for appends. An append is sent at once when fewer than `maxInFlight` batches are
 * running, so a lone writer waits for nothing; appends that arrive while every slot is busy queue up
 * and go together, in one transaction and one round trip, as soon as a slot frees. Many writers then
 * share one commit instead of paying one each, and each append still gets its own result.
 *
 * A batch of one goes through append_one, larger ones through append_to_streams. A batch that fails
 * as a whole (an event id that exists elsewhere, a deadlock with another process, a lost
 * connection) is retried one append at a time through append_to_stream, which checks every case
 * under the stream lock: a failure belongs to the append that caused it, and an append that did
 * commit before a lost connection is found again as already appended.
 */
export class GroupCommit {
  private readonly queue: Pending[] = [];
  private inFlight = 0;
  private counters = { batches: 0, appends: 0, retriedAlone: 0 };

  constructor(
    private readonly pool: Pool,
    private readonly options: GroupCommitOptions = DEFAULT_GROUP_COMMIT_OPTIONS,
    /** Work that commits in each batch's transaction, after its appends (inline projections). */
    private readonly hook?: AppendTransactionHook,
  ) {}

  append(request: AppendRequest): Promise<AppendRow> {
    return new Promise<AppendRow>((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.dispatch();
    });
  }

  stats(): GroupCommitStats {
    return { ...this.counters };
  }

  private dispatch(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.takeBatch();
      this.inFlight += 1;
      void this.run(batch).finally(() => {
        this.inFlight -= 1;
        this.dispatch();
      });
    }
  }

  private takeBatch(): Pending[] {
    const batch: Pending[] = [];
    let events = 0;
    for (const next of this.queue) {
      const count = next.request.events.length;
      if (batch.length > 0 && (batch.length >= this.options.maxAppends || events + count > this.options.maxEvents)) break;
      batch.push(next);
      events += count;
    }
    this.queue.splice(0, batch.length);
    return batch;
  }

  private async run(batch: readonly Pending[]): Promise<void> {
    let rows: readonly (AppendRow | undefined)[];
    this.counters.batches += 1;
    this.counters.appends += batch.length;
    try {
      const [only] = batch;
      rows = await this.transaction(async (db) =>
        batch.length === 1 && only !== undefined ? [await this.appendOne(db, APPEND_ONE, only.request)] : this.appendMany(db, batch.map((pending) => pending.request)),
      );
    } catch {
      this.counters.retriedAlone += batch.length;
      // One at a time, in arrival order: appends to one stream keep their order, and a database that
      // just failed a batch is not handed every one of its appends at once.
      for (const pending of batch) await this.appendAlone(pending.request).then(pending.resolve, pending.reject);
      return;
    }
    batch.forEach((pending, index) => {
      const row = rows[index];
      if (row === undefined) pending.reject(new Error(`append_to_streams returned no result for append ${index + 1}`));
      else pending.resolve(row);
    });
  }

  /** One append in a transaction of its own, checked in every case under its stream's lock. */
  private async appendAlone(request: AppendRequest): Promise<AppendRow> {
    const [row] = await this.transaction(async (db) => [await this.appendOne(db, APPEND_CHECKED, request)]);
    if (row === undefined) throw new Error('the append function returned no row');
    return row;
  }

  /**
   * Runs `append` as one transaction. Without a hook that is the append function's own statement
   * (one round trip). With one: BEGIN, the append, then the hook's statements (when anything was
   * appended) and COMMIT together: three round trips. The hook's writes commit with the events or not at all, and its failure fails every append of the
   * transaction (the caller then retries them one by one, so only the append that caused it fails).
   */
  private async transaction(append: (db: Queryable) => Promise<(AppendRow | undefined)[]>): Promise<readonly (AppendRow | undefined)[]> {
    const hook = this.hook;
    if (hook === undefined) return append(this.pool);
    const client = await this.pool.connect();
    let broken: Error | undefined;
    // A connection lost mid-transaction also emits 'error' on the client; unheard, that would end the process.
    const onError = (error: Error) => (broken = error);
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const rows = await append(client);
      const appended = rows.filter((row) => row?.status === 'appended');
      const transactionId = appended[0]?.commit_position;
      if (transactionId === undefined || transactionId === null) {
        await client.query('COMMIT');
        return rows;
      }
      // The hook's statements and the COMMIT in one round trip: a failing statement skips the COMMIT.
      await client.query(`${hook.statementsAfterAppend(BigInt(transactionId))};\nCOMMIT`);
      for (const row of appended) if (row !== undefined) row.hooked = true;
      return rows;
    } catch (error) {
      // A connection that cannot even roll back is dropped, not handed back to the pool.
      await client.query('ROLLBACK').catch((rollbackError: unknown) => (broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError))));
      throw error;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  private async appendMany(db: Queryable, requests: readonly AppendRequest[]): Promise<(AppendRow | undefined)[]> {
    const events = requests.flatMap((request) => request.events);
    const result = await db.query<AppendRow & { request: number }>({
      ...APPEND_MANY,
      values: [
        requests.map((request) => request.streamId),
        requests.map((request) => request.kind),
        requests.map((request) => request.revision),
        requests.map((request) => request.events.length),
        events.map((event) => event.id),
        events.map((event) => event.type),
        events.map((event) => JSON.stringify(event.data)),
        events.map((event) => JSON.stringify(event.metadata ?? {})),
      ],
    });
    const rows: (AppendRow | undefined)[] = requests.map(() => undefined);
    for (const row of result.rows) rows[row.request - 1] = row;
    return rows;
  }

  private async appendOne(db: Queryable, statement: Statement, request: AppendRequest): Promise<AppendRow> {
    const { events } = request;
    const result = await db.query<AppendRow>({
      ...statement,
      values: [
        request.streamId,
        request.kind,
        request.revision,
        events.map((event) => event.id),
        events.map((event) => event.type),
        events.map((event) => JSON.stringify(event.data)),
        events.map((event) => JSON.stringify(event.metadata ?? {})),
      ],
    });
    const row = result.rows[0];
    if (row === undefined) throw new Error('the append function returned no row');
    return row;
  }
}
