-- Single-flight delivery: a post attempt is written (open, under a lease) before it is sent;
-- at most one open attempt per lead; the sweep's re-drives are counted per lead.

ALTER TABLE post_attempts ALTER COLUMN outcome DROP NOT NULL;
ALTER TABLE post_attempts DROP CONSTRAINT post_attempts_outcome_check;
-- NULL: in flight.  retry: a 5xx answer (not processed).  unknown: no answer (time-out, dropped
-- connection, a worker that died: its lease expired).  conflict: 409 to a re-sent post.
ALTER TABLE post_attempts ADD CONSTRAINT post_attempts_outcome_check
    CHECK (outcome IN ('accepted', 'rejected', 'retry', 'unknown', 'conflict'));
ALTER TABLE post_attempts
    ADD COLUMN token        uuid,
    ADD COLUMN lease_until  timestamptz,
    ADD COLUMN settled_at   timestamptz,
    -- An answer that came after its lease was taken over: kept, and an accept is raised.
    ADD COLUMN late_outcome text,
    ADD COLUMN late_reason  text;
CREATE UNIQUE INDEX post_attempts_one_open ON post_attempts (lead_id) WHERE outcome IS NULL;
CREATE UNIQUE INDEX post_attempts_token ON post_attempts (token);

ALTER TABLE leads ADD COLUMN redrives integer NOT NULL DEFAULT 0;

ALTER TABLE network
    ADD COLUMN max_redrives    integer NOT NULL DEFAULT 5,
    ADD COLUMN max_post_buyers integer NOT NULL DEFAULT 2;
