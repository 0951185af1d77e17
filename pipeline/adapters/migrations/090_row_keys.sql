-- Every table has a primary key again, with no index more than before.
--
-- 086 and 089 dropped lead_events' and post_attempts' keys on their id (no query reads by it).
-- A table without a key has no replica identity, and PostgreSQL then refuses every UPDATE and
-- DELETE of it once a publication covers it: with logical replication or change-data capture
-- set up over the whole database (CREATE PUBLICATION ... FOR ALL TABLES, as a reporting replica
-- or a warehouse feed is set up), settling a post (an UPDATE of its attempt) and the retention
-- prune (DELETEs) would fail. pg_repack, the usual cure for a bloated table, wants a key too.
--
-- The key of each is the index its reads already take, made unique and given the id: a lead's
-- timeline (lead_id, id) was that index already; a lead's attempts (lead_id) take the id as a
-- second column. Each row still writes one entry into it, as before.
CREATE UNIQUE INDEX lead_events_key ON lead_events (lead_id, id);
ALTER TABLE lead_events ADD CONSTRAINT lead_events_pkey PRIMARY KEY USING INDEX lead_events_key;
DROP INDEX lead_events_lead;

CREATE UNIQUE INDEX post_attempts_key ON post_attempts (lead_id, id);
ALTER TABLE post_attempts ADD CONSTRAINT post_attempts_pkey PRIMARY KEY USING INDEX post_attempts_key;
DROP INDEX post_attempts_lead;

-- The suppression list: an entry is one of two hashes, each unique where it is set (022), so
-- neither index can be the key. A few thousand rows the operator adds and removes: an id.
ALTER TABLE suppressions ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;
