-- Cheaper checks on the rows a lead writes, the same rules.
--
-- A table's CHECK constraints are read from their stored text, planned and compiled again by
-- every statement that writes the table (PostgreSQL 15), whatever it writes: a shard's pings,
-- a post attempt begun and settled, a sale (~0.05 M instructions each, four a lead). A domain's
-- constraint is planned once per connection (its type cache) and only evaluated per row. So
-- each checked column below becomes a domain carrying the same check under the same name:
-- created without it, so that changing the column's type is a relabel (no rewrite; the indexes
-- are kept), then given it (one scan of the table, which checks the rows already there).
CREATE DOMAIN ping_kind AS text;
CREATE DOMAIN ping_outcome AS text;
CREATE DOMAIN post_outcome AS text;
CREATE DOMAIN price_cents AS bigint;
ALTER TABLE pings DROP CONSTRAINT pings_kind_check, DROP CONSTRAINT pings_outcome_check,
    ALTER COLUMN kind TYPE ping_kind, ALTER COLUMN outcome TYPE ping_outcome;
ALTER TABLE post_attempts DROP CONSTRAINT post_attempts_outcome_check,
    ALTER COLUMN outcome TYPE post_outcome;
ALTER TABLE sales DROP CONSTRAINT sales_price_cents_check, ALTER COLUMN price_cents TYPE price_cents;
ALTER DOMAIN ping_kind ADD CONSTRAINT pings_kind_check CHECK (VALUE IN ('ping', 'pre_ping'));
ALTER DOMAIN ping_outcome ADD CONSTRAINT pings_outcome_check CHECK (VALUE IN
    ('accept', 'reject', 'timeout', 'error', 'late', 'post_rejected', 'eligible', 'ineligible',
     'not_pinged'));
ALTER DOMAIN post_outcome ADD CONSTRAINT post_attempts_outcome_check CHECK (VALUE IN
    ('accepted', 'rejected', 'retry', 'unknown', 'conflict'));
ALTER DOMAIN price_cents ADD CONSTRAINT sales_price_cents_check CHECK (VALUE >= 0);
ALTER DOMAIN ping_kind OWNER TO pingtree_owner;
ALTER DOMAIN ping_outcome OWNER TO pingtree_owner;
ALTER DOMAIN post_outcome OWNER TO pingtree_owner;
ALTER DOMAIN price_cents OWNER TO pingtree_owner;

-- As 082 and 084: two more keys whose rows are written from their parent's row, each a query
-- and a row lock (written to the WAL) per lead:
-- - consents: inserted by the intake's statement from the lead row that statement inserts;
-- - auctions: inserted by open_auction's statement from the lead row that statement moves
--   (a lead its caller holds locked).
-- Retention deletes a lead's auctions before the lead, and its consent record with it, as before.
ALTER TABLE consents DROP CONSTRAINT consents_lead_id_fkey;
ALTER TABLE auctions DROP CONSTRAINT auctions_lead_id_fkey;
