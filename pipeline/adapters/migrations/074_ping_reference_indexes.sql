-- Deleting a ping makes PostgreSQL check every row that references it: without an index on
-- the referencing column that is a scan of the whole table per deleted ping, which is what
-- made `pingtree db prune` crawl on a month of history (1M pings). cap_reservations is
-- covered by its primary key (ping_id, period).
CREATE INDEX IF NOT EXISTS sales_ping ON sales (ping_id);
CREATE INDEX IF NOT EXISTS post_attempts_ping ON post_attempts (ping_id);
