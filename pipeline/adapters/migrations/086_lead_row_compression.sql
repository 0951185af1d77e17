-- Cheaper lead rows and timeline entries to write.
--
-- A lead's row is ~1.9 KB, most of it JSON (contact, qualifiers, source, form, facts, signals),
-- and scoring takes most rows just past the size (2032 bytes) at which PostgreSQL compresses a
-- row's values before storing it. It then tried the biggest value first, facts, with pglz,
-- which gave up (facts is mostly hex hashes and ZIP data), and then signals: two pglz passes a
-- lead, ~0.06 M instructions. Now facts is compressed only when nothing else fits the row
-- (STORAGE MAIN: tried after the other values, kept inline unless the row cannot fit a page
-- without moving it), and every JSON value of the row is compressed with lz4 when it is: signals
-- (~430 bytes), the value scoring adds, is the one compressed, in a few thousand instructions.
-- No value is ever refused: MAIN and lz4 change where and how a value is stored, not what fits.
-- Values written before keep their pglz form (both are read alike). No rewrite.
--
-- Moving the payload out of line (toast_tuple_target, STORAGE EXTERNAL) so that each status
-- move copies an 18-byte pointer instead does not happen below that size in PostgreSQL 15,
-- whatever toast_tuple_target says, and every claim would read it back from the TOAST table.
-- A server built without lz4 (the embedded one, `make demo` on a machine without PostgreSQL)
-- keeps pglz: only MAIN then.
ALTER TABLE leads ALTER COLUMN facts SET STORAGE MAIN;
DO $$
BEGIN
    ALTER TABLE leads
        ALTER COLUMN contact SET COMPRESSION lz4, ALTER COLUMN qualifiers SET COMPRESSION lz4,
        ALTER COLUMN source SET COMPRESSION lz4, ALTER COLUMN form SET COMPRESSION lz4,
        ALTER COLUMN facts SET COMPRESSION lz4, ALTER COLUMN signals SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4: lead values stay compressed with pglz';
END
$$;

-- A timeline entry (six a lead) is no longer written into a primary-key index on its id that
-- no query reads by: a lead's entries are read through lead_events_lead (lead_id, id), in id
-- order, and the retention prune deletes the entries it picked by their row address (ctid).
-- The id stays (the sequence gives each entry its own, in order).
ALTER TABLE lead_events DROP CONSTRAINT lead_events_pkey;

-- Nor a post attempt (one a lead, written twice: begun, then settled, which moves it out of the
-- one-open index and so is no HOT update) into post_attempts_ping: it was made for the check of
-- post_attempts' key to pings when a ping is deleted (074), and that key went in 084. The prune
-- finds a ping's attempts through its lead (post_attempts_lead), as every other read does.
DROP INDEX post_attempts_ping;
