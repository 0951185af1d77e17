-- The auction clock starts at the first ping (not when the auction is opened): the deadline is
-- set again when the first shard starts, from the tier's time-out kept here. A buyer whose
-- shard never started (or started after the deadline) is recorded as never pinged.
ALTER TABLE auctions ADD COLUMN timeout_ms integer, ADD COLUMN first_ping_at timestamptz;
ALTER TABLE pings DROP CONSTRAINT pings_outcome_check;
ALTER TABLE pings ADD CONSTRAINT pings_outcome_check
    CHECK (outcome IN ('accept', 'reject', 'timeout', 'error', 'late', 'post_rejected', 'eligible',
                       'ineligible', 'not_pinged'));
