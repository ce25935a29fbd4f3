-- Up Migration

-- A payment id credits one account. Direct purchases (POST /v1/accounts/{userId}/purchases) now
-- claim their paymentId in payment_streams before their append, as a provider payment's initiation
-- always did, and a paymentId claimed by another account is 409 PAYMENT_ID_REUSED. Purchases
-- credited before this migration claim theirs here: each paymentId goes to the account it was first
-- credited to (a paymentId credited to several accounts before keeps those credits; it credits no
-- further account). Provider payments' rows are there already and are left as they are.
INSERT INTO payment_streams (payment_id, user_id, created_at)
SELECT DISTINCT ON (payment_id) payment_id, user_id, created_at
FROM token_transactions
WHERE transaction_type = 'purchase' AND payment_id IS NOT NULL
ORDER BY payment_id, created_at, stream_revision
ON CONFLICT (payment_id) DO NOTHING;

-- Down Migration

-- Nothing to undo: the code before this migration reads a claim of a direct purchase as its
-- account, and finds no provider payment in it (404), as it did without the row.
