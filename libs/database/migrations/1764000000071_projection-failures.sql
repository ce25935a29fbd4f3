-- Up Migration

-- The last failure of each projection's catch-up runner, kept where every process (and the CLI) can
-- read it, not only in the memory of the process that runs it: the status route shows it whichever
-- process answers, and it outlives a crash of the runner's process. The runner writes it when a batch
-- fails and deletes it in the transaction that next moves the checkpoint. `attempts` counts the
-- failures at `position` across processes; `first_failed_at` is when the projection first stopped there.
CREATE TABLE projection_failures (
  name text PRIMARY KEY,
  position text NOT NULL,
  event_type text NOT NULL,
  error text NOT NULL,
  attempts integer NOT NULL CHECK (attempts > 0),
  first_failed_at timestamptz NOT NULL,
  failed_at timestamptz NOT NULL
);

-- Down Migration
DROP TABLE projection_failures;
