import type { ClientBase } from 'pg';

/**
 * Tables that are not read models and that no rebuild may copy, move or drop, whatever a projection
 * declares: the event store, snapshots, projection bookkeeping, migrations, and the payment tables
 * written by the write side itself (the payment-to-stream index, Idempotency-Key responses and the
 * mock provider's own books), plus API keys. Losing any of them loses facts that are not in `$all`.
 */
export const NOT_PROJECTION_TABLES: ReadonlySet<string> = new Set([
  'events',
  'event_streams',
  'snapshots',
  'projection_checkpoints',
  'projection_rebuilds',
  'pgmigrations',
  'payment_streams',
  'idempotency_keys',
  'mock_provider_orders',
  'api_keys',
]);

/** Shadow schemas are named `rebuild_<hex>` (and `..._retired`): nothing else is ever dropped. */
const SHADOW_SCHEMA = /^rebuild_[0-9a-f]+(_retired)?$/;
const LOCK_NOT_AVAILABLE = '55P03';
/** One try at the moved tables' locks: far below PostgreSQL's deadlock_timeout (1 s), so a reader caught in a cycle with it waits this long at most. */
const LOCK_TRY_MS = 100;

/** A projection declared a table that a rebuild must never move or drop: a programming error. */
export class NotAProjectionTableError extends Error {
  override readonly name = 'NotAProjectionTableError';

  constructor(
    readonly projection: string,
    readonly table: string,
  ) {
    super(`projection ${projection} declares ${table}, which is not a read-model table: a rebuild may never move or drop it`);
  }
}

/**
 * Checks the tables projections declare before anything is rebuilt: none is a protected table, none
 * is declared twice (two projections swapping one table would lose one's rows) and each is a plain name.
 */
export function assertRebuildableTables(projections: readonly { readonly name: string; readonly tables: readonly string[] }[]): void {
  const owners = new Map<string, string>();
  for (const projection of projections) {
    for (const table of projection.tables) {
      if (NOT_PROJECTION_TABLES.has(table) || !/^[a-z_][a-z0-9_]*$/.test(table)) throw new NotAProjectionTableError(projection.name, table);
      const owner = owners.get(table);
      if (owner !== undefined) throw new Error(`table ${table} is declared by both ${owner} and ${projection.name}`);
      owners.set(table, projection.name);
    }
  }
}

/**
 * Shadow tables for a rebuild: the live tables' twins in their own schema, with the same table,
 * index and constraint names, so that swapping them in is a schema move and nothing is renamed.
 */
export class ShadowTables {
  constructor(
    private readonly client: ClientBase,
    readonly liveSchema: string,
    readonly shadowSchema: string,
    readonly tables: readonly string[],
  ) {
    if (!SHADOW_SCHEMA.test(shadowSchema)) throw new Error(`${shadowSchema} is not a shadow schema name`);
    assertRebuildableTables([{ name: `shadow ${shadowSchema}`, tables }]);
  }

  /** Columns, defaults, NOT NULL and CHECK constraints; no indexes yet, so a bulk load is fast. */
  async create(): Promise<void> {
    await this.client.query(`CREATE SCHEMA ${this.id(this.shadowSchema)}`);
    for (const table of this.tables) {
      await this.client.query(
        `CREATE TABLE ${this.shadow(table)} (LIKE ${this.live(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS)`,
      );
    }
  }

  /**
   * The live tables' primary keys, unique and exclusion constraints and other indexes, under the same
   * names. Each index is built CONCURRENTLY: such a build runs in transactions of its own that take no
   * transaction id while they scan and sort, so it never holds back the `pg_snapshot_xmin` horizon
   * that `$all` reads up to (a plain CREATE INDEX or ADD CONSTRAINT does, for its whole build, and the
   * live projection would see no new event meanwhile). A primary key or unique constraint is then
   * attached to its finished index, a catalog change. Exclusion constraints cannot be attached that
   * way and are added directly. Must run outside a transaction block.
   */
  async index(): Promise<void> {
    for (const table of this.tables) await this.indexTable(table);
  }

  /**
   * `index` for one table, on `session` (by default the rebuild's own): a bulk load builds the
   * indexes of a table its final statements no longer write on its second session, side by side with them.
   */
  async indexTable(table: string, session: ClientBase = this.client): Promise<void> {
    const constraints = await session.query<{ name: string; type: 'p' | 'u' | 'x'; definition: string; index: string; deferral: string }>(
      `SELECT c.conname AS name, c.contype AS type, pg_get_constraintdef(c.oid) AS definition, pg_get_indexdef(c.conindid) AS index,
              CASE WHEN NOT c.condeferrable THEN '' WHEN c.condeferred THEN ' DEFERRABLE INITIALLY DEFERRED' ELSE ' DEFERRABLE' END AS deferral
         FROM pg_constraint c
        WHERE c.conrelid = $1::regclass AND c.contype IN ('p', 'u', 'x') ORDER BY c.conname`,
      [this.live(table)],
    );
    for (const { name, type, definition, index, deferral } of constraints.rows) {
      if (type === 'x') {
        await session.query(`ALTER TABLE ${this.shadow(table)} ADD CONSTRAINT ${this.id(name)} ${definition}`);
        continue;
      }
      // The constraint's index is named after it; attaching keeps the name.
      await session.query(this.concurrently(index, table));
      const kind = type === 'p' ? 'PRIMARY KEY' : 'UNIQUE';
      await session.query(`ALTER TABLE ${this.shadow(table)} ADD CONSTRAINT ${this.id(name)} ${kind} USING INDEX ${this.id(name)}${deferral}`);
    }
    const indexes = await session.query<{ definition: string }>(
      `SELECT pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i
        WHERE i.indrelid = $1::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))
        ORDER BY i.indexrelid`,
      [this.live(table)],
    );
    for (const { definition } of indexes.rows) await session.query(this.concurrently(definition, table));
    // ANALYZE takes a transaction id only to write its statistics, at the end.
    await session.query(`ANALYZE ${this.shadow(table)}`);
  }

  /**
   * Moves the live tables to `retiredSchema` and the shadow tables into the live schema. Call inside
   * the swap transaction: readers see either every old table or every new one. Refused, before
   * anything moves, when a live table's columns or indexes are no longer the shadow's (a migration
   * ran while the rebuild did, and its column or index would vanish with the swap).
   */
  async swap(retiredSchema: string, lockTimeoutMs: number): Promise<void> {
    if (!SHADOW_SCHEMA.test(retiredSchema)) throw new Error(`${retiredSchema} is not a shadow schema name`);
    // Locked first: no migration changes a table between its check and its move.
    await this.lockLiveForTheMove(lockTimeoutMs);
    for (const table of this.tables) await this.assertShapeOf(table);
    await this.client.query(`CREATE SCHEMA ${this.id(retiredSchema)}`);
    for (const table of this.tables) {
      await this.client.query(`ALTER TABLE ${this.live(table)} SET SCHEMA ${this.id(retiredSchema)}`);
      await this.client.query(`ALTER TABLE ${this.shadow(table)} SET SCHEMA ${this.id(this.liveSchema)}`);
    }
  }

  /**
   * Blocks writes to the live tables (reads go on) until the transaction ends, taking the locks in
   * the tables' declared order: the order inline applications take them, so neither waits on the other in a cycle.
   */
  async lockLiveAgainstWrites(): Promise<void> {
    await this.client.query(`LOCK TABLE ${this.tables.map((table) => this.live(table)).join(', ')} IN EXCLUSIVE MODE`);
  }

  /**
   * Takes every live table's ACCESS EXCLUSIVE lock, which moving it needs, before the first move, and
   * never waits long while holding part of them. A reader locks tables as its query names them, in
   * its own order (the lot list: `token_lots`, then `payments`); moving the tables one by one, each
   * move waiting for its table's readers, held `payments` while waiting for `token_lots` behind a
   * reader waiting for `payments`: a deadlock, one side failed after `deadlock_timeout` (1 s), the
   * reader's request or the whole rebuild. Each try takes them all in one statement, each table's
   * wait at most LOCK_TRY_MS (well under `deadlock_timeout`), and if one is still read then, gives
   * back what it took (to a savepoint: the write locks taken before stay) and tries again a few
   * milliseconds later; writes are already held off (`lockLiveAgainstWrites`) and reads take
   * milliseconds. A try that waits, rather than NOWAIT, is granted ahead of the writes queued behind
   * this transaction's own locks; NOWAIT, on older PostgreSQL versions, refuses whenever a queued
   * request conflicts. Past `lockTimeoutMs` (the swap transaction's
   * lock_timeout, set back once the locks are taken) the last try's lock-not-available fails the
   * swap's transaction, which the swap retries as it does its other lock waits.
   */
  private async lockLiveForTheMove(lockTimeoutMs: number): Promise<void> {
    const tables = this.tables.map((table) => this.live(table)).join(', ');
    const deadline = performance.now() + lockTimeoutMs;
    for (let pause = 1; ; pause = Math.min(pause * 2, 20)) {
      await this.client.query('SAVEPOINT shadow_tables_move');
      try {
        // Set inside the savepoint: going back to it restores the swap's own lock_timeout; once through, it is set back below.
        await this.client.query(`SET LOCAL lock_timeout = ${LOCK_TRY_MS}`);
        await this.client.query(`LOCK TABLE ${tables} IN ACCESS EXCLUSIVE MODE`);
        await this.client.query('RELEASE SAVEPOINT shadow_tables_move');
        await this.client.query(`SET LOCAL lock_timeout = ${Math.trunc(lockTimeoutMs)}`);
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== LOCK_NOT_AVAILABLE || performance.now() >= deadline) throw error;
        // Back to the savepoint, then out of it: the next try's savepoint is not nested in this one (no subtransactions piling up).
        await this.client.query('ROLLBACK TO SAVEPOINT shadow_tables_move');
        await this.client.query('RELEASE SAVEPOINT shadow_tables_move');
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  /** Throws when the live table's columns (name, type, NOT NULL, default), indexes (name and definition) or CHECK constraints differ from the shadow's. */
  private async assertShapeOf(table: string): Promise<void> {
    // An index's definition names its table with its schema: left out, the live and the shadow definitions compare. A CHECK added
    // NOT VALID on the live table is copied validated by LIKE: the rule compared is the constraint's, not whether old rows were checked.
    const shape = async (qualified: string, schema: string) =>
      (
        await this.client.query<{ part: string }>(
          `SELECT 'column ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                  || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') AS part
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
           UNION ALL
           SELECT 'index ' || c.relname || ': ' || replace(pg_get_indexdef(i.indexrelid), ' ON ' || quote_ident($2) || '.', ' ON ')
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass
           UNION ALL
           SELECT 'check ' || conname || ': ' || regexp_replace(pg_get_constraintdef(oid), ' NOT VALID$', '') FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'
           ORDER BY 1`,
          [qualified, schema],
        )
      ).rows.map((row) => row.part);
    const [live, shadow] = [await shape(this.live(table), this.liveSchema), await shape(this.shadow(table), this.shadowSchema)];
    const missing = live.filter((part) => !shadow.includes(part));
    const extra = shadow.filter((part) => !live.includes(part));
    if (missing.length > 0 || extra.length > 0) {
      throw new Error(
        `the live table ${table} changed while the rebuild ran (a migration?): the shadow lacks ${missing.join(', ') || 'nothing'} and has ${extra.join(', ') || 'nothing more'}; nothing was swapped, start the rebuild again`,
      );
    }
  }

  /** A live table's qualified name, for statements that must not resolve to the shadow. */
  liveTable(table: string): string {
    return this.live(table);
  }

  /** A shadow table's qualified name, for statements that name it beside the live one. */
  shadowTable(table: string): string {
    return this.shadow(table);
  }

  /** A live index's definition (pg_get_indexdef), built concurrently on the shadow table instead. */
  private concurrently(definition: string, table: string): string {
    const onShadow = definition.replace(/^CREATE (UNIQUE )?INDEX (\S+) ON (ONLY )?\S+ USING /, (_match, unique: string | undefined, name: string) =>
      `CREATE ${unique ?? ''}INDEX CONCURRENTLY ${name} ON ${this.shadow(table)} USING `,
    );
    if (onShadow === definition) throw new Error(`cannot place index on the shadow table: ${definition}`);
    return onShadow;
  }

  private id(name: string): string {
    return this.client.escapeIdentifier(name);
  }

  private live(table: string): string {
    return `${this.id(this.liveSchema)}.${this.id(table)}`;
  }

  private shadow(table: string): string {
    return `${this.id(this.shadowSchema)}.${this.id(table)}`;
  }
}

/** Drops a rebuild's shadow (or retired) schema; refuses any other schema, so live tables can never go with it. */
export async function dropSchema(client: ClientBase, schema: string): Promise<void> {
  if (!SHADOW_SCHEMA.test(schema)) throw new Error(`refusing to drop ${schema}: not a rebuild's schema`);
  await client.query(`DROP SCHEMA IF EXISTS ${client.escapeIdentifier(schema)} CASCADE`);
}
