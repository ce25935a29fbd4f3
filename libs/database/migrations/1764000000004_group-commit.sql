-- Up Migration

-- Group commit. append_to_streams appends a batch of appends, each to its own stream, in ONE
-- transaction and one round trip, and returns one result per append: the event store adapter sends
-- the appends that arrive while earlier batches are in flight together, so many commands share one
-- commit (and one WAL flush) instead of paying one each.
--
-- The batch takes a set-based fast path when every append in it is ordinary: one append per
-- stream, each stream already there, each expected revision right, and no 'any' or
-- 'stream_exists' append repeating an id. Then it locks the streams (in stream_id order), moves
-- their revisions, inserts all the events and returns every result in three statements, whatever
-- the batch's size. Otherwise it goes append by append: a two-statement fast path (an UPDATE that
-- checks the expected revision and moves it, then the INSERT) where that applies, and
-- append_to_stream, which checks every case under the row lock, for the rest (a new stream, a wrong
-- expected revision, an idempotent retry, an id used before), so each outcome is decided exactly as
-- it was. An event id that exists elsewhere and escapes these checks raises a unique violation:
-- the whole batch rolls back, and the adapter retries each of its appends alone through
-- append_to_stream, which reports that append's conflict.
--
-- Locks are taken in stream_id order (arrival order within one stream), so concurrent batches do
-- not deadlock on each other.

-- Streams are updated in place on every append; room on each page keeps those updates HOT.
ALTER TABLE event_streams SET (fillfactor = 80);

-- The foreign key from events to event_streams checked every inserted event with a trigger and a
-- lookup of a row the append has just locked and updated: about a third of the insert's cost in
-- measurements. Events are written only by append_to_stream and append_to_streams, which create
-- and lock the stream row first, so the key could never fail.
ALTER TABLE events DROP CONSTRAINT events_stream_id_fkey;

CREATE FUNCTION append_to_streams(
  p_stream_ids text[],
  p_expected_kinds text[],
  p_expected_revisions bigint[],
  p_counts int[],
  p_event_ids uuid[],
  p_event_types text[],
  p_data text[],
  p_metadata text[]
) RETURNS TABLE (
  request int,
  status text,
  next_revision bigint,
  actual_revision bigint,
  commit_position text,
  prepare_position bigint
)
LANGUAGE plpgsql AS $$
DECLARE
  v_requests int := cardinality(p_stream_ids);
  v_fast boolean;
  r record;
  v_current bigint;
  v_last int;
BEGIN
  IF cardinality(p_stream_ids) IS NULL OR cardinality(p_counts) <> cardinality(p_stream_ids) THEN
    RAISE EXCEPTION 'append_to_streams needs one stream, kind, revision and count per append';
  END IF;
  IF EXISTS (SELECT 1 FROM unnest(p_counts) AS c WHERE c IS NULL OR c < 1) THEN
    RAISE EXCEPTION 'append_to_streams: every append needs at least one event';
  END IF;
  IF (SELECT sum(c) FROM unnest(p_counts) AS c) IS DISTINCT FROM cardinality(p_event_ids) THEN
    RAISE EXCEPTION 'append_to_streams: the counts do not add up to the events given';
  END IF;

  -- The fast path needs one append per stream, every stream there, and no append that could be an
  -- idempotent retry or create a stream. Streams are never deleted, so streams seen here stay.
  SELECT count(DISTINCT s) = v_requests AND bool_and(k IN ('exact', 'any', 'stream_exists'))
         AND (SELECT count(*) FROM event_streams es WHERE es.stream_id = ANY(p_stream_ids)) = v_requests
    INTO v_fast
    FROM unnest(p_stream_ids, p_expected_kinds) AS rq(s, k);

  IF v_fast THEN
    -- Lock every stream in stream_id order, then check each expected revision under its lock. The
    -- locks are taken in order whether this passes or not: if it does not, the appends go one by
    -- one below, taking no other row lock.
    WITH req AS (
      SELECT rq.stream_id, rq.kind, rq.revision, (sum(rq.n) OVER (ORDER BY rq.ordinal) - rq.n + 1)::int AS first
        FROM unnest(p_stream_ids, p_expected_kinds, p_expected_revisions, p_counts) WITH ORDINALITY AS rq(stream_id, kind, revision, n, ordinal)
    ), locked AS (
      SELECT es.stream_id, es.revision FROM event_streams es WHERE es.stream_id = ANY(p_stream_ids) ORDER BY es.stream_id FOR UPDATE
    )
    SELECT count(*) = v_requests
           AND coalesce(bool_and(CASE req.kind
                 WHEN 'exact' THEN locked.revision = req.revision
                 WHEN 'any' THEN NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = p_event_ids[req.first])
                 WHEN 'stream_exists' THEN locked.revision >= 0 AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = p_event_ids[req.first])
                 ELSE false END), false)
      INTO v_fast
      FROM req JOIN locked ON locked.stream_id = req.stream_id;
  END IF;

  IF v_fast THEN
    RETURN QUERY
    WITH req AS (
      SELECT rq.stream_id, rq.n, rq.ordinal::int AS idx, (sum(rq.n) OVER (ORDER BY rq.ordinal) - rq.n + 1)::int AS first
        FROM unnest(p_stream_ids, p_counts) WITH ORDINALITY AS rq(stream_id, n, ordinal)
    ), moved AS (
      UPDATE event_streams s SET revision = s.revision + req.n, updated_at = now()
        FROM req WHERE s.stream_id = req.stream_id
      RETURNING req.idx, s.revision - req.n AS current
    ), inserted AS (
      INSERT INTO events (stream_id, stream_revision, event_id, event_type, data, metadata)
      SELECT req.stream_id, moved.current + (ev.ordinal - req.first + 1), ev.event_id, ev.event_type, ev.data::jsonb, ev.metadata::jsonb
        FROM unnest(p_event_ids, p_event_types, p_data, p_metadata) WITH ORDINALITY AS ev(event_id, event_type, data, metadata, ordinal)
        JOIN req ON ev.ordinal BETWEEN req.first AND req.first + req.n - 1
        JOIN moved ON moved.idx = req.idx
       ORDER BY ev.ordinal
      RETURNING events.stream_id, events.global_position
    )
    SELECT req.idx, 'appended'::text, moved.current + req.n, moved.current, pg_current_xact_id()::text, max(inserted.global_position)
      FROM req JOIN moved ON moved.idx = req.idx JOIN inserted ON inserted.stream_id = req.stream_id
     GROUP BY req.idx, req.n, moved.current;
    RETURN;
  END IF;

  FOR r IN
    SELECT req.stream_id, req.kind, req.revision, req.n, req.ordinal::int AS idx,
           (sum(req.n) OVER (ORDER BY req.ordinal) - req.n + 1)::int AS first
      FROM unnest(p_stream_ids, p_expected_kinds, p_expected_revisions, p_counts) WITH ORDINALITY
           AS req(stream_id, kind, revision, n, ordinal)
     ORDER BY req.stream_id, req.ordinal
  LOOP
    v_last := r.first + r.n - 1;
    v_current := NULL;
    IF r.kind = 'exact' THEN
      UPDATE event_streams s SET revision = s.revision + r.n, updated_at = now()
       WHERE s.stream_id = r.stream_id AND s.revision = r.revision
      RETURNING s.revision - r.n INTO v_current;
    ELSIF r.kind IN ('any', 'stream_exists')
          AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = p_event_ids[r.first]) THEN
      -- A stream row with revision -1 (metadata set, no events yet) does not exist for stream_exists.
      UPDATE event_streams s SET revision = s.revision + r.n, updated_at = now()
       WHERE s.stream_id = r.stream_id AND (r.kind = 'any' OR s.revision >= 0)
      RETURNING s.revision - r.n INTO v_current;
    END IF;

    IF v_current IS NULL THEN
      RETURN QUERY SELECT r.idx, a.status, a.next_revision, a.actual_revision, a.commit_position, a.prepare_position
        FROM append_to_stream(r.stream_id, r.kind, r.revision, p_event_ids[r.first:v_last], p_event_types[r.first:v_last],
                              p_data[r.first:v_last], p_metadata[r.first:v_last]) AS a;
    ELSE
      INSERT INTO events (stream_id, stream_revision, event_id, event_type, data, metadata)
      SELECT r.stream_id, v_current + batch.ordinal, batch.event_id, batch.event_type, batch.data::jsonb, batch.metadata::jsonb
        FROM unnest(p_event_ids[r.first:v_last], p_event_types[r.first:v_last], p_data[r.first:v_last], p_metadata[r.first:v_last])
             WITH ORDINALITY AS batch(event_id, event_type, data, metadata, ordinal)
       ORDER BY batch.ordinal;
      -- The rows took their positions in order, so the session's last sequence value is the last event's.
      RETURN QUERY SELECT r.idx, 'appended'::text, v_current + r.n, v_current, pg_current_xact_id()::text, lastval();
    END IF;
  END LOOP;
END;
$$;

-- A batch of one takes append_one: the same two-statement fast path, else append_to_stream. It does
-- not look for the first event id beforehand: an idempotent retry with expected revision 'any'
-- fails on the unique index instead, and the adapter retries it through append_to_stream, which
-- finds it appended. A lone writer pays for two statements, not seven.
CREATE FUNCTION append_one(
  p_stream_id text,
  p_expected_kind text,
  p_expected_revision bigint,
  p_event_ids uuid[],
  p_event_types text[],
  p_data text[],
  p_metadata text[]
) RETURNS TABLE (status text, next_revision bigint, actual_revision bigint, commit_position text, prepare_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_count int := cardinality(p_event_ids);
  v_current bigint;
BEGIN
  IF p_expected_kind = 'exact' THEN
    UPDATE event_streams s SET revision = s.revision + v_count, updated_at = now()
     WHERE s.stream_id = p_stream_id AND s.revision = p_expected_revision
    RETURNING s.revision - v_count INTO v_current;
  ELSIF p_expected_kind IN ('any', 'stream_exists') THEN
    UPDATE event_streams s SET revision = s.revision + v_count, updated_at = now()
     WHERE s.stream_id = p_stream_id AND (p_expected_kind = 'any' OR s.revision >= 0)
    RETURNING s.revision - v_count INTO v_current;
  END IF;
  IF v_current IS NULL OR v_count IS NULL OR v_count = 0 THEN
    RETURN QUERY SELECT * FROM append_to_stream(p_stream_id, p_expected_kind, p_expected_revision, p_event_ids, p_event_types, p_data, p_metadata);
    RETURN;
  END IF;
  INSERT INTO events (stream_id, stream_revision, event_id, event_type, data, metadata)
  SELECT p_stream_id, v_current + batch.ordinal, batch.event_id, batch.event_type, batch.data::jsonb, batch.metadata::jsonb
    FROM unnest(p_event_ids, p_event_types, p_data, p_metadata) WITH ORDINALITY AS batch(event_id, event_type, data, metadata, ordinal)
   ORDER BY batch.ordinal;
  RETURN QUERY SELECT 'appended'::text, v_current + v_count, v_current, pg_current_xact_id()::text, lastval();
END;
$$;

-- Down Migration
DROP FUNCTION append_one(text, text, bigint, uuid[], text[], text[], text[]);
DROP FUNCTION append_to_streams(text[], text[], bigint[], int[], uuid[], text[], text[], text[]);
ALTER TABLE events ADD CONSTRAINT events_stream_id_fkey FOREIGN KEY (stream_id) REFERENCES event_streams (stream_id);
ALTER TABLE event_streams RESET (fillfactor);
