-- Suppression entries become keyed hashes (HMAC-SHA256 with PINGTREE_SUPPRESSION_KEY): the plain
-- SHA-256 of a phone is brute-forced in seconds from its area code. Entries stored before stay
-- (as legacy_sha256) and are still honoured, since nobody who asked not to be contacted may be
-- contacted; the raw values needed to re-key them are not here, so the operator re-imports them.
ALTER TABLE suppressions RENAME COLUMN value_sha256 TO legacy_sha256;
ALTER TABLE suppressions DROP CONSTRAINT suppressions_pkey;
ALTER TABLE suppressions ALTER COLUMN legacy_sha256 DROP NOT NULL;
ALTER TABLE suppressions ADD COLUMN value_hmac text;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_one_hash CHECK (num_nonnulls(legacy_sha256, value_hmac) = 1);
CREATE UNIQUE INDEX suppressions_hmac ON suppressions (kind, value_hmac) WHERE value_hmac IS NOT NULL;
CREATE UNIQUE INDEX suppressions_legacy ON suppressions (kind, legacy_sha256) WHERE legacy_sha256 IS NOT NULL;
