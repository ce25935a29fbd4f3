-- Up Migration

-- A rebuild's shadow schema is its own: two rows naming one schema would let one rebuild's end (or
-- the reaping of an interrupted one) drop the tables of another. The names were 60 random bits
-- (`rebuild_` and 16 hex digits of the id) with nothing to refuse a repeat; they are now the whole id
-- (shadowSchemaOf), and the database refuses a repeat.
CREATE UNIQUE INDEX projection_rebuilds_shadow_schema_unique ON projection_rebuilds (shadow_schema);

-- Down Migration
DROP INDEX projection_rebuilds_shadow_schema_unique;
