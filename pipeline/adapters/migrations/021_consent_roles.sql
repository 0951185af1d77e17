-- Consent records: the contact hashes they cover; immutable even to TRUNCATE; and two roles.
ALTER TABLE consents ADD COLUMN phone_sha256 text, ADD COLUMN email_sha256 text;

CREATE TRIGGER consents_no_truncate BEFORE TRUNCATE ON consents
    FOR EACH STATEMENT EXECUTE FUNCTION consents_immutable();

-- pingtree_owner owns the schema (run `pingtree db migrate` as a member of it);
-- pingtree_app is what the API, workers and beat run as: it reads and writes, but can
-- never change, delete or truncate a consent record. Roles are cluster-wide: another database
-- on the same server may have created them already (or be creating them right now).
DO $$
BEGIN
    CREATE ROLE pingtree_owner NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$
BEGIN
    CREATE ROLE pingtree_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

DO $$
BEGIN
    EXECUTE format('GRANT pingtree_owner TO %I', current_user);
EXCEPTION WHEN others THEN NULL;   -- a migrator without the right to grant must already be one
END $$;

DO $$
DECLARE
    item record;
BEGIN
    FOR item IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
        EXECUTE format('ALTER TABLE public.%I OWNER TO pingtree_owner', item.tablename);
    END LOOP;
    FOR item IN SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' LOOP
        EXECUTE format('ALTER SEQUENCE public.%I OWNER TO pingtree_owner', item.sequencename);
    END LOOP;
    FOR item IN SELECT p.oid::regprocedure AS fn FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO pingtree_owner', item.fn);
    END LOOP;
END $$;

GRANT USAGE ON SCHEMA public TO pingtree_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO pingtree_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO pingtree_app;
REVOKE UPDATE, DELETE, TRUNCATE ON consents FROM pingtree_app;
REVOKE ALL ON schema_migrations FROM pingtree_app;
GRANT SELECT ON schema_migrations TO pingtree_app;
-- Tables later migrations create (as the owner, or as whoever runs them) are the app's too.
ALTER DEFAULT PRIVILEGES FOR ROLE pingtree_owner IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO pingtree_app;
ALTER DEFAULT PRIVILEGES FOR ROLE pingtree_owner IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO pingtree_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO pingtree_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO pingtree_app;
