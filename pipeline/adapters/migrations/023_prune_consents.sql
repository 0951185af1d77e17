-- The application role may not DELETE consent records; the retention prune still must remove
-- those past their keeping period. This function, owned by pingtree_owner, deletes only the
-- consents of the given leads that the consents trigger lets go (older than the keeping period);
-- it is all the application role may do to a consent record besides INSERT and SELECT.
CREATE FUNCTION prune_consents(lead_ids uuid[]) RETURNS integer
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH gone AS (DELETE FROM consents WHERE lead_id = ANY(lead_ids) RETURNING 1)
    SELECT count(*)::integer FROM gone
$$;
ALTER FUNCTION prune_consents(uuid[]) OWNER TO pingtree_owner;
REVOKE ALL ON FUNCTION prune_consents(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION prune_consents(uuid[]) TO pingtree_app;
