import { randomUUID } from 'node:crypto';
import type { EventStore } from '@app/event-store';
import pg, { type Pool } from 'pg';
import type { Projection } from './projection.js';
import { findProjection, PROJECTIONS } from './projection-registry.js';
import { RebuildInProgressError } from './projections.errors.js';
import { Interrupted, RebuildRun, type RebuildPhase, type RebuildSettings } from './rebuild-run.js';
import { assertRebuildableTables, dropSchema, ShadowTables } from './shadow-tables.js';

export { inlineTransactionsAfter, type RebuildPhase } from './rebuild-run.js';

export type RebuildView = {
  readonly id: string;
  readonly projection: string;
  readonly phase: RebuildPhase;
  readonly eventsDone: number;
  readonly eventsTotal: number;
  readonly eventsPerSecond: number;
  /** Seconds until done at the rate so far; null when finished, interrupted or before any progress. */
  readonly etaSeconds: number | null;
  /** Unfinished, and no process runs it any more (it died): the next rebuild of the projection marks it failed. */
  readonly interrupted: boolean;
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
const ACTIVE_ROW_LOOKUPS_MAX = 40;
const ACTIVE_ROW_LOOKUP_INTERVAL_MS = 25;
const ROW_COLUMNS = 'id, projection, phase, shadow_schema, events_done, events_total, commit_position::text, prepare_position::text, started_at, finished_at, error, now() AS now';

/**
 * The schema a rebuild builds its shadow tables in: named by the whole of its id (122 random bits),
 * and unique in `projection_rebuilds` (migration 141), so no rebuild can take, or drop, another's.
 * (Rebuilds before migration 141 used the first 16 hex digits.)
 */
export function shadowSchemaOf(rebuildId: string): string {
  return `rebuild_${rebuildId.replaceAll('-', '').toLowerCase()}`;
}

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
  private readonly settings: RebuildSettings;

  constructor(
    private readonly store: EventStore,
    private readonly pool: Pool,
    private readonly options: ProjectionRebuildsOptions,
  ) {
    this.projections = options.projections ?? PROJECTIONS;
    assertRebuildableTables(this.projections);
    this.settings = {
      connectionString: options.connectionString,
      batchSizeMax: options.batchSizeMax ?? 1_000,
      chunkPositions: options.chunkPositions ?? 20_000,
      swapLagEventsMax: options.swapLagEventsMax ?? 1_000,
      stepEventsMax: options.stepEventsMax ?? 5_000,
      carryOverStepMax: options.carryOverStepMax ?? 1_000,
      swapCarryOverMax: options.swapCarryOverMax ?? 20,
      swapLockTimeoutMs: Math.trunc(options.swapLockTimeoutMs ?? 5_000),
      ...(options.onLog === undefined ? {} : { onLog: options.onLog }),
    };
    const { stepEventsMax, carryOverStepMax, swapCarryOverMax } = this.settings;
    for (const [name, value] of Object.entries({ stepEventsMax, carryOverStepMax })) {
      if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a whole number of at least 1, not ${value}`);
    }
    if (!Number.isSafeInteger(swapCarryOverMax) || swapCarryOverMax < 0 || swapCarryOverMax >= carryOverStepMax) {
      throw new Error(`swapCarryOverMax must be a whole number below carryOverStepMax (${carryOverStepMax}), not ${swapCarryOverMax}`);
    }
  }

  /**
   * Starts a rebuild in the background and returns it. A rebuild left unfinished by a process that
   * died is marked failed (interrupted) and its shadow tables dropped first.
   *
   * `requestedId` (derived from a request's Idempotency-Key) makes the start idempotent: a rebuild
   * that already has the id, running or ended, is returned as it stands, never started again. A
   * keyed request whose answer was not stored (the key's completion failed, the process died) is
   * retried by its client; without the id the retry started a second rebuild once the first ended.
   */
  async start(name: string, requestedId?: string): Promise<RebuildView> {
    const projection = findProjection(name, this.projections);
    const earlier = requestedId === undefined ? undefined : await this.get(requestedId);
    if (earlier !== undefined) return earlier;
    const client = new pg.Client({ connectionString: this.options.connectionString, application_name: `token-ledger rebuild ${name}` });
    // A session that dies (server restart, terminated backend) fails its queries; the event itself must not crash the process.
    client.on('error', (error) => this.options.onLog?.(`rebuild session of ${name}: ${error.message}`));
    await client.connect();
    let id: string;
    let existing = false;
    try {
      // A session lock: held while this rebuild runs, released by PostgreSQL if its process dies.
      const locked = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock(hashtext('projection-rebuild'), hashtext($1)) AS locked", [name]);
      if (locked.rows[0]?.locked !== true) throw new RebuildInProgressError(name, await this.activeId(name));
      await this.reapInterrupted(client, name);
      id = requestedId ?? randomUUID();
      const inserted = await client.query('INSERT INTO projection_rebuilds (id, projection, phase, shadow_schema) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING', [
        id,
        name,
        'loading',
        shadowSchemaOf(id),
      ]);
      // The requested rebuild started and ended between the look above and this lock: it is not run again.
      if (inserted.rowCount === 0) existing = true;
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (existing) {
      // Ending the session releases the lock.
      await client.end().catch(() => undefined);
      return this.requireView(id);
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
    return row === undefined ? undefined : this.view(row);
  }

  /** The unfinished rebuild of a projection, if any (it may belong to a process that has died: `interrupted`). */
  async active(name: string): Promise<RebuildView | undefined> {
    const row = await this.activeRow(name);
    return row === undefined ? undefined : this.view(row);
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

  private async view(row: RebuildRow): Promise<RebuildView> {
    return toView(row, !isFinished(row.phase) && !(await this.running(row.projection)));
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

  /**
   * Called holding the projection's rebuild lock: an unfinished row can only be left by a process that
   * died. An ended rebuild's schemas are gone unless its process died, or its drop failed, between the
   * swap's commit and the drop: those are dropped here too.
   */
  private async reapInterrupted(client: pg.Client, name: string): Promise<void> {
    const leftOver = await client.query<{ nspname: string }>(
      `SELECT nspname FROM pg_namespace
        WHERE nspname IN (SELECT unnest(ARRAY[shadow_schema, shadow_schema || '_retired']) FROM projection_rebuilds WHERE projection = $1 AND phase IN ('completed', 'failed'))`,
      [name],
    );
    for (const row of leftOver.rows) {
      // Best effort, as the drop after a swap: a leftover that cannot be dropped now never stops a rebuild.
      await dropSchema(client, row.nspname).then(
        () => this.options.onLog?.(`rebuild schema ${row.nspname} of ${name}, left by an ended rebuild, dropped`),
        (error: unknown) => this.options.onLog?.(`rebuild schema ${row.nspname} of ${name}, left by an ended rebuild, could not be dropped (${String(error)})`),
      );
    }
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

  /** Never rejects: nothing awaits a rebuild started by a request, so a failure here is recorded on its row, not thrown. */
  private async work(client: pg.Client, projection: Projection, id: string, signal: AbortSignal): Promise<void> {
    // The schema is the id's (the row was written with it): no read that could fail before the failure handling below.
    const shadow = new ShadowTables(client, LIVE_SCHEMA, shadowSchemaOf(id), projection.tables);
    const run = new RebuildRun(this.store, this.settings, client, projection, shadow, id, signal);
    try {
      await run.run();
      this.options.onLog?.(`rebuild ${id} of ${projection.name} completed: ${run.eventsDone} events`);
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

}

function isFinished(phase: RebuildPhase): boolean {
  return phase === 'completed' || phase === 'failed';
}

function toView(row: RebuildRow, interrupted: boolean): RebuildView {
  const done = Number(row.events_done);
  const total = Number(row.events_total);
  const end = row.finished_at ?? row.now;
  const seconds = Math.max((end.getTime() - row.started_at.getTime()) / 1000, 0.001);
  const rate = done / seconds;
  const finished = isFinished(row.phase);
  return {
    id: row.id,
    projection: row.projection,
    phase: row.phase,
    eventsDone: done,
    eventsTotal: total,
    eventsPerSecond: Math.round(rate),
    etaSeconds: finished || interrupted || rate === 0 ? null : Math.round(((total - done) / rate) * 10) / 10,
    position: row.commit_position === null || row.prepare_position === null ? null : `${row.commit_position}/${row.prepare_position}`,
    startedAt: row.started_at.toISOString(),
    finishedAt: row.finished_at?.toISOString() ?? null,
    error: row.error,
    interrupted,
  };
}
