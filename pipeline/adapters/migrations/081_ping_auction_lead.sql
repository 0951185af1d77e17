-- A ping's lead is its auction's lead: one foreign key, (auction_id, lead_id) to the auction,
-- says so and is checked once per ping, where two (to auctions, to leads) were; the auction's
-- own key to its lead keeps the lead. The index on auctions' lead_id becomes the unique
-- (lead_id, id) that key needs, and pings lose their lead_id index: a lead's pings are read
-- through its auctions (pings' unique index leads with auction_id), which saves ten index
-- entries a lead at ten buyers.
CREATE UNIQUE INDEX auctions_lead_id ON auctions (lead_id, id);
ALTER TABLE auctions ADD CONSTRAINT auctions_lead_id UNIQUE USING INDEX auctions_lead_id;
DROP INDEX auctions_lead;
ALTER TABLE pings ADD CONSTRAINT pings_auction_lead_fkey
    FOREIGN KEY (auction_id, lead_id) REFERENCES auctions (id, lead_id);
ALTER TABLE pings DROP CONSTRAINT pings_auction_id_fkey, DROP CONSTRAINT pings_lead_id_fkey;
DROP INDEX pings_lead;
