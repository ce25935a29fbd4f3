-- Up Migration

-- Each claim of a key gets an id of its own (`claim_id`), and the request completes, releases or
-- forgets the key only while its claim is the one recorded, with its process's lease owner. The lease
-- owner alone (one per process) could not tell two claims of one process apart: a request that
-- outlived `locked_until` and was taken over by its retry in the same process could release the
-- retry's live claim (a 5xx), or store its answer after the retry's. Both are matched because an
-- older version (a rolling deploy) takes a key over without setting `claim_id`: the lease owner it
-- records still fences the claim it took the key from. NULL for a key claimed by an older version,
-- which completes it by its lease owner as before (idempotency_complete_all, kept for it).
ALTER TABLE idempotency_keys ADD COLUMN claim_id uuid;

-- As idempotency_complete_all, by claim: only while the key is in progress under `p_claims[i]`, claimed by `p_owners[i]`.
CREATE FUNCTION idempotency_complete_claims(
  p_scopes text[], p_keys text[], p_statuses int[], p_content_types text[], p_bodies text[], p_locations text[], p_claims uuid[], p_owners text[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
    UPDATE idempotency_keys
       SET state = 'completed', response_status = p_statuses[i], response_content_type = p_content_types[i],
           response_body = p_bodies[i], response_location = p_locations[i]
     WHERE scope = p_scopes[i] AND key = p_keys[i] AND state = 'in_progress' AND claim_id = p_claims[i] AND lease_owner = p_owners[i];
  END LOOP;
END
$$;

-- Down Migration
DROP FUNCTION idempotency_complete_claims(text[], text[], int[], text[], text[], text[], uuid[], text[]);
ALTER TABLE idempotency_keys DROP COLUMN claim_id;
