import pg, { type Pool } from 'pg';
import { AppendDeadlineExceededError, type EventToAppend } from '../event-store.port.js';
import type { AppendTransactionHook } from './append-transaction-hook.js';

/** One append as the SQL functions take it: `kind` is any | no_stream | stream_exists | exact. */
export type AppendRequest = {
  readonly streamId: string;
  readonly kind: string;
  readonly revision: string | null;
  readonly events: readonly EventToAppend[];
};

/** What the append functions return for one append: `busy` (its stream held, nothing written) is GroupCommit's to retry, never its callers'. */
type FunctionRow = Omit<AppendRow, 'status'> & { status: AppendRow['status'] | 'busy' };

/** What GroupCommit answers for one append. */
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
  /**
   * Longest a batch's statement may run: the append connections' `statement_timeout`. The client
   * gives up a little later (`query_timeout`) when the server does not answer at all, and drops that
   * connection. A batch past it fails every append in it with AppendDeadlineExceededError.
   */
  readonly deadlineMs: number;
};

/** Counters since the store was made: how well appends are grouped, and how often a batch failed. */
export type GroupCommitStats = {
  /** Transactions sent through append_to_streams. */
  readonly batches: number;
  /** Appends those transactions carried. */
  readonly appends: number;
  /** Appends retried alone because their batch failed as a whole. */
  readonly retriedAlone: number;
  /**
   * Times an append was answered busy (its stream held by a rebuild or a verification). Each time it
   * is sent again it counts in `batches` and `appends` again.
   */
  readonly busy: number;
};

/**
 * One batch in flight: measured best on 2 cores at 32 writers (docs/benchmarks.md), since half the
 * writers then share each commit and PostgreSQL spends least CPU per append. A second slot lets one
 * slow append (thousands of events, or a row lock held by another process) not hold up the rest, at
 * the price of smaller batches.
 */
export const DEFAULT_GROUP_COMMIT_OPTIONS: GroupCommitOptions = { maxInFlight: 1, maxAppends: 128, maxEvents: 1_000, deadlineMs: 5_000 };

/**
 * How much longer than the server's statement timeout the client waits for an answer: the server's
 * cancellation, when it can still answer, arrives first and says for sure that nothing committed.
 */
const CLIENT_GRACE_MS = 1_000;

/**
 * How long an append answered busy waits before it is queued again. A per-account rebuild holds its
 * stream for about 0.05 to 0.07 s per 1,000 events (0.49 s for 10,000 alone, 0.55 to 0.67 s with appends
 * beside it, 1.82 s for 40,000: docs/benchmarks.md), a verification for a fraction of a second: at
 * most 250 tries in the 5 s deadline, each costing its batch one advisory lock try.
 */
export const BUSY_RETRY_MS = 20;

/**
 * Asks the append functions to answer a held stream's append busy rather than wait for it
 * (migration 139's stream_append_busy): only a process that retries busy appends may ask.
 */
const BUSY_ANSWERS_ON = 'SET token_ledger.busy_appends = on';

/**
 * The connections appends run on, apart from the shared pool: their `statement_timeout` is the
 * append deadline, which no other query (a rebuild, a verification) should inherit. One per batch
 * slot. A connection whose query timed out on the client is released with the error, so pg-pool
 * discards it rather than hand a connection in an unknown state to the next batch.
 */
export function appendPool(connectionString: string, options: GroupCommitOptions, onError: (error: Error) => void): Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.maxInFlight,
    statement_timeout: options.deadlineMs,
    query_timeout: options.deadlineMs + CLIENT_GRACE_MS,
    connectionTimeoutMillis: options.deadlineMs,
    keepAlive: true,
    // Idle append connections never keep a process (a CLI command, a test) from exiting.
    allowExitOnIdle: true,
    application_name: 'token-ledger append',
    // Awaited by pg-pool (3.14: `_promiseTry(() => onConnect(client))`) before it hands a new
    // connection out, though @types/pg types it as returning void. Should it fail, the connection
    // is ended and the batch that asked for it fails, its appends retried alone as for any failed
    // batch.
    // eslint-disable-next-line @typescript-eslint/no-misused-promises
    onConnect: async (client) => {
      await client.query(BUSY_ANSWERS_ON);
    },
  });
  // Without listeners, a connection lost while idle or checked out would end the process; the
  // query on it fails on its own.
  pool.on('error', onError);
  pool.on('connect', (client) => client.on('error', onError));
  return pool;
}

type Pending = {
  readonly request: AppendRequest;
  /** performance.now() when the append was asked for: a busy append is sent again until the deadline from here. */
  readonly askedAt: number;
  /**
   * Set once a try of it may have committed (its batch failed without the server's answer, a lost
   * connection): a later failure of it is then reported `unknown`, never `no`.
   */
  mayHaveCommitted?: true;
  readonly resolve: (row: AppendRow) => void;
  readonly reject: (error: unknown) => void;
};

type Statement = { readonly name: string; readonly text: string };
/** An append function's call, and its `_then` twin's, which also runs the hook's SQL (the last parameter). */
type Statements = { readonly plain: Statement; readonly then: Statement };

// Named, so each connection parses and plans them once.
const APPEND_ONE: Statements = {
  plain: {
    // Stryker disable next-line StringLiteral: equivalent in behaviour; emptied, pg sends the statement unnamed and it is parsed and planned on every call (a cost, not a result).
    name: 'event_store_append_one',
    text: 'SELECT * FROM append_one($1, $2, $3, $4::uuid[], $5::text[], $6::text[], $7::text[])',
  },
  then: {
    // Stryker disable next-line StringLiteral: equivalent in behaviour, as above.
    name: 'event_store_append_one_then',
    text: 'SELECT * FROM append_one_then($1, $2, $3, $4::uuid[], $5::text[], $6::text[], $7::text[], $8)',
  },
};
const APPEND_CHECKED: Statements = {
  plain: {
    // Stryker disable next-line StringLiteral: equivalent in behaviour, as above.
    name: 'event_store_append_checked',
    text: 'SELECT * FROM append_to_stream($1, $2, $3, $4::uuid[], $5::text[], $6::text[], $7::text[])',
  },
  then: {
    // Stryker disable next-line StringLiteral: equivalent in behaviour, as above.
    name: 'event_store_append_checked_then',
    text: 'SELECT * FROM append_to_stream_then($1, $2, $3, $4::uuid[], $5::text[], $6::text[], $7::text[], $8)',
  },
};
const APPEND_MANY: Statements = {
  plain: {
    // Stryker disable next-line StringLiteral: equivalent in behaviour, as above.
    name: 'event_store_append_many',
    text: 'SELECT * FROM append_to_streams($1::text[], $2::text[], $3::bigint[], $4::int[], $5::uuid[], $6::text[], $7::text[], $8::text[])',
  },
  then: {
    // Stryker disable next-line StringLiteral: equivalent in behaviour, as above.
    name: 'event_store_append_many_then',
    text: 'SELECT * FROM append_to_streams_then($1::text[], $2::text[], $3::bigint[], $4::int[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9)',
  },
};

/**
 * Group commit for appends. An append is sent at once when fewer than `maxInFlight` batches are
 * running, so a lone writer waits for nothing; appends that arrive while every slot is busy queue up
 * and go together, in one transaction and one round trip, as soon as a slot frees. Many writers then
 * share one commit instead of paying one each, and each append still gets its own result.
 *
 * A batch of one goes through append_one, larger ones through append_to_streams; with an append
 * hook (inline projections), through their `_then` twins, which run the hook's SQL in the same
 * statement, so the batch is still one round trip and one transaction. A batch that fails
 * as a whole (an event id that exists elsewhere, a deadlock with another process, a lost
 * connection) is retried one append at a time through append_to_stream, which checks every case
 * under the stream lock: a failure belongs to the append that caused it, and an append that did
 * commit before a lost connection is found again as already appended. An append whose stream is
 * held (a per-account rebuild, a verification: `PostgresCapabilities.holdStream`) is answered busy
 * by the functions without waiting, the rest of its batch committing, and is queued again shortly.
 */
export class GroupCommit {
  private readonly queue: Pending[] = [];
  private inFlight = 0;
  private counters = { batches: 0, appends: 0, retriedAlone: 0, busy: 0 };
  /** Busy appends waiting to be queued again, with their timers. */
  private readonly resting = new Map<Pending, ReturnType<typeof setTimeout>>();
  private closed = false;
  /** The hook's SQL, run by the `_then` append functions in every batch's statement. */
  private readonly hookSql: string | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly options: GroupCommitOptions = DEFAULT_GROUP_COMMIT_OPTIONS,
    /** Work that commits in each batch's transaction, after its appends (inline projections). */
    hook?: AppendTransactionHook,
    /** Told the size of every batch as it is sent (metrics). */
    private readonly onBatch?: (appends: number) => void,
  ) {
    this.hookSql = hook?.statementsAfterAppend();
  }

  append(request: AppendRequest): Promise<AppendRow> {
    if (this.closed) return Promise.reject(new Error(`stream ${request.streamId}: the event store is closed`));
    return new Promise<AppendRow>((resolve, reject) => {
      this.queue.push({ request, askedAt: performance.now(), resolve, reject });
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
    const sentAt = performance.now();
    let rows: readonly (FunctionRow | undefined)[];
    this.counters.batches += 1;
    this.counters.appends += batch.length;
    this.onBatch?.(batch.length);
    try {
      const [only] = batch;
      rows = batch.length === 1 && only !== undefined ? [await this.appendOne(APPEND_ONE, only.request)] : await this.appendMany(batch.map((pending) => pending.request));
    } catch (error) {
      const applied = deadlineOutcome(error);
      if (applied !== undefined) {
        // Retrying the appends one by one would make each wait out the deadline again: they fail
        // together, and their callers (retryable, with the same event ids) come back later.
        for (const pending of batch) pending.reject(new AppendDeadlineExceededError(pending.request.streamId, this.options.deadlineMs, outcome(pending, applied), { cause: error }));
        return;
      }
      this.counters.retriedAlone += batch.length;
      // One at a time, in arrival order: appends to one stream keep their order, and a database that
      // just failed a batch is not handed every one of its appends at once. The retries share one
      // deadline, counted from when the batch was sent: an append not yet tried when it has passed
      // fails without being tried, and one that times out alone fails as a deadline, as in a batch,
      // not as a database error. Not tried, it was not applied if the server refused the batch (an
      // error with a SQLSTATE: the statement rolled back) or no connection could be opened; after a
      // lost connection the batch may have committed, so its outcome is unknown (a retry with the
      // same event ids finds it).
      if (mayHaveBeenSent(error)) for (const pending of batch) pending.mayHaveCommitted = true;
      for (const pending of batch) {
        const { streamId } = pending.request;
        if (performance.now() - sentAt >= this.options.deadlineMs) {
          pending.reject(new AppendDeadlineExceededError(streamId, this.options.deadlineMs, outcome(pending, 'no'), { cause: error }));
          continue;
        }
        await this.appendOne(APPEND_CHECKED, pending.request).then((row) => this.answer(pending, row), (failure: unknown) => {
          const alone = deadlineOutcome(failure);
          if (alone !== undefined) {
            pending.reject(new AppendDeadlineExceededError(streamId, this.options.deadlineMs, outcome(pending, alone), { cause: failure }));
          } else if ((pending.mayHaveCommitted === true || mayHaveBeenSent(failure)) && !isUniqueViolation(failure)) {
            // The batch or this retry may have committed before its connection was lost: the caller
            // must not read a database error as "nothing written" (a retry without the same event
            // ids would apply it twice). A unique violation says the retry found none of its ids
            // (it looks for them first, under the stream's lock), so nothing of it had committed.
            pending.reject(new AppendDeadlineExceededError(streamId, this.options.deadlineMs, 'unknown', { cause: failure }));
          } else {
            pending.reject(failure);
          }
        });
      }
      return;
    }
    batch.forEach((pending, index) => {
      const row = rows[index];
      if (row === undefined) pending.reject(new Error(`append_to_streams returned no result for append ${index + 1}`));
      else this.answer(pending, row);
    });
  }

  /**
   * Resolves the append with its row, or, when its stream was held (`busy`: nothing written), queues
   * it again after BUSY_RETRY_MS; once that would pass the deadline counted from when it was asked
   * for, it fails as not applied (unless an earlier try may have committed), as an append blocked in
   * the database for as long would. Its last try, sent just before that, may still wait behind a
   * batch in flight and then on another process's batch, each with a deadline of its own: a held
   * append can take up to about three deadlines in the worst case.
   */
  private answer(pending: Pending, row: FunctionRow): void {
    if (isAnswer(row)) {
      pending.resolve(row);
      return;
    }
    this.counters.busy += 1;
    const { streamId } = pending.request;
    if (this.closed || performance.now() + BUSY_RETRY_MS - pending.askedAt >= this.options.deadlineMs) {
      const cause = new Error(this.closed ? `stream ${streamId} was held when the event store closed` : `stream ${streamId} was held (a rebuild or a verification) for the whole append deadline`);
      pending.reject(new AppendDeadlineExceededError(streamId, this.options.deadlineMs, outcome(pending, 'no'), { cause }));
      return;
    }
    const timer = setTimeout(() => {
      this.resting.delete(pending);
      this.queue.push(pending);
      this.dispatch();
    }, BUSY_RETRY_MS);
    this.resting.set(pending, timer);
  }

  /**
   * Called when the store closes, before its connections end: fails the appends not sent yet (queued
   * behind a batch in flight, or busy and waiting to be sent again) as not applied, unless an
   * earlier try may have committed, rather than send them to connections that are ending. Batches
   * in flight finish; a busy answer they bring fails at once.
   */
  close(): void {
    this.closed = true;
    const closedOn = (pending: Pending) => {
      const { streamId } = pending.request;
      pending.reject(new AppendDeadlineExceededError(streamId, this.options.deadlineMs, outcome(pending, 'no'), { cause: new Error(`stream ${streamId}: the event store closed while the append waited to be sent`) }));
    };
    for (const [pending, timer] of this.resting) {
      clearTimeout(timer);
      closedOn(pending);
    }
    this.resting.clear();
    for (const pending of this.queue.splice(0)) closedOn(pending);
  }

  private async appendMany(requests: readonly AppendRequest[]): Promise<(FunctionRow | undefined)[]> {
    const events = requests.flatMap((request) => request.events);
    const result = await this.pool.query<FunctionRow & { request: number }>({
      ...this.statement(APPEND_MANY),
      values: [
        requests.map((request) => request.streamId),
        requests.map((request) => request.kind),
        requests.map((request) => request.revision),
        requests.map((request) => request.events.length),
        events.map((event) => event.id),
        events.map((event) => event.type),
        events.map((event) => JSON.stringify(event.data)),
        events.map((event) => JSON.stringify(event.metadata ?? {})),
        ...this.hookValues(),
      ],
    });
    const rows: (FunctionRow | undefined)[] = requests.map(() => undefined);
    for (const row of result.rows) rows[row.request - 1] = this.marked(row);
    return rows;
  }

  private async appendOne(statements: Statements, request: AppendRequest): Promise<FunctionRow> {
    const { events } = request;
    const result = await this.pool.query<FunctionRow>({
      ...this.statement(statements),
      values: [
        request.streamId,
        request.kind,
        request.revision,
        events.map((event) => event.id),
        events.map((event) => event.type),
        events.map((event) => JSON.stringify(event.data)),
        events.map((event) => JSON.stringify(event.metadata ?? {})),
        ...this.hookValues(),
      ],
    });
    const row = result.rows[0];
    if (row === undefined) throw new Error('the append function returned no row');
    return this.marked(row);
  }

  /** With a hook, the `_then` twin: the appends and the hook's SQL in one statement, one round trip, one transaction. */
  private statement(statements: Statements): Statement {
    return this.hookSql === undefined ? statements.plain : statements.then;
  }

  private hookValues(): string[] {
    return this.hookSql === undefined ? [] : [this.hookSql];
  }

  /** An append the hook ran after (it appended, in a transaction whose hook SQL committed with it). */
  private marked(row: FunctionRow): FunctionRow {
    if (this.hookSql !== undefined && row.status === 'appended') row.hooked = true;
    return row;
  }
}

/** What is known of an append that failed: `applied` as its last try says, but `unknown` once an earlier try may have committed. */
function outcome(pending: Pending, applied: 'no' | 'unknown'): 'no' | 'unknown' {
  return pending.mayHaveCommitted === true ? 'unknown' : applied;
}

function isAnswer(row: FunctionRow): row is AppendRow {
  return row.status !== 'busy';
}

/**
 * Whether `error` is the append deadline passing, and what is known of the append then: `no` when
 * the server cancelled the statement (SQLSTATE 57014: nothing committed) or no connection could be
 * had in time (nothing was sent), `unknown` when the client gave up on a connection that did not
 * answer. pg-pool (3.x) words the two connection cases differently: opening a new connection that
 * did not complete in time, and waiting for one of a full pool (which group commit, never taking
 * more than `maxInFlight`, should not meet).
 */
function deadlineOutcome(error: unknown): 'no' | 'unknown' | undefined {
  // By shape: an error made by Node's own code may come from another realm and fail `instanceof Error`.
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (code === '57014') return 'no';
  if (message === 'Query read timeout') return 'unknown';
  if (message === 'Connection terminated due to connection timeout' || message === 'timeout exceeded when trying to connect') return 'no';
  return undefined;
}

/**
 * Whether a statement that failed with `error` may have reached the server, and so committed: not
 * when the server answered it (a SQLSTATE: it rolled back), and not when no connection could be
 * opened (refused, or a host name that does not resolve: nothing was sent). A connection lost or
 * reset once open may have carried it.
 */
function mayHaveBeenSent(error: unknown): boolean {
  if (hasSqlState(error)) return false;
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return !(code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN');
}

/** A unique violation (SQLSTATE 23505), of `constraint` when one is named: the statement rolled back. */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  return error instanceof pg.DatabaseError && error.code === '23505' && (constraint === undefined || error.constraint === constraint);
}

/**
 * Whether the error is the server's answer (pg's DatabaseError: a `severity` and a five-character
 * SQLSTATE), not the client's or the network's: a Node system error such as EPIPE has a code of five
 * capitals too, but no severity.
 */
function hasSqlState(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  return typeof severity === 'string' && typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}
