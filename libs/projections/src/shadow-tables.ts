import type { ClientBase } from 'pg';

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
  ) {}

  /** Columns, defaults, NOT NULL and CHECK constraints; no indexes yet, so a bulk load is fast. */
  async create(): Promise<void> {
    await this.client.query(`CREATE SCHEMA ${this.id(this.shadowSchema)}`);
    for (const table of this.tables) {
      await this.client.query(
        `CREATE TABLE ${this.shadow(table)} (LIKE ${this.live(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS)`,
      );
    }
  }

  /** The live tables' primary keys, unique and exclusion constraints and other indexes, under the same names. */
  async index(): Promise<void> {
    for (const table of this.tables) {
      const constraints = await this.client.query<{ name: string; definition: string }>(
        `SELECT conname AS name, pg_get_constraintdef(oid) AS definition FROM pg_constraint
          WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x') ORDER BY conname`,
        [this.live(table)],
      );
      for (const { name, definition } of constraints.rows) {
        await this.client.query(`ALTER TABLE ${this.shadow(table)} ADD CONSTRAINT ${this.id(name)} ${definition}`);
      }
      const indexes = await this.client.query<{ definition: string }>(
        `SELECT pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i
          WHERE i.indrelid = $1::regclass
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x'))
          ORDER BY i.indexrelid`,
        [this.live(table)],
      );
      for (const { definition } of indexes.rows) {
        const onShadow = definition.replace(/ ON (ONLY )?\S+ USING /, ` ON ${this.shadow(table)} USING `);
        if (onShadow === definition) throw new Error(`cannot place index on the shadow table: ${definition}`);
        await this.client.query(onShadow);
      }
      await this.client.query(`ANALYZE ${this.shadow(table)}`);
    }
  }

  /**
   * Moves the live tables to `retiredSchema` and the shadow tables into the live schema. Call inside
   * the swap transaction: readers see either every old table or every new one.
   */
  async swap(retiredSchema: string): Promise<void> {
    await this.client.query(`CREATE SCHEMA ${this.id(retiredSchema)}`);
    for (const table of this.tables) {
      await this.client.query(`ALTER TABLE ${this.live(table)} SET SCHEMA ${this.id(retiredSchema)}`);
      await this.client.query(`ALTER TABLE ${this.shadow(table)} SET SCHEMA ${this.id(this.liveSchema)}`);
    }
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

export async function dropSchema(client: ClientBase, schema: string): Promise<void> {
  await client.query(`DROP SCHEMA IF EXISTS ${client.escapeIdentifier(schema)} CASCADE`);
}
