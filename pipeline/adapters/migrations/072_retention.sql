-- Retention. Ping, post and event detail is kept PINGTREE_DETAIL_KEEP_DAYS, then pruned; each
-- buyer's day is first summed here, so reports over older days still have their counts.
CREATE TABLE buyer_days (
    day          date NOT NULL,
    buyer_id     text NOT NULL,
    pings        integer NOT NULL,
    accepts      integer NOT NULL,
    timeouts     integer NOT NULL,
    errors       integer NOT NULL,
    post_rejects integer NOT NULL,
    wins         integer NOT NULL,
    posted       integer NOT NULL,             -- leads whose post the buyer received
    late_accepts integer NOT NULL,
    p50_ping_ms  real,
    p95_ping_ms  real,
    PRIMARY KEY (day, buyer_id)
);

-- Consent records stay immutable, and are kept five years (the FTC Telemarketing Sales Rule's
-- record-keeping period): only a record older than that may be deleted, by the prune.
CREATE OR REPLACE FUNCTION consents_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.recorded_at < now() - interval '5 years' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'consent records are immutable';
END $$;
