-- Up Migration

-- The busy answer of migration 138 is asked for, not imposed. A process of an older version (a
-- rolling deploy) does not know the status 'busy' and failed the append with a 500 when a stream was
-- held; its appends now wait on the stream's row, as they did before 138 (the holder's row lock
-- still holds them off), while this version's appends are answered busy as before. The three
-- append functions are as in 138, their lock try moved into stream_append_busy.

-- Whether this append must be answered busy: only on connections that asked for busy answers
-- (GroupCommit sets token_ledger.busy_appends on its append connections) and only while the
-- stream's hold lock cannot be had shared. A session that did not ask, such as a process of the
-- version before migration 138 during a rolling deploy, never tries the lock and waits on the
-- stream's row as before, instead of receiving a status it does not know. Inlined by the planner.
CREATE FUNCTION stream_append_busy(p_stream_id text) RETURNS boolean LANGUAGE sql AS $$
  SELECT CASE WHEN current_setting('token_ledger.busy_appends', true) = 'on'
              THEN NOT pg_try_advisory_xact_lock_shared(hashtext('token-ledger stream hold'), hashtext(p_stream_id))
              ELSE false END
$$;

CREATE OR REPLACE FUNCTION append_to_stream(
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
  v_found int;
  v_first bigint;
  v_last bigint;
  v_consecutive boolean;
  v_last_tx xid8;
  v_last_position bigint;
BEGIN
  IF v_count IS NULL OR v_count = 0 THEN
    RAISE EXCEPTION 'append_to_stream needs at least one event';
  END IF;
  IF stream_append_busy(p_stream_id) THEN
    RETURN QUERY SELECT 'busy'::text, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint;
    RETURN;
  END IF;

  INSERT INTO event_streams (stream_id) VALUES (p_stream_id) ON CONFLICT (stream_id) DO NOTHING;
  SELECT s.revision INTO v_current FROM event_streams s WHERE s.stream_id = p_stream_id FOR UPDATE;

  -- Idempotency, checked under the stream lock so a concurrent retry sees the committed first try.
  SELECT e.stream_revision INTO v_first FROM events e WHERE e.event_id = p_event_ids[1] AND e.stream_id = p_stream_id;
  SELECT count(*)::int, coalesce(bool_and(e.stream_id = p_stream_id AND e.stream_revision = v_first + ids.ordinal - 1), false)
    INTO v_found, v_consecutive
    FROM unnest(p_event_ids) WITH ORDINALITY AS ids(event_id, ordinal)
    JOIN events e ON e.event_id = ids.event_id;
  v_last := v_first + v_count - 1;
  IF v_found > 0 THEN
    IF v_found = v_count AND v_consecutive AND (
         p_expected_kind IN ('any', 'stream_exists')
         OR (p_expected_kind = 'no_stream' AND v_first = 0)
         OR (p_expected_kind = 'exact' AND v_first = p_expected_revision + 1)) THEN
      SELECT e.transaction_id, e.global_position INTO v_last_tx, v_last_position
        FROM events e WHERE e.stream_id = p_stream_id AND e.stream_revision = v_last;
      RETURN QUERY SELECT 'already_appended'::text, v_last, v_current, v_last_tx::text, v_last_position;
      RETURN;
    END IF;
    RETURN QUERY SELECT 'id_conflict'::text, NULL::bigint, v_current, NULL::text, NULL::bigint;
    RETURN;
  END IF;

  IF (p_expected_kind = 'no_stream' AND v_current <> -1)
     OR (p_expected_kind = 'stream_exists' AND v_current = -1)
     OR (p_expected_kind = 'exact' AND v_current <> p_expected_revision) THEN
    RETURN QUERY SELECT 'wrong_expected'::text, NULL::bigint, v_current, NULL::text, NULL::bigint;
    RETURN;
  END IF;

  INSERT INTO events (stream_id, stream_revision, event_id, event_type, data, metadata)
  SELECT p_stream_id, v_current + batch.ordinal, batch.event_id, batch.event_type, batch.data::jsonb, batch.metadata::jsonb
    FROM unnest(p_event_ids, p_event_types, p_data, p_metadata) WITH ORDINALITY
         AS batch(event_id, event_type, data, metadata, ordinal);

  UPDATE event_streams SET revision = v_current + v_count, updated_at = now() WHERE stream_id = p_stream_id;

  SELECT e.transaction_id, e.global_position INTO v_last_tx, v_last_position
    FROM events e WHERE e.stream_id = p_stream_id AND e.stream_revision = v_current + v_count;

  RETURN QUERY SELECT 'appended'::text, v_current + v_count, v_current, v_last_tx::text, v_last_position;
END;
$$;

CREATE OR REPLACE FUNCTION append_one(
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
  IF stream_append_busy(p_stream_id) THEN
    RETURN QUERY SELECT 'busy'::text, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint;
    RETURN;
  END IF;
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

CREATE OR REPLACE FUNCTION append_to_streams(
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
  v_busy int[];
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
  -- In the same statement, each append tries its stream's hold lock; those that cannot have it are
  -- busy, and the batch then goes append by append, answering them busy.
  SELECT count(DISTINCT s) = v_requests AND bool_and(k IN ('exact', 'any', 'stream_exists'))
         AND (SELECT count(*) FROM event_streams es WHERE es.stream_id = ANY(p_stream_ids)) = v_requests,
         array_agg(o::int) FILTER (WHERE stream_append_busy(s))
    INTO v_fast, v_busy
    FROM unnest(p_stream_ids, p_expected_kinds) WITH ORDINALITY AS rq(s, k, o);
  v_fast := v_fast AND v_busy IS NULL;

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
    IF r.idx = ANY(v_busy) THEN
      RETURN QUERY SELECT r.idx, 'busy'::text, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint;
      CONTINUE;
    END IF;
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

-- Down Migration
CREATE OR REPLACE FUNCTION append_to_stream(
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
  v_found int;
  v_first bigint;
  v_last bigint;
  v_consecutive boolean;
  v_last_tx xid8;
  v_last_position bigint;
BEGIN
  IF v_count IS NULL OR v_count = 0 THEN
    RAISE EXCEPTION 'append_to_stream needs at least one event';
  END IF;
  IF NOT pg_try_advisory_xact_lock_shared(hashtext('token-ledger stream hold'), hashtext(p_stream_id)) THEN
    RETURN QUERY SELECT 'busy'::text, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint;
    RETURN;
  END IF;

  INSERT INTO event_streams (stream_id) VALUES (p_stream_id) ON CONFLICT (stream_id) DO NOTHING;
  SELECT s.revision INTO v_current FROM event_streams s WHERE s.stream_id = p_stream_id FOR UPDATE;

  -- Idempotency, checked under the stream lock so a concurrent retry sees the committed first try.
  SELECT e.stream_revision INTO v_first FROM events e WHERE e.event_id = p_event_ids[1] AND e.stream_id = p_stream_id;
  SELECT count(*)::int, coalesce(bool_and(e.stream_id = p_stream_id AND e.stream_revision = v_first + ids.ordinal - 1), false)
    INTO v_found, v_consecutive
    FROM unnest(p_event_ids) WITH ORDINALITY AS ids(event_id, ordinal)
    JOIN events e ON e.event_id = ids.event_id;
  v_last := v_first + v_count - 1;
  IF v_found > 0 THEN
    IF v_found = v_count AND v_consecutive AND (
         p_expected_kind IN ('any', 'stream_exists')
         OR (p_expected_kind = 'no_stream' AND v_first = 0)
         OR (p_expected_kind = 'exact' AND v_first = p_expected_revision + 1)) THEN
      SELECT e.transaction_id, e.global_position INTO v_last_tx, v_last_position
        FROM events e WHERE e.stream_id = p_stream_id AND e.stream_revision = v_last;
      RETURN QUERY SELECT 'already_appended'::text, v_last, v_current, v_last_tx::text, v_last_position;
      RETURN;
    END IF;
    RETURN QUERY SELECT 'id_conflict'::text, NULL::bigint, v_current, NULL::text, NULL::bigint;
    RETURN;
  END IF;

  IF (p_expected_kind = 'no_stream' AND v_current <> -1)
     OR (p_expected_kind = 'stream_exists' AND v_current = -1)
     OR (p_expected_kind = 'exact' AND v_current <> p_expected_revision) THEN
    RETURN QUERY SELECT 'wrong_expected'::text, NULL::bigint, v_current, NULL::text, NULL::bigint;
    RETURN;
  END IF;

  INSERT INTO events (stream_id, stream_revision, event_id, event_type, data, metadata)
  SELECT p_stream_id, v_current + batch.ordinal, batch.event_id, batch.event_type, batch.data::jsonb, batch.metadata::jsonb
    FROM unnest(p_event_ids, p_event_types, p_data, p_metadata) WITH ORDINALITY
         AS batch(event_id, event_type, data, metadata, ordinal);

  UPDATE event_streams SET revision = v_current + v_count, updated_at = now() WHERE stream_id = p_stream_id;

  SELECT e.transaction_id, e.global_position INTO v_last_tx, v_last_position
    FROM events e WHERE e.stream_id = p_stream_id AND e.stream_revision = v_current + v_count;

  RETURN QUERY SELECT 'appended'::text, v_current + v_count, v_current, v_last_tx::text, v_last_position;
END;
$$;

CREATE OR REPLACE FUNCTION append_one(
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
  IF NOT pg_try_advisory_xact_lock_shared(hashtext('token-ledger stream hold'), hashtext(p_stream_id)) THEN
    RETURN QUERY SELECT 'busy'::text, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint;
    RETURN;
  END IF;
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

CREATE OR REPLACE FUNCTION append_to_streams(
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
  v_busy int[];
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
  -- In the same statement, each append tries its stream's hold lock; those that cannot have it are
  -- busy, and the batch then goes append by append, answering them busy.
  SELECT count(DISTINCT s) = v_requests AND bool_and(k IN ('exact', 'any', 'stream_exists'))
         AND (SELECT count(*) FROM event_streams es WHERE es.stream_id = ANY(p_stream_ids)) = v_requests,
         array_agg(o::int) FILTER (WHERE NOT pg_try_advisory_xact_lock_shared(hashtext('token-ledger stream hold'), hashtext(s)))
    INTO v_fast, v_busy
    FROM unnest(p_stream_ids, p_expected_kinds) WITH ORDINALITY AS rq(s, k, o);
  v_fast := v_fast AND v_busy IS NULL;

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
    IF r.idx = ANY(v_busy) THEN
      RETURN QUERY SELECT r.idx, 'busy'::text, NULL::bigint, NULL::bigint, NULL::text, NULL::bigint;
      CONTINUE;
    END IF;
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

DROP FUNCTION stream_append_busy(text);
