-- A lead's many child rows, cheaper to write. A foreign key costs a query per row inserted (the
-- parent looked up and locked FOR KEY SHARE): 27 a lead at ten buyers for the keys below. A
-- buyer's row lock is also written to the WAL, and with leads in flight on several workers the
-- same buyer's row is locked by many transactions at once, which makes it a multixact.
--
-- Each row below is inserted only by a statement that reads its parent in the same statement,
-- so the parent exists by construction, as the key checked:
-- - pings: inserted from the auction's row (record_pings locks it FOR SHARE, close_lone_shard
--   and close_auction close it), their lead_id that auction's;
-- - lead_events: inserted from the lead's row the statement inserts (intake) or updates (every
--   move, the sale), or locks FOR KEY SHARE (record_event).
-- Buyers are deactivated, never deleted (tree load): the trigger below refuses the DELETE the
-- buyer keys of pings and sales refused. Retention deletes children before parents, as before.
ALTER TABLE pings DROP CONSTRAINT pings_auction_lead_fkey, DROP CONSTRAINT pings_buyer_id_fkey;
ALTER TABLE sales DROP CONSTRAINT sales_buyer_id_fkey;
ALTER TABLE lead_events DROP CONSTRAINT lead_events_lead_id_fkey;
-- Only the pings' key named (lead_id, id); an auction's lead is found by (lead_id, cycle, tier).
ALTER TABLE auctions DROP CONSTRAINT auctions_lead_id;

CREATE FUNCTION buyers_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'buyers are deactivated, never deleted (their pings and sales name them)';
END $$;
CREATE TRIGGER buyers_no_delete BEFORE DELETE ON buyers
    FOR EACH ROW EXECUTE FUNCTION buyers_never_deleted();
ALTER FUNCTION buyers_never_deleted() OWNER TO pingtree_owner;

-- pings_buyer_at had an entry for every ping (ten a lead); its only reader, the post-reject
-- pause, counts a buyer's rejected posts: those are now all it holds. Reports read pings by
-- time (the BRIN index on at).
CREATE INDEX pings_post_rejected ON pings (buyer_id, at) WHERE outcome = 'post_rejected';
DROP INDEX pings_buyer_at;
