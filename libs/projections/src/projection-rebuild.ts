import { randomUUID } from 'node:crypto';
import { comparePositions, formatPosition, positionValues, START, type EventStore, type GlobalPositionChunk, type Position, type PositionRange, type PostgresCapabilities, type RecordedEvent } from '@app/event-store';
import pg, { type ClientBase, type Pool } from 'pg';
import { claimCheckpoint, writeCheckpoint } from './checkpoints.js';
import type { Projection } from './projection.js';
import { eventsNotAppliedInline, KEYED_PLANS } from './inline-projections.js';
import { findProjection, PROJECTIONS } from './projection-registry.js';
import { RebuildInProgressError } from './projections.errors.js';
import { assertRebuildableTables, dropSchema, ShadowTables } from './shadow-tables.js';

export type RebuildPhase = 'loading' | 'indexing' | 'catching_up' | 'swapping' | 'completed' | 'failed';

export type RebuildView = {
  readonly id: string;
  readonly projection: string;
  readonly phase: RebuildPhase;
  readonly eventsDone: number;
  readonly eventsTotal: number;
  readonly eventsPerSecond: number;
  /** Seconds until done at the rate so far; null when finished or before any progress. */
  readonly etaSeconds: number | null;
  /** How far the shadow tables have got in `$all`. */
  readonly position: string | null;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly error: string | null;
};

export type ProjectionRebuildsOptions = {
  /** Each rebuild holds its own session (advisory lock, shadow writes, swap), outside the pool. */
  readonly connectionString: string;
  readonly projections?: readonly Projection[];
  /** Events per transaction when projecting event by event. */
  readonly batchSizeMax?: number;
  /** The swap starts once at most this many events are left; the swap's transaction applies them. */
  readonly swapLagEventsMax?: number;
  /**
   * `events.global_position` values per bulk-load chunk. Each chunk is a transaction of its own, and
   * while it runs `$all` shows no newer event (see `stepEventsMax`): keep it well under a second.
   */
  readonly chunkPositions?: number;
  /**
   * Most events one set-based catch-up step (and each step of the swap) applies. Each step is one
   * transaction with a transaction id, and `$all` shows no event of a transaction younger than the
   * oldest one running, so the live runner sees nothing new while a step runs: keep it short.
   */
  readonly stepEventsMax?: number;
  /** Longest the swap, or a pass ahead of it (`carryOverStepMax`), waits for a lock before it rolls back and tries again (five times; passes then hand over to the swap). */
  readonly swapLockTimeoutMs?: number;
  /**
   * Most inline transactions one pass ahead of the swap carries over (`carryOverAhead`), in one short
   * transaction that holds the live checkpoint.
   */
  readonly carryOverStepMax?: number;
  /**
   * The swap starts once a pass ahead of it carried at most this many inline transactions: the swap,
   * with writes locked, then carries about what committed during that one short pass.
   */
  readonly swapCarryOverMax?: number;
  readonly onLog?: (message: string) => void;
};

type RebuildRow = {
  id: string;
  projection: string;
  phase: RebuildPhase;
  shadow_schema: string;
  events_done: string;
  events_total: string;
  commit_position: string | null;
  prepare_position: string | null;
  started_at: Date;
  finished_at: Date | null;
  error: string | null;
  now: Date;
};

const LIVE_SCHEMA = 'public';
const SWAP_ATTEMPTS_MAX = 5;
/**
 * Passes ahead of the swap at most: writers that commit inline transactions faster than passes carry
 * them over would otherwise keep the rebuild from ever swapping. At the default step, 100,000 transactions.
 */
const CARRY_OVER_PASSES_MAX = 100;
const ACTIVE_ROW_LOOKUPS_MAX = 40;
const ACTIVE_ROW_LOOKUP_INTERVAL_MS = 25;
const LOCK_NOT_AVAILABLE = '55P03';
const ROW_COLUMNS = 'id, projection, phase, shadow_schema, events_done, events_total, commit_position::text, prepare_position::text, started_at, finished_at, error, now() AS now';

/** The process that ran the rebuild went away (or this one was asked to stop) before it finished. */
class Interrupted extends Error {}

/**
 * Zero-downtime rebuilds: a projection is built from `$all` into shadow tables (another schema, same
 * names) while the live tables keep serving reads and the live runner keeps running. Once the shadow
 * is within one batch of the head, one transaction locks the live checkpoint (the live runner waits
 * on it), catches the shadow up to the head, moves the live tables out and the shadow tables in, and
 * sets the checkpoint to the shadow's position. The rebuild's state is a row in `projection_rebuilds`.
 *
 * Every transaction of a rebuild is kept short (bulk-load chunks, concurrent index builds, bounded
 * catch-up steps, a swap with little left to apply): `$all` shows only events of transactions older
 * than the oldest one running, so a long transaction with a transaction id would stall the live
 * runner for as long as it ran.
 */
export class ProjectionRebuilds {
  private readonly projections: readonly Projection[];
  private readonly workers = new Map<string, { readonly controller: AbortController; readonly done: Promise<void> }>();
  private readonly batchSizeMax: number;
  private readonly chunkPositions: number;
  private readonly swapLagEventsMax: number;
  private readonly stepEventsMax: number;
  private readonly carryOverStepMax: number;
  private readonly swapCarryOverMax: number;
  private readonly swapLockTimeoutMs: number;

  constructor(
    private readonly store: EventStore,
    private readonly pool: Pool,
    private readonly options: ProjectionRebuildsOptions,
  ) {
    this.projections = options.projections ?? PROJECTIONS;
    assertRebuildableTables(this.projections);
    this.batchSizeMax = options.batchSizeMax ?? 1_000;
    this.chunkPositions = options.chunkPositions ?? 20_000;
    this.swapLagEventsMax = options.swapLagEventsMax ?? 1_000;
    this.stepEventsMax = options.stepEventsMax ?? 5_000;
    this.carryOverStepMax = options.carryOverStepMax ?? 1_000;
    this.swapCarryOverMax = options.swapCarryOverMax ?? 20;
    this.swapLockTimeoutMs = Math.trunc(options.swapLockTimeoutMs ?? 5_000);
    for (const [name, value] of Object.entries({ stepEventsMax: this.stepEventsMax, carryOverStepMax: this.carryOverStepMax })) {
      if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a whole number of at least 1, not ${value}`);
    }
    if (!Number.isSafeInteger(this.swapCarryOverMax) || this.swapCarryOverMax < 0 || this.swapCarryOverMax >= this.carryOverStepMax) {
      throw new Error(`swapCarryOverMax must be a whole number below carryOverStepMax (${this.carryOverStepMax}), not ${this.swapCarryOverMax}`);
    }
  }

  /**
   * Starts a rebuild in the background and returns it. A rebuild left unfinished by a process that
   * died is marked failed (interrupted) and its shadow tables dropped first.
   */
  async start(name: string): Promise<RebuildView> {
    const projection = findProjection(name, this.projections);
    const client = new pg.Client({ connectionString: this.options.connectionString, application_name: `token-ledger rebuild ${name}` });
    // A session that dies (server restart, terminated backend) fails its queries; the event itself must not crash the process.
    client.on('error', (error) => this.options.onLog?.(`rebuild session of ${name}: ${error.message}`));
    await client.connect();
    let id: string;
    try {
      // A session lock: held while this rebuild runs, released by PostgreSQL if its process dies.
      const locked = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock(hashtext('projection-rebuild'), hashtext($1)) AS locked", [name]);
      if (locked.rows[0]?.locked !== true) throw new RebuildInProgressError(name, await this.activeId(name));
      await this.reapInterrupted(client, name);
      id = randomUUID();
      await client.query('INSERT INTO projection_rebuilds (id, projection, phase, shadow_schema) VALUES ($1, $2, $3, $4)', [
        id,
        name,
        'loading',
        `rebuild_${id.replaceAll('-', '').slice(0, 16)}`,
      ]);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    const controller = new AbortController();
    const done = this.work(client, projection, id, controller.signal).finally(() => {
      this.workers.delete(id);
      return client.end().catch(() => undefined);
    });
    this.workers.set(id, { controller, done });
    return this.requireView(id);
  }

  /** Resolves once the rebuild running in this process has finished (completed or failed). */
  async settled(id: string): Promise<RebuildView> {
    await this.workers.get(id)?.done;
    return this.requireView(id);
  }

  async get(id: string): Promise<RebuildView | undefined> {
    const result = await this.pool.query<RebuildRow>(`SELECT ${ROW_COLUMNS} FROM projection_rebuilds WHERE id = $1`, [id]);
    const row = result.rows[0];
    return row === undefined ? undefined : toView(row);
  }

  /** The unfinished rebuild of a projection, if any (it may belong to a process that has died). */
  async active(name: string): Promise<RebuildView | undefined> {
    const row = await this.activeRow(name);
    return row === undefined ? undefined : toView(row);
  }

  /**
   * Whether some session, in any process, holds the projection's rebuild lock: an unfinished row
   * without it was left by a process that died (it is reaped when the next rebuild starts).
   */
  async running(name: string): Promise<boolean> {
    const result = await this.pool.query<{ held: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                        AND classid = hashtext('projection-rebuild')::oid AND objid = hashtext($1)::oid AND objsubid = 2) AS held`,
      [name],
    );
    return result.rows[0]?.held === true;
  }

  /** Stops the rebuilds of this process: each is marked failed and its shadow tables dropped. */
  async stop(): Promise<void> {
    const running = [...this.workers.values()];
    for (const worker of running) worker.controller.abort();
    await Promise.all(running.map((worker) => worker.done));
  }

  private async requireView(id: string): Promise<RebuildView> {
    const view = await this.get(id);
    if (view === undefined) throw new Error(`rebuild ${id} has no row`);
    return view;
  }

  /** The running rebuild's id; its row may be a few milliseconds behind its lock, so it is looked for briefly. */
  private async activeId(name: string): Promise<string | undefined> {
    for (let attempt = 0; attempt < ACTIVE_ROW_LOOKUPS_MAX; attempt += 1) {
      const row = await this.activeRow(name);
      if (row !== undefined) return row.id;
      await new Promise((resolve) => setTimeout(resolve, ACTIVE_ROW_LOOKUP_INTERVAL_MS));
    }
    return undefined;
  }

  private async activeRow(name: string): Promise<RebuildRow | undefined> {
    const result = await this.pool.query<RebuildRow>(`SELECT ${ROW_COLUMNS} FROM projection_rebuilds WHERE projection = $1 AND phase NOT IN ('completed', 'failed')`, [name]);
    return result.rows[0];
  }

  /** Called holding the projection's rebuild lock: an unfinished row can only be left by a process that died. */
  private async reapInterrupted(client: pg.Client, name: string): Promise<void> {
    const stale = await client.query<{ id: string; shadow_schema: string; phase: string }>(
      "SELECT id, shadow_schema, phase FROM projection_rebuilds WHERE projection = $1 AND phase NOT IN ('completed', 'failed')",
      [name],
    );
    for (const row of stale.rows) {
      await dropSchema(client, row.shadow_schema);
      await client.query("UPDATE projection_rebuilds SET phase = 'failed', error = $2, finished_at = now(), updated_at = now() WHERE id = $1", [
        row.id,
        `interrupted during ${row.phase}: the process running it stopped; its shadow tables were dropped, the live tables were never changed`,
      ]);
      this.options.onLog?.(`rebuild ${row.id} of ${name} was interrupted during ${row.phase}; marked failed`);
    }
  }

  private async work(client: pg.Client, projection: Projection, id: string, signal: AbortSignal): Promise<void> {
    const shadow = new ShadowTables(client, LIVE_SCHEMA, (await this.requireRow(client, id)).shadow_schema, projection.tables);
    const progress = new Progress(client, id);
    try {
      await shadow.create();
      // The rebuild's statements name tables unqualified: on this session they resolve to the shadow tables first.
      const searchPath = `SET search_path TO ${client.escapeIdentifier(shadow.shadowSchema)}, ${client.escapeIdentifier(LIVE_SCHEMA)}`;
      await client.query(searchPath);
      let position = await this.bulkLoad(client, searchPath, projection, progress, signal);
      await progress.phase('indexing');
      await shadow.index();
      await progress.phase('catching_up');
      position = await this.catchUp(client, projection, progress, position, signal);
      position = await this.carryOverAhead(client, projection, shadow, progress, position, signal);
      await progress.phase('swapping');
      await this.swap(client, projection, shadow, progress, position, signal);
      this.options.onLog?.(`rebuild ${id} of ${projection.name} completed: ${progress.done} events`);
    } catch (error) {
      const message = error instanceof Interrupted ? 'stopped before it finished (process shutdown)' : error instanceof Error ? error.message : String(error);
      this.options.onLog?.(`rebuild ${id} of ${projection.name} failed: ${message}`);
      // If the session itself is gone, nothing more can be written: the row stays unfinished and the next rebuild reaps it.
      await client.query('ROLLBACK').catch(() => undefined);
      await dropSchema(client, shadow.shadowSchema).catch(() => undefined);
      await client
        .query("UPDATE projection_rebuilds SET phase = 'failed', error = $2, finished_at = now(), updated_at = now() WHERE id = $1", [id, message])
        .catch(() => undefined);
    }
  }

  private async requireRow(client: pg.Client, id: string): Promise<RebuildRow> {
    const result = await client.query<RebuildRow>(`SELECT ${ROW_COLUMNS} FROM projection_rebuilds WHERE id = $1`, [id]);
    const row = result.rows[0];
    if (row === undefined) throw new Error(`rebuild ${id} has no row`);
    return row;
  }

  /** Set-based load up to the head, when the projection has one and the events are in this database. Returns the position reached. */
  private async bulkLoad(client: pg.Client, searchPath: string, projection: Projection, progress: Progress, signal: AbortSignal): Promise<Position | undefined> {
    // Bulk SQL reads the events inside PostgreSQL: a store with the events elsewhere has none.
    const bulk = projection.bulkLoad;
    const postgres = this.store.postgres;
    if (bulk === undefined || postgres === undefined) return undefined;
    const head = await this.store.headPosition();
    if (head === undefined) return undefined;
    if (!(await this.bulkCovers(postgres, projection, bulk.eventTypes, { after: START, upTo: head }))) {
      this.options.onLog?.(`rebuild of ${projection.name}: some event types are not covered by its bulk load; projecting event by event`);
      return undefined;
    }
    const span = await postgres.globalPositionSpan(head);
    if (span === undefined) return undefined;
    await progress.setTotal(span.count);
    const chunks: GlobalPositionChunk[] = [];
    for (let first = span.first; first <= span.last; first += BigInt(this.chunkPositions)) chunks.push({ first, last: first + BigInt(this.chunkPositions) - 1n });
    const upTo = positionValues(head);
    // Chunks are independent inserts, and one PostgreSQL statement runs on one core: two sessions
    // load them side by side, then run the final lists the same way. A failure in either stops both.
    const second = new pg.Client({ connectionString: this.options.connectionString, application_name: `token-ledger rebuild ${projection.name} (loader)` });
    second.on('error', (error) => this.options.onLog?.(`rebuild loader session of ${projection.name}: ${error.message}`));
    await second.connect();
    try {
      await second.query(searchPath);
      const sessions = [client, second];
      await sideBySide(sessions, chunks, async (session, chunk) => {
        if (signal.aborted) throw new Interrupted();
        const bounds = [...upTo, chunk.first.toString(), chunk.last.toString()];
        for (const statement of bulk.chunked) await session.query(statement, bounds);
        await progress.advance(await postgres.countEventsInChunk(head, chunk));
      });
      await sideBySide(sessions, bulk.final, async (session, statements) => {
        if (signal.aborted) throw new Interrupted();
        for (const statement of statements) await session.query(statement, upTo);
      });
    } finally {
      await second.end().catch(() => undefined);
    }
    await progress.advance(0, head);
    return head;
  }

  /** True when every event type in the range that the projection handles is one the bulk load handles too. */
  private async bulkCovers(postgres: PostgresCapabilities, projection: Projection, covered: readonly string[], range: PositionRange): Promise<boolean> {
    for (const address of await postgres.eventsOfOtherTypes(range, covered)) {
      const [sample] = await this.store.readStream(address.streamId, { fromRevision: address.revision, maxCount: 1 });
      if (sample !== undefined && projection.project(sample).length > 0) return false;
    }
    return true;
  }

  /**
   * Brings the shadow tables towards the head, one transaction per step: set-based (the bulk load's
   * delta) when it can, else a batch of events through `project`. Stops once what is left is small
   * enough for the swap's own transaction.
   */
  private async catchUp(client: pg.Client, projection: Projection, progress: Progress, after: Position | undefined, signal: AbortSignal): Promise<Position | undefined> {
    let position = after;
    for (;;) {
      if (signal.aborted) throw new Interrupted();
      const head = await this.store.headPosition();
      if (head === undefined || (position !== undefined && comparePositions(head, position) <= 0)) return position;
      const postgres = this.store.postgres;
      if (postgres !== undefined) {
        const remaining = await postgres.countEventsBetween({ after: position ?? START, upTo: head });
        await progress.setTotal(progress.done + remaining);
        if (remaining <= this.swapLagEventsMax) return position;
      }
      await client.query('BEGIN');
      await client.query(KEYED_PLANS);
      const reached = await this.applyStep(client, projection, progress, position ?? START, head);
      await client.query('COMMIT');
      if (postgres === undefined && reached.applied < this.batchSizeMax) return reached.position;
      position = reached.position;
    }
  }

  /** Applies events after `after`, up to `head`: all of them set-based when the bulk load covers them, else one batch through `project`. */
  private async applyStep(client: pg.Client, projection: Projection, progress: Progress, after: Position, head: Position): Promise<{ applied: number; position: Position }> {
    const bulk = projection.bulkLoad;
    const postgres = this.store.postgres;
    if (bulk !== undefined && postgres !== undefined) {
      const upTo = await postgres.positionAfterEvents({ after, upTo: head }, this.stepEventsMax);
      if (await this.bulkCovers(postgres, projection, bulk.eventTypes, { after, upTo })) {
        const applied = await postgres.countEventsBetween({ after, upTo });
        for (const statement of bulk.delta) await client.query(statement, [...positionValues(after), ...positionValues(upTo)]);
        await progress.advance(applied, upTo);
        return { applied, position: upTo };
      }
    }
    const batch = (await this.store.readAll({ after, maxCount: this.batchSizeMax })).filter((event) => comparePositions(event.position, head) <= 0);
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
  private async reachHead(client: pg.Client, projection: Projection, progress: Progress, after: Position): Promise<Position> {
    const liveCheckpoint = await claimCheckpoint(client, projection.name);
    // This transaction has an id now, so the head can no longer move past it until it commits.
    const head = await this.store.headPosition();
    let position = after;
    while (head !== undefined && comparePositions(position, head) < 0) {
      const step = await this.applyStep(client, projection, progress, position, head);
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
  private async carryOverAhead(client: pg.Client, projection: Projection, shadow: ShadowTables, progress: Progress, after: Position | undefined, signal: AbortSignal): Promise<Position | undefined> {
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
      position = (await this.catchUp(client, projection, progress, position, signal)) ?? position;
      // Nothing past the shadow's position left to carry (no hold on `$all`, or all carried): no pass, no lock.
      if ((await inlineTransactionsAfter(client, live, position.commit, { notIn: carriedTable, limit: 1 })).length === 0) return this.carriedAhead(projection, total, passes, 0, position);
      const doneBefore = progress.done;
      let carried: number;
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = ${this.swapLockTimeoutMs}`);
        await client.query(KEYED_PLANS);
        const reached = await this.reachHead(client, projection, progress, position);
        const unrecorded = (await client.query<{ id: string | null }>(firstUnrecordedAfter(live), [reached.commit.toString()])).rows[0]?.id ?? null;
        const before = unrecorded === null ? undefined : BigInt(unrecorded);
        carried = await carryOverInlineTransactions(client, projection, shadow, reached, { lockWrites: false, limit: this.carryOverStepMax, before });
        await client.query('COMMIT');
        position = reached;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        progress.done = doneBefore;
        if ((error as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw error;
        lockWaits += 1;
        if (lockWaits < SWAP_ATTEMPTS_MAX) continue;
        // A lock held all that time (the live checkpoint by a long runner batch or an operator's transaction, or a table): the swap, which tries in turn, carries what is left.
        this.options.onLog?.(`rebuild of ${projection.name}: passes ahead of the swap waited too long for a lock ${lockWaits} times; the swap carries what is left`);
        return this.carriedAhead(projection, total, passes, 0, position);
      }
      passes += 1;
      total += carried;
      if (carried <= this.swapCarryOverMax || passes >= CARRY_OVER_PASSES_MAX) return this.carriedAhead(projection, total, passes, carried, position);
    }
  }

  /** Logs what the passes ahead of the swap carried, and returns the shadow's position. */
  private carriedAhead(projection: Projection, total: number, passes: number, last: number, position: Position): Position {
    const unfinished = last > this.swapCarryOverMax ? `; its last pass still found ${last}, so the swap carries more` : '';
    if (total > 0) this.options.onLog?.(`rebuild of ${projection.name}: carried ${total} inline transactions over ahead of the swap, in ${passes} passes${unfinished}`);
    return position;
  }

  /**
   * One transaction: lock the live checkpoint (the live runner blocks on it), apply what is left of
   * `$all` to the shadow, move the tables, set the checkpoint, mark the rebuild completed. Events from
   * transactions that started after this one are invisible to `$all` until it commits, so the
   * catch-up ends, and the live runner resumes after the shadow's position: nothing skipped, nothing twice.
   */
  private async swap(client: pg.Client, projection: Projection, shadow: ShadowTables, progress: Progress, after: Position | undefined, signal: AbortSignal): Promise<void> {
    const retired = `${shadow.shadowSchema}_retired`;
    for (let attempt = 1; ; attempt += 1) {
      if (signal.aborted) throw new Interrupted();
      let position = after ?? START;
      const doneBefore = progress.done;
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = ${this.swapLockTimeoutMs}`);
        await client.query(KEYED_PLANS);
        position = await this.reachHead(client, projection, progress, position);
        const locked = performance.now();
        const carried = await carryOverInlineTransactions(client, projection, shadow, position, { lockWrites: true });
        await shadow.swap(retired);
        await writeCheckpoint(client, projection.name, position);
        await progress.complete();
        await client.query('COMMIT');
        const heldMs = Math.round(performance.now() - locked);
        this.options.onLog?.(`rebuild of ${projection.name}: the swap carried ${carried} inline transactions over, holding writes for ${heldMs} ms`);
        await dropSchema(client, retired);
        await dropSchema(client, shadow.shadowSchema);
        return;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        progress.done = doneBefore;
        if ((error as { code?: string }).code !== LOCK_NOT_AVAILABLE || attempt >= SWAP_ATTEMPTS_MAX) throw error;
        this.options.onLog?.(`rebuild of ${projection.name}: the swap waited too long for a table lock (attempt ${attempt}); trying again`);
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

/**
 * Runs `work` on each of `items` with the sessions side by side, each taking the next item once it is
 * free. A failure on one session stops the others taking more; every session settles before this
 * returns or throws, so nothing else runs on them meanwhile.
 */
async function sideBySide<T>(sessions: readonly pg.Client[], items: readonly T[], work: (session: pg.Client, item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const run = async (session: pg.Client): Promise<void> => {
    while (next < items.length && !failed) await work(session, items[next++] as T);
  };
  const outcomes = await Promise.allSettled(
    sessions.map((session) =>
      run(session).catch((error: unknown) => {
        failed = true;
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

  async phase(phase: RebuildPhase): Promise<void> {
    await this.client.query('UPDATE projection_rebuilds SET phase = $2, updated_at = now() WHERE id = $1', [this.id, phase]);
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

function toView(row: RebuildRow): RebuildView {
  const done = Number(row.events_done);
  const total = Number(row.events_total);
  const end = row.finished_at ?? row.now;
  const seconds = Math.max((end.getTime() - row.started_at.getTime()) / 1000, 0.001);
  const rate = done / seconds;
  const finished = row.phase === 'completed' || row.phase === 'failed';
  return {
    id: row.id,
    projection: row.projection,
    phase: row.phase,
    eventsDone: done,
    eventsTotal: total,
    eventsPerSecond: Math.round(rate),
    etaSeconds: finished || rate === 0 ? null : Math.round(((total - done) / rate) * 10) / 10,
    position: row.commit_position === null || row.prepare_position === null ? null : `${row.commit_position}/${row.prepare_position}`,
    startedAt: row.started_at.toISOString(),
    finishedAt: row.finished_at?.toISOString() ?? null,
    error: row.error,
  };
}
