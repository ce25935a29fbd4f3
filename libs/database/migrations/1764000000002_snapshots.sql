-- Up Migration

-- The latest snapshot of each stream's state, a shortcut for loading it: never the truth. A loader
-- uses one only if its schema version is the decider's, its checksum matches, and the event at its
-- revision still has `last_event_id`; otherwise it replays the stream. `state` is kept as text, not
-- jsonb, so the checksum covers exactly the bytes that were written.
CREATE TABLE snapshots (
  stream_id text PRIMARY KEY,
  schema_version integer NOT NULL,
  revision bigint NOT NULL CHECK (revision >= 0),
  last_event_id uuid NOT NULL,
  state text NOT NULL,
  checksum text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE snapshots;
