-- Up Migration

-- append_to_stream no longer calls pg_notify. A transaction that has notified takes a cluster-wide
-- lock at commit and holds it through its WAL flush, so every append committed one at a time: at 32
-- concurrent writers appends ran at 0.14x the server's plain INSERT rate. The adapter now sends one
-- coalesced NOTIFY after its appends commit (and wakes its own subscribers directly); NOTIFY was only
-- ever a wake-up, and subscribers still poll.
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

  -- A wake-up for $all subscribers, delivered at commit; readers still take the table as the truth.
  PERFORM pg_notify('event_store_appended', '');

  RETURN QUERY SELECT 'appended'::text, v_current + v_count, v_current, v_last_tx::text, v_last_position;
END;
$$;

