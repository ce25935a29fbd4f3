-- Up Migration

-- One row per rebuild of a projection into shadow tables (schema `shadow_schema`). The row is the
-- rebuild's durable state: a killed rebuild leaves it behind with its phase, so it can be seen,
-- marked interrupted and started again; the live tables are never written before the swap.
CREATE TABLE projection_rebuilds (
  id uuid PRIMARY KEY,
  projection text NOT NULL,
  phase text NOT NULL,
  shadow_schema text NOT NULL,
  events_done bigint NOT NULL DEFAULT 0 CHECK (events_done >= 0),
  events_total bigint NOT NULL DEFAULT 0 CHECK (events_total >= 0),
  -- How far the shadow tables have got in $all (NULL before the first event).
  commit_position numeric(20, 0),
  prepare_position numeric(20, 0),
  started_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  error text,
  CONSTRAINT projection_rebuilds_phase CHECK (phase IN ('loading', 'indexing', 'catching_up', 'swapping', 'completed', 'failed'))
);

-- At most one unfinished rebuild per projection: a second request is refused by the database itself.
CREATE UNIQUE INDEX projection_rebuilds_one_active ON projection_rebuilds (projection) WHERE phase NOT IN ('completed', 'failed');
CREATE INDEX projection_rebuilds_started_at ON projection_rebuilds (projection, started_at DESC);

-- Down Migration
DROP TABLE projection_rebuilds;
