-- A shard is finished once its answers are written: the chord's award waits for all of them
-- (a duplicated header that found its shard claimed must not close the auction early).
ALTER TABLE auction_shards ADD COLUMN finished_at timestamptz;
