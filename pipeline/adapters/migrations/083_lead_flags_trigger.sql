-- The lead row's derived columns (in_flight and held, which the sweep's and the rerun's partial
-- indexes name, and publisher_id) and its status check, kept by one trigger instead of three
-- generated columns and a CHECK. PostgreSQL 15 reads a generated column's expression and a
-- CHECK's from their stored text, plans and compiles them again for every statement that writes
-- the table, all three generated columns on every UPDATE whatever it sets: about 0.15 M
-- instructions per statement, seven statements a lead. The trigger's plans are kept per
-- connection, and it runs only when a write names one of these columns (a post's restarted
-- stuck clock, an auction's claim, names none).
--
-- DROP EXPRESSION keeps each column and its values (no rewrite); the flags stay what the
-- generated columns made them, so migration 080's HOT moves hold: a move within flight leaves
-- them unchanged.
ALTER TABLE leads ALTER COLUMN in_flight DROP EXPRESSION, ALTER COLUMN held DROP EXPRESSION,
    ALTER COLUMN publisher_id DROP EXPRESSION;

CREATE FUNCTION leads_status_flags() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT NEW.status = ANY (ARRAY['received', 'validated', 'scored', 'auctioning', 'delivering',
                                   'held', 'sold', 'rejected', 'unsold']) THEN
        RAISE EXCEPTION 'a lead''s status is one of nine'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'leads_status_check';
    END IF;
    NEW.in_flight := NEW.status IN ('received', 'validated', 'scored', 'auctioning', 'delivering');
    NEW.held := NEW.status = 'held';
    NEW.publisher_id := NEW.source ->> 'publisher_id';
    RETURN NEW;
END $$;
ALTER FUNCTION leads_status_flags() OWNER TO pingtree_owner;
-- Any write naming a column the trigger reads or sets runs it: no write sets a flag apart.
CREATE TRIGGER leads_status_flags BEFORE INSERT OR UPDATE OF status, source, in_flight, held, publisher_id
    ON leads FOR EACH ROW EXECUTE FUNCTION leads_status_flags();
ALTER TABLE leads DROP CONSTRAINT leads_status_check;
