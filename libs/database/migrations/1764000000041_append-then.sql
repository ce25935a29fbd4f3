-- Up Migration

-- Appends and the work that must commit with them in ONE statement, so in one round trip and one
-- transaction: each *_then function calls its append function and, when that appended anything,
-- executes p_then, SQL the caller hands in (the inline projections: statements without parameters
-- that name the transaction as pg_current_xact_id()). A failing statement in p_then fails the call,
-- and with it every append of the transaction. NULL p_then runs nothing.

CREATE FUNCTION append_one_then(
  p_stream_id text, p_expected_kind text, p_expected_revision bigint,
  p_event_ids uuid[], p_event_types text[], p_data text[], p_metadata text[], p_then text
) RETURNS TABLE (status text, next_revision bigint, actual_revision bigint, commit_position text, prepare_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_appended boolean := false;
BEGIN
  FOR r IN SELECT * FROM append_one(p_stream_id, p_expected_kind, p_expected_revision, p_event_ids, p_event_types, p_data, p_metadata) LOOP
    v_appended := v_appended OR r.status = 'appended';
    status := r.status; next_revision := r.next_revision; actual_revision := r.actual_revision;
    commit_position := r.commit_position; prepare_position := r.prepare_position;
    RETURN NEXT;
  END LOOP;
  IF v_appended AND p_then IS NOT NULL THEN EXECUTE p_then; END IF;
END;
$$;

CREATE FUNCTION append_to_stream_then(
  p_stream_id text, p_expected_kind text, p_expected_revision bigint,
  p_event_ids uuid[], p_event_types text[], p_data text[], p_metadata text[], p_then text
) RETURNS TABLE (status text, next_revision bigint, actual_revision bigint, commit_position text, prepare_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_appended boolean := false;
BEGIN
  FOR r IN SELECT * FROM append_to_stream(p_stream_id, p_expected_kind, p_expected_revision, p_event_ids, p_event_types, p_data, p_metadata) LOOP
    v_appended := v_appended OR r.status = 'appended';
    status := r.status; next_revision := r.next_revision; actual_revision := r.actual_revision;
    commit_position := r.commit_position; prepare_position := r.prepare_position;
    RETURN NEXT;
  END LOOP;
  IF v_appended AND p_then IS NOT NULL THEN EXECUTE p_then; END IF;
END;
$$;

CREATE FUNCTION append_to_streams_then(
  p_stream_ids text[], p_expected_kinds text[], p_expected_revisions bigint[], p_counts int[],
  p_event_ids uuid[], p_event_types text[], p_data text[], p_metadata text[], p_then text
) RETURNS TABLE (request int, status text, next_revision bigint, actual_revision bigint, commit_position text, prepare_position bigint)
LANGUAGE plpgsql AS $$
DECLARE
  r record;
  v_appended boolean := false;
BEGIN
  FOR r IN SELECT * FROM append_to_streams(p_stream_ids, p_expected_kinds, p_expected_revisions, p_counts, p_event_ids, p_event_types, p_data, p_metadata) LOOP
    v_appended := v_appended OR r.status = 'appended';
    request := r.request; status := r.status; next_revision := r.next_revision; actual_revision := r.actual_revision;
    commit_position := r.commit_position; prepare_position := r.prepare_position;
    RETURN NEXT;
  END LOOP;
  IF v_appended AND p_then IS NOT NULL THEN EXECUTE p_then; END IF;
END;
$$;

-- Down Migration
DROP FUNCTION append_to_streams_then(text[], text[], bigint[], int[], uuid[], text[], text[], text[], text);
DROP FUNCTION append_to_stream_then(text, text, bigint, uuid[], text[], text[], text[], text);
DROP FUNCTION append_one_then(text, text, bigint, uuid[], text[], text[], text[], text);
