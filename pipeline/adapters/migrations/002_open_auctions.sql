-- The beat's deadline close looks for open auctions past their deadline.
CREATE INDEX auctions_open ON auctions (deadline_at) WHERE closed_at IS NULL;
