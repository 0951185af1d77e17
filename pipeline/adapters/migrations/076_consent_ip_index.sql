-- The score stage counts the leads from the same consent IP in the last day: an index lookup,
-- not a scan of every consent record (with its text) for each lead scored.
CREATE INDEX IF NOT EXISTS consents_ip_recorded ON consents (ip, recorded_at);
