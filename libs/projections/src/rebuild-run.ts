import { comparePositions, formatPosition, positionValues, START, type EventStore, type GlobalPositionChunk, type Position, type PositionRange, type PostgresCapabilities, type RecordedEvent } from '@app/event-store';
import pg, { type ClientBase } from 'pg';
import { claimCheckpoint, writeCheckpoint } from './checkpoints.js';
import { eventsNotAppliedInline, KEYED_PLANS } from './inline-projections.js';
import { tableWrittenBy, type Projection } from './projection.js';
import { dropSchema, type ShadowTables } from './shadow-tables.js';

export type RebuildPhase = 'loading' | 'indexing' | 'catching_up' | 'swapping' | 'completed' | 'failed';

/** How each rebuild runs: `ProjectionRebuildsOptions` with their defaults, checked (see there for each). */
export type RebuildSettings = {
  readonly connectionString: string;
  readonly batchSizeMax: number;
  readonly swapLagEventsMax: number;
  readonly chunkPositions: number;
  readonly stepEventsMax: number;
  readonly swapLockTimeoutMs: number;
  readonly carryOverStepMax: number;
  readonly swapCarryOverMax: number;
  readonly onLog?: (message: string) => void;
};

const SWAP_ATTEMPTS_MAX = 5;
/**
 * Passes ahead of the swap at most: writers that commit inline transactions faster than passes carry
 * them over would otherwise keep the rebuild from ever swapping. At the default step, 100,000 transactions.
 */
const CARRY_OVER_PASSES_MAX = 100;
const LOCK_NOT_AVAILABLE = '55P03';
const DEADLOCK_DETECTED = '40P01';

/** The process that ran the rebuild went away (or this one was asked to stop) before it finished. */
export class Interrupted extends Error {}

/**
 * One rebuild of one projection, on the rebuild's own session: shadow tables loaded set-based (or
 * event by event), indexed, caught up in short steps, inline transactions carried over ahead of the
 * swap, then the swap. `ProjectionRebuilds` starts it, and marks it failed if it throws.
 */
export class RebuildRun {
  private readonly progress: Progress;

  constructor(
    private readonly store: EventStore,
    private readonly settings: RebuildSettings,
    private readonly client: pg.Client,
    private readonly projection: Projection,
    private readonly shadow: ShadowTables,
    id: string,
    private readonly signal: AbortSignal,
  ) {
    this.progress = new Progress(client, id);
  }

  /** Events applied so far. */
  get eventsDone(): number {
    return this.progress.done;
  }

  async run(): Promise<void> {
    const { client, shadow } = this;
    await shadow.create();
    // The rebuild's statements name tables unqualified: on this session they resolve to the shadow tables first.
    const searchPath = `SET search_path TO ${client.escapeIdentifier(shadow.shadowSchema)}, ${client.escapeIdentifier(shadow.liveSchema)}`;
    await client.query(searchPath);
    const loaded = await this.bulkLoad(searchPath);
    if (!loaded.indexed) {
      await this.progress.phase('indexing');
      await shadow.index();
    }
    await this.progress.phase('catching_up');
    let position = loaded.position;
    position = await this.catchUp(position);
    position = await this.carryOverAhead(position);
    await this.progress.phase('swapping');
    await this.swap(position);
  }

  /**
   * Set-based load up to the head, when the projection has one and the events are in this database,
   * and the shadow's indexes built alongside its final statements. Returns the position reached
   * (undefined: nothing loaded) and whether the shadow is indexed.
   */
  private async bulkLoad(searchPath: string): Promise<{ readonly position: Position | undefined; readonly indexed: boolean }> {
    const { client, projection, shadow, progress, signal } = this;
    const none = { position: undefined, indexed: false };
    // Bulk SQL reads the events inside PostgreSQL: a store with the events elsewhere has none.
    const bulk = projection.bulkLoad;
    const postgres = this.store.postgres;
    if (bulk === undefined || postgres === undefined) return none;
    const head = await this.store.headPosition();
    if (head === undefined) return none;
    if (!(await this.bulkCovers(postgres, bulk.eventTypes, { after: START, upTo: head }))) {
      this.settings.onLog?.(`rebuild of ${projection.name}: some event types are not covered by its bulk load; projecting event by event`);
      return none;
    }
    const span = await postgres.globalPositionSpan(head);
    if (span === undefined) return none;
    await progress.setTotal(span.count);
    const chunks: GlobalPositionChunk[] = [];
    for (let first = span.first; first <= span.last; first += BigInt(this.settings.chunkPositions)) chunks.push({ first, last: first + BigInt(this.settings.chunkPositions) - 1n });
    const upTo = positionValues(head);
    // Chunks are independent inserts, and one PostgreSQL statement runs on one core: two sessions
    // load them side by side, then run the final lists and build the indexes the same way, each
    // table's once no list still running writes it. A failure in either session stops both.
    const second = new pg.Client({ connectionString: this.settings.connectionString, application_name: `token-ledger rebuild ${projection.name} (loader)` });
    second.on('error', (error) => this.settings.onLog?.(`rebuild loader session of ${projection.name}: ${error.message}`));
    await second.connect();
    try {
      await second.query(searchPath);
      const sessions = [client, second];
      await sideBySide(
        sessions,
        chunks.map((chunk) => ({
          after: [],
          run: async (session) => {
            if (signal.aborted) throw new Interrupted();
            const bounds = [...upTo, chunk.first.toString(), chunk.last.toString()];
            for (const statement of bulk.chunked) await session.query(statement, bounds);
            await progress.advance(await postgres.countEventsInChunk(head, chunk));
          },
        })),
      );
      const lists = bulk.final.map((statements) => ({
        after: [],
        writes: statements.map(tableWrittenBy),
        run: async (session: pg.Client) => {
          if (signal.aborted) throw new Interrupted();
          for (const statement of statements) await session.query(statement, upTo);
        },
      }));
      // Set on the session that finishes the last list (the other may be busy with an index).
      const indexing: Task = { after: lists, run: (session) => progress.phase('indexing', session) };
      const indexes = shadow.tables
        .map((table): Task => ({
          after: lists.filter((list) => list.writes.includes(table) || list.writes.includes(undefined)),
          run: async (session) => {
            if (signal.aborted) throw new Interrupted();
            await shadow.indexTable(table, session);
          },
        }))
        .sort((one, other) => one.after.length - other.after.length);
      await sideBySide(sessions, [...lists, indexing, ...indexes]);
    } finally {
      await second.end().catch(() => undefined);
    }
    await progress.advance(0, head);
    return { position: head, indexed: true };
  }

  /** True when every event type in the range that the projection handles is one the bulk load handles too. */
  private async bulkCovers(postgres: PostgresCapabilities, covered: readonly string[], range: PositionRange): Promise<boolean> {
    for (const address of await postgres.eventsOfOtherTypes(range, covered)) {
      const [sample] = await this.store.readStream(address.streamId, { fromRevision: address.revision, maxCount: 1 });
      if (sample !== undefined && this.projection.project(sample).length > 0) return false;
    }
    return true;
  }

  /**
   * Brings the shadow tables towards the head, one transaction per step: set-based (the bulk load's
   * delta) when it can, else a batch of events through `project`. Stops once what is left is small
   * enough for the swap's own transaction.
   */
  private async catchUp(after: Position | undefined): Promise<Position | undefined> {
    const { client, progress, signal } = this;
    let position = after;
    for (;;) {
      if (signal.aborted) throw new Interrupted();
      const head = await this.store.headPosition();
      if (head === undefined || (position !== undefined && comparePositions(head, position) <= 0)) return position;
      const postgres = this.store.postgres;
      if (postgres !== undefined) {
        const remaining = await postgres.countEventsBetween({ after: position ?? START, upTo: head });
        await progress.setTotal(progress.done + remaining);
        if (remaining <= this.settings.swapLagEventsMax) return position;
      }
      await client.query('BEGIN');
      await client.query(KEYED_PLANS);
      const reached = await this.applyStep(position ?? START, head);
      await client.query('COMMIT');
      if (postgres === undefined && reached.applied < this.settings.batchSizeMax) return reached.position;
      position = reached.position;
    }
  }

  /** Applies events after `after`, up to `head`: all of them set-based when the bulk load covers them, else one batch through `project`. */
  private async applyStep(after: Position, head: Position): Promise<{ applied: number; position: Position }> {
    const { client, projection, progress } = this;
    const bulk = projection.bulkLoad;
    const postgres = this.store.postgres;
    if (bulk !== undefined && postgres !== undefined) {
      const upTo = await postgres.positionAfterEvents({ after, upTo: head }, this.settings.stepEventsMax);
      if (await this.bulkCovers(postgres, bulk.eventTypes, { after, upTo })) {
        const applied = await postgres.countEventsBetween({ after, upTo });
        for (const statement of bulk.delta) await client.query(statement, [...positionValues(after), ...positionValues(upTo)]);
        await progress.advance(applied, upTo);
        return { applied, position: upTo };
      }
    }
    const batch = (await this.store.readAll({ after, maxCount: this.settings.batchSizeMax })).filter((event) => comparePositions(event.position, head) <= 0);
    if (batch.length === 0) return { applied: 0, position: after };
    // Unqualified, the applied-transactions table is the shadow's: what a carry-over put there already.
    const applied = bulk?.inline === undefined ? batch : await eventsNotAppliedInline(client, bulk.inline.appliedTransactions, batch);
    await applyEvents(client, projection, applied);
    const position = lastPosition(batch);
    await progress.advance(batch.length, position);
    return { applied: batch.length, position };
  }

  /**
   * Inside the caller's transaction: locks the live checkpoint (the live runner waits on it; it can
   * neither move it nor forget the inline transactions it passed until this transaction ends) and
   * applies to the shadow what `$all` shows after `after`. Returns the shadow's position, the head:
   * never behind the live checkpoint.
   */
  private async reachHead(after: Position): Promise<Position> {
    const { client, projection } = this;
    const liveCheckpoint = await claimCheckpoint(client, projection.name);
    // This transaction has an id now, so the head can no longer move past it until it commits.
    const head = await this.store.headPosition();
    let position = after;
    while (head !== undefined && comparePositions(position, head) < 0) {
      const step = await this.applyStep(position, head);
      if (step.applied === 0) break;
      position = step.position;
    }
    if (comparePositions(position, liveCheckpoint) < 0) {
      throw new Error(`the shadow of ${projection.name} ends at ${formatPosition(position)}, behind the live checkpoint ${formatPosition(liveCheckpoint)}`);
    }
    return position;
  }

  /**
   * Carries inline transactions over before the swap, with writes running. A transaction with an id
   * left open elsewhere (a long write, a session idle after one) holds `$all` back, and every inline
   * transaction committed since is past the head: the swap would merge them all with the live tables
   * locked against writes (8,000 of them: 502 ms). Instead, passes of one short transaction each
   * reach the head, then merge up to `carryOverStepMax` of them into the shadow and record them in
   * its applied-transactions table, until a pass finds at most `swapCarryOverMax`. The catch-up's
   * delta and its event-by-event steps skip what is recorded, and so do later passes and the swap's
   * own carry-over. Before each pass the catch-up runs again, so that a pass after the hold ends
   * does not apply the whole backlog in one transaction.
   *
   * Each pass takes, for every account, the earliest of its transactions not yet carried: one
   * account's transactions commit in id order (a stream is appended at exact revisions, under its
   * row lock), so any one visible means every earlier one is visible too, and ids past the head are
   * listed in order. A pass stops below the first committed transaction past the head that no
   * record lists (an append without the inline projection, `firstUnrecordedAfter`): the catch-up
   * applies it from `$all` later, and it must not land after a later transaction of its account.
   * Holding the live checkpoint keeps the list whole: the runner forgets inline transactions only
   * below its checkpoint, and the pass first brings the shadow up to the head, which the checkpoint
   * never passes.
   */
  private async carryOverAhead(after: Position | undefined): Promise<Position | undefined> {
    const { client, projection, shadow, progress, signal } = this;
    const inline = projection.bulkLoad?.inline;
    const firstUnrecordedAfter = inline?.firstUnrecordedAfter;
    if (inline === undefined || firstUnrecordedAfter === undefined || this.store.postgres === undefined) return after;
    const live = shadow.liveTable(inline.appliedTransactions);
    const carriedTable = shadow.shadowTable(inline.appliedTransactions);
    let position = after ?? START;
    let total = 0;
    let passes = 0;
    for (let lockWaits = 0; ; ) {
      if (signal.aborted) throw new Interrupted();
      position = (await this.catchUp(position)) ?? position;
      // Nothing past the shadow's position left to carry (no hold on `$all`, or all carried): no pass, no lock.
      if ((await inlineTransactionsAfter(client, live, position.commit, { notIn: carriedTable, limit: 1 })).length === 0) return this.carriedAhead(total, passes, 0, position);
      const doneBefore = progress.done;
      let carried: number;
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = ${this.settings.swapLockTimeoutMs}`);
        await client.query(KEYED_PLANS);
        const reached = await this.reachHead(position);
        const unrecorded = (await client.query<{ id: string | null }>(firstUnrecordedAfter(live), [reached.commit.toString()])).rows[0]?.id ?? null;
        const before = unrecorded === null ? undefined : BigInt(unrecorded);
        carried = await carryOverInlineTransactions(client, projection, shadow, reached, { lockWrites: false, limit: this.settings.carryOverStepMax, before });
        await client.query('COMMIT');
        position = reached;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        progress.done = doneBefore;
        if ((error as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw error;
        lockWaits += 1;
        if (lockWaits < SWAP_ATTEMPTS_MAX) continue;
        // A lock held all that time (the live checkpoint by a long runner batch or an operator's transaction, or a table): the swap, which tries in turn, carries what is left.
        this.settings.onLog?.(`rebuild of ${projection.name}: passes ahead of the swap waited too long for a lock ${lockWaits} times; the swap carries what is left`);
        return this.carriedAhead(total, passes, 0, position);
      }
      passes += 1;
      total += carried;
      if (carried <= this.settings.swapCarryOverMax || passes >= CARRY_OVER_PASSES_MAX) return this.carriedAhead(total, passes, carried, position);
    }
  }

  /** Logs what the passes ahead of the swap carried, and returns the shadow's position. */
  private carriedAhead(total: number, passes: number, last: number, position: Position): Position {
    const { projection } = this;
    const unfinished = last > this.settings.swapCarryOverMax ? `; its last pass still found ${last}, so the swap carries more` : '';
    if (total > 0) this.settings.onLog?.(`rebuild of ${projection.name}: carried ${total} inline transactions over ahead of the swap, in ${passes} passes${unfinished}`);
    return position;
  }

  /**
   * One transaction: lock the live checkpoint (the live runner blocks on it), apply what is left of
   * `$all` to the shadow, move the tables, set the checkpoint, mark the rebuild completed. Events from
   * transactions that started after this one are invisible to `$all` until it commits, so the
   * catch-up ends, and the live runner resumes after the shadow's position: nothing skipped, nothing twice.
   */
  private async swap(after: Position | undefined): Promise<void> {
    const { client, projection, shadow, progress, signal } = this;
    const retired = `${shadow.shadowSchema}_retired`;
    for (let attempt = 1; ; attempt += 1) {
      if (signal.aborted) throw new Interrupted();
      let position = after ?? START;
      const doneBefore = progress.done;
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = ${this.settings.swapLockTimeoutMs}`);
        await client.query(KEYED_PLANS);
        position = await this.reachHead(position);
        const locked = performance.now();
        const carried = await carryOverInlineTransactions(client, projection, shadow, position, { lockWrites: true });
        await shadow.swap(retired, this.settings.swapLockTimeoutMs);
        await writeCheckpoint(client, projection.name, position);
        await progress.complete();
        await client.query('COMMIT');
        const heldMs = Math.round(performance.now() - locked);
        this.settings.onLog?.(`rebuild of ${projection.name}: the swap carried ${carried} inline transactions over, holding writes for ${heldMs} ms`);
        // The rebuild is complete (committed): a schema that cannot be dropped now is left for the next rebuild to drop, not a failure.
        for (const schema of [retired, shadow.shadowSchema]) {
          await dropSchema(client, schema).catch((error: unknown) => this.settings.onLog?.(`rebuild of ${projection.name}: could not drop ${schema} (${String(error)}); the next rebuild drops it`));
        }
        return;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        progress.done = doneBefore;
        const code = (error as { code?: string }).code;
        // A deadlock is a lock wait too: the moves take their locks so as not to make one with a reader (ShadowTables.swap), and any other is tried again as a wait that lasted too long.
        if ((code !== LOCK_NOT_AVAILABLE && code !== DEADLOCK_DETECTED) || attempt >= SWAP_ATTEMPTS_MAX) throw error;
        this.settings.onLog?.(`rebuild of ${projection.name}: the swap ${code === DEADLOCK_DETECTED ? 'was chosen to end a deadlock' : 'waited too long for a table lock'} (attempt ${attempt}); trying again`);
      }
    }
  }
}

/**
 * Inside the swap, and in each pass ahead of it: the transactions that applied the projection inline
 * to the live tables after the shadow's position (they committed after the head was read, or while
 * `$all` could not show them yet), less those an earlier pass carried, are applied to the shadow too,
 * and recorded in its applied-transactions table, so the runner will not apply them a second time.
 * The swap blocks writes to the live tables first (`lockWrites`), so its list is final; every such
 * transaction has an id above the position's (a transaction still running when the head was read
 * has a larger id than every visible one).
 *
 * Their events are merged in one set-based pass (`ofEvents`), as a catch-up step merges a range: a
 * statement per table however many transactions there are, and the statements order each account's
 * events themselves. Writes wait while the swap holds its locks, and a held-back `$all` can leave
 * hundreds of transactions: in the admin e2e test, about 50 carried one at a time took 0.66 and 0.87 s,
 * together 22 and 27 ms.
 */
async function carryOverInlineTransactions(
  client: pg.Client,
  projection: Projection,
  shadow: ShadowTables,
  position: Position,
  options: { readonly lockWrites: boolean; readonly limit?: number; readonly before?: bigint },
): Promise<number> {
  const bulk = projection.bulkLoad;
  const inline = bulk?.inline;
  if (bulk === undefined || inline === undefined) return 0;
  if (bulk.ofEvents === undefined) throw new Error(`projection ${projection.name} applies inline without ofEvents: a swap could not carry its inline transactions over`);
  if (options.lockWrites) await shadow.lockLiveAgainstWrites();
  const carried = shadow.shadowTable(inline.appliedTransactions);
  const pending = await inlineTransactionsAfter(client, shadow.liveTable(inline.appliedTransactions), position.commit, { notIn: carried, limit: options.limit, before: options.before });
  if (pending.length === 0) return 0;
  const ids = pending.map(String);
  // Unqualified names resolve to the shadow tables on this session (search_path).
  for (const statement of bulk.ofEvents('events.transaction_id = ANY($1::text[]::xid8[])')) await client.query(statement, [ids]);
  await client.query(`INSERT INTO ${carried} (transaction_id) SELECT unnest($1::text[]::xid8[])`, [ids]);
  return pending.length;
}

/**
 * The transactions an applied-transactions table (`table`, qualified) lists after `after` (and below
 * `before`), less those `notIn` (another such table) lists, in transaction id order: ordered by the xid8 column, not by its
 * text (as text, 1000 sorts before 981). The swap once applied them one at a time in this order, so a
 * carry-over that straddled a power of ten applied older transactions last and left balances behind
 * their history (ADR 0007, 4 December); with `limit`, a pass ahead of the swap takes the earliest.
 */
export async function inlineTransactionsAfter(
  client: ClientBase,
  table: string,
  after: bigint,
  options: { readonly notIn?: string; readonly limit?: number; readonly before?: bigint } = {},
): Promise<readonly bigint[]> {
  const values: unknown[] = [after.toString()];
  const notCarried = options.notIn === undefined ? '' : ` AND NOT EXISTS (SELECT 1 FROM ${options.notIn} AS carried WHERE carried.transaction_id = applied.transaction_id)`;
  const before = options.before === undefined ? '' : ` AND applied.transaction_id < $${values.push(options.before.toString())}::text::xid8`;
  const limit = options.limit === undefined ? '' : ` LIMIT $${values.push(options.limit)}`;
  const result = await client.query<{ id: string }>(
    `SELECT applied.transaction_id::text AS id FROM ${table} AS applied WHERE applied.transaction_id > $1::text::xid8${notCarried}${before} ORDER BY applied.transaction_id${limit}`,
    values,
  );
  return result.rows.map((row) => BigInt(row.id));
}

/** Work for one of the rebuild's sessions, to start only once the tasks `after` it are done. */
type Task = { readonly after: readonly Task[]; readonly run: (session: pg.Client) => Promise<void> };

/**
 * Runs the tasks with the sessions side by side: a free session takes the first task not started
 * whose `after` tasks are all done, or waits until a running one finishes. A failure on one session
 * stops the others taking more; every session settles before this returns or throws, so nothing else
 * runs on them meanwhile.
 */
async function sideBySide(sessions: readonly pg.Client[], tasks: readonly Task[]): Promise<void> {
  const started = new Set<Task>();
  const done = new Set<Task>();
  let failed = false;
  let waiting: (() => void)[] = [];
  const finished = () => {
    const woken = waiting;
    waiting = [];
    for (const wake of woken) wake();
  };
  const run = async (session: pg.Client): Promise<void> => {
    while (!failed && started.size < tasks.length) {
      const next = tasks.find((task) => !started.has(task) && task.after.every((before) => done.has(before)));
      if (next === undefined) {
        await new Promise<void>((resolve) => waiting.push(resolve));
        continue;
      }
      started.add(next);
      try {
        await next.run(session);
        done.add(next);
      } finally {
        finished();
      }
    }
  };
  const outcomes = await Promise.allSettled(
    sessions.map((session) =>
      run(session).catch((error: unknown) => {
        failed = true;
        finished();
        throw error;
      }),
    ),
  );
  for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
}

async function applyEvents(client: pg.Client, projection: Projection, events: readonly RecordedEvent[]): Promise<void> {
  for (const event of events) {
    try {
      for (const change of projection.project(event)) await client.query(change.text, [...change.values]);
    } catch (error) {
      throw new Error(`event ${formatPosition(event.position)} (${event.type}): ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
  }
}

function lastPosition(events: readonly RecordedEvent[]): Position {
  const last = events[events.length - 1];
  if (last === undefined) throw new Error('an empty batch has no position');
  return last.position;
}

/** The rebuild row's counters, written on the rebuild's own session (inside its transactions when there is one). */
class Progress {
  done = 0;

  constructor(
    private readonly client: pg.Client,
    private readonly id: string,
  ) {}

  async phase(phase: RebuildPhase, session: pg.Client = this.client): Promise<void> {
    await session.query('UPDATE projection_rebuilds SET phase = $2, updated_at = now() WHERE id = $1', [this.id, phase]);
  }

  async setTotal(total: number): Promise<void> {
    await this.client.query('UPDATE projection_rebuilds SET events_total = GREATEST($2::bigint, events_done), updated_at = now() WHERE id = $1', [this.id, total]);
  }

  /** Counts `events` more done; `position`, when given, is how far the shadow tables have got. */
  async advance(events: number, position?: Position): Promise<void> {
    this.done += events;
    await this.client.query(
      `UPDATE projection_rebuilds SET events_done = $2, events_total = GREATEST(events_total, $2::bigint),
              commit_position = COALESCE($3, commit_position), prepare_position = COALESCE($4, prepare_position), updated_at = now() WHERE id = $1`,
      [this.id, this.done, position?.commit.toString() ?? null, position?.prepare.toString() ?? null],
    );
  }

  async complete(): Promise<void> {
    await this.client.query("UPDATE projection_rebuilds SET phase = 'completed', finished_at = now(), updated_at = now() WHERE id = $1", [this.id]);
  }
}
