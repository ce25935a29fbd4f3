-- Up Migration

-- A default for token_lots.stream_revision (migration 140), found by review: a process of an older
-- version (a rolling deploy) writes lots without the column, and was refused (23502, NOT NULL) on
-- every credit its projection runner or an account rebuild wrote. Its lots now get 0 and sort as
-- the account's first credit among their ties until a rebuild of the account writes them again,
-- as migration 140's backfill does for a lot without a history row.
ALTER TABLE token_lots ALTER COLUMN stream_revision SET DEFAULT 0;

-- Down Migration
ALTER TABLE token_lots ALTER COLUMN stream_revision DROP DEFAULT;
