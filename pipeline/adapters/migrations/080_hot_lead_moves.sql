-- A lead's status moves as HOT updates. PostgreSQL rewrites a row in place on its page, touching
-- no index, only when no indexed column (nor any column an index's WHERE names) changes; the
-- open and held indexes named status and status_at, so each of a lead's ~5 moves wrote a new
-- entry into every index of the table. They now name two generated columns that change only
-- when a lead enters or leaves flight (received .. delivering) or a hold: the moves between
-- those (scored, auctioning, delivering, a post's restarted clock) are HOT. The sweep reads the
-- leads in flight (a few seconds' worth) and checks status_at on each; the rerun the held ones.
-- The free space a HOT version needs on its page is kept by the fillfactor (new rows fill a
-- page to 60 %). Adding a stored column rewrites the table once (set first: the rewrite keeps it).
ALTER TABLE leads SET (fillfactor = 60);
ALTER TABLE leads
    ADD COLUMN in_flight boolean GENERATED ALWAYS AS
        (status IN ('received', 'validated', 'scored', 'auctioning', 'delivering')) STORED,
    ADD COLUMN held boolean GENERATED ALWAYS AS (status = 'held') STORED;
DROP INDEX leads_open;
DROP INDEX leads_held;
CREATE INDEX leads_in_flight ON leads (created_at) WHERE in_flight;
CREATE INDEX leads_held ON leads (next_run_at) WHERE held;
