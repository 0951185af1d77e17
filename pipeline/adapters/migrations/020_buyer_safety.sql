-- What one buyer may get: pre-ping hashes only with a data agreement (opt-in), and a pause for
-- a buyer that takes posts (the full lead) and rejects too many of them.
ALTER TABLE buyers ADD COLUMN pre_ping_hashes boolean NOT NULL DEFAULT false;
ALTER TABLE buyers ADD COLUMN paused_until timestamptz;
ALTER TABLE buyers ADD COLUMN pause_reason text;

ALTER TABLE network ADD COLUMN post_reject_pause_rate double precision NOT NULL DEFAULT 0.5
    CHECK (post_reject_pause_rate > 0 AND post_reject_pause_rate <= 1);
ALTER TABLE network ADD COLUMN post_reject_pause_min_posts integer NOT NULL DEFAULT 20
    CHECK (post_reject_pause_min_posts >= 1);
ALTER TABLE network ADD COLUMN post_reject_pause_h integer NOT NULL DEFAULT 24
    CHECK (post_reject_pause_h >= 1);
