-- BRIN indexes on the append-ordered timestamps: /metrics, reports and the prune read a recent
-- window (or an old one) of these tables without scanning all history. A BRIN index is a few
-- pages per million rows and costs next to nothing on insert.
CREATE INDEX leads_created_brin ON leads USING brin (created_at);
CREATE INDEX auctions_started_brin ON auctions USING brin (started_at);
CREATE INDEX pings_at_brin ON pings USING brin (at);
CREATE INDEX post_attempts_at_brin ON post_attempts USING brin (at);
CREATE INDEX sales_sold_brin ON sales USING brin (sold_at);
CREATE INDEX lead_events_at_brin ON lead_events USING brin (at);
