-- Up Migration

-- The responses of many keyed requests, stored in one statement (IdempotencyStore.complete, which
-- sends them in batches). One update per key, each by the primary key: as one `UPDATE ... FROM
-- unnest(...)` the statement's cached plan, made while the table was small, joined by a hash over a
-- scan of the whole table, and kept doing so as it grew. Only while the key is still held by
-- `p_owners[i]`, the lease owner its request's claim recorded (docs/adr/0017).
CREATE FUNCTION idempotency_complete_all(
  p_scopes text[], p_keys text[], p_statuses int[], p_content_types text[], p_bodies text[], p_locations text[], p_owners text[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
    UPDATE idempotency_keys
       SET state = 'completed', response_status = p_statuses[i], response_content_type = p_content_types[i],
           response_body = p_bodies[i], response_location = p_locations[i]
     WHERE scope = p_scopes[i] AND key = p_keys[i] AND lease_owner = p_owners[i];
  END LOOP;
END
$$;

-- Room on each page for the rows' completions: a key's response is written into its row by an
-- update that changes no indexed column, which PostgreSQL makes in place (a HOT update, no new index
-- entries) only while the row's page has room for the new version. New pages only; the keys live a
-- day.
ALTER TABLE idempotency_keys SET (fillfactor = 50);

-- Down Migration
ALTER TABLE idempotency_keys RESET (fillfactor);
DROP FUNCTION idempotency_complete_all(text[], text[], int[], text[], text[], text[], text[]);
