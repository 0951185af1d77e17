-- As 082 for pings and timeline entries: the keys of a lead's post attempts and of its auction's
-- shards, a query and a row lock per row written, go. Each row is written from its parent:
-- - post_attempts: by claim_post, from the lead's row it locks FOR UPDATE and that lead's
--   awarded ping, or by begin_post in the same transaction, under that lock, for that ping;
-- - auction_shards: by claim_shard, from the auction's row it reads in the same statement (a
--   ping message for an auction that is not there claims nothing).
-- Retention deletes attempts and shards before their pings, leads and auctions, as before.
ALTER TABLE post_attempts DROP CONSTRAINT post_attempts_lead_id_fkey,
    DROP CONSTRAINT post_attempts_ping_id_fkey;
ALTER TABLE auction_shards DROP CONSTRAINT auction_shards_auction_id_fkey;
