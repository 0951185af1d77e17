-- Fewer index entries and no key checks for the rows a lead writes, the same promises.
--
-- As 082, 084 and 085 for pings, attempts, consents and auctions: a sale's two keys, to its lead
-- and to its ping, each a query and a row lock (written to the WAL) per sale, go. A sale is
-- inserted only from its lead's row, in the statement that reads it: settling an accepted post
-- (delivery.settle) and the deliver stage's sale (leads.sell) write it from the lead's row,
-- locked FOR UPDATE, its ping the one that row names as its award, and only when that is the
-- ping the post went to. A sale for a lead that is not there has no row to be written from. The
-- award names a ping the award read, under the lead's lock, from the lead's auction; retention
-- prunes pings only of finished leads, and never one a sale names, and deletes a lead's sale
-- before the lead, as before.
ALTER TABLE sales DROP CONSTRAINT sales_lead_id_fkey, DROP CONSTRAINT sales_ping_id_fkey;
-- sales_ping served the key's check when a ping was deleted (074); the one query that asks
-- whether a sale names a ping, the retention prune's, names the ping's lead too and finds the
-- lead's one sale by the primary key.
DROP INDEX sales_ping;

-- No query reads leads by publisher: the publisher's view reads a lead by its id, payouts reach
-- the lead from its sale. The index took an entry at the insert and at each of the lead's two
-- updates that are not HOT (the validation, the sale).
DROP INDEX leads_publisher;

-- As lead_events' id (086): no query reads a post attempt by its id alone. A lease run out is
-- expired by the lead and the id (the lead's one open attempt, post_attempts_one_open); every
-- other read goes through the lead. The key took an entry at the attempt's insert and another
-- at its settling, which is never a HOT update. The id stays (the sequence gives each its own).
ALTER TABLE post_attempts DROP CONSTRAINT post_attempts_pkey;
