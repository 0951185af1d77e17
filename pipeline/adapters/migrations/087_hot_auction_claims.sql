-- A shard's claim of its auction as a HOT update. The claim starts the auction's clock
-- (first_ping_at, deadline_at), and deadline_at was the key of auctions_open, so every claim
-- wrote a new entry into each of the table's four indexes. The open index now names started_at,
-- which nothing changes after the auction opens: the claim touches no index when its page has
-- room (it comes moments after the insert). The overdue close reads the open auctions (a few
-- seconds' worth) from the index and checks deadline_at on each, as the sweep does for leads
-- (080). The close still writes closed_at, which the index's WHERE names: the closed auction
-- leaves the index.
DROP INDEX auctions_open;
CREATE INDEX auctions_open ON auctions (started_at) WHERE closed_at IS NULL;
