-- The tree's version: every write to network, tiers or buyers sets a new one in the writer's own
-- transaction, so a process may keep its snapshot of the tree until the version it reads moves.
-- A random uuid, never a counter: a rolled-back write or a database made anew never repeats one.
-- The round-robin turn (tiers.last_winner) moves with every lead and is not part of the tree.
CREATE TABLE tree_version (
    id      integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    version uuid NOT NULL DEFAULT gen_random_uuid()
);
INSERT INTO tree_version (id) VALUES (1);

CREATE FUNCTION bump_tree_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tree_version SET version = gen_random_uuid() WHERE id = 1;
    RETURN NULL;
END $$;

CREATE TRIGGER network_version AFTER INSERT OR UPDATE OR DELETE ON network
    FOR EACH ROW EXECUTE FUNCTION bump_tree_version();
CREATE TRIGGER network_version_truncate AFTER TRUNCATE ON network
    FOR EACH STATEMENT EXECUTE FUNCTION bump_tree_version();
CREATE TRIGGER buyers_version AFTER INSERT OR UPDATE OR DELETE ON buyers
    FOR EACH ROW EXECUTE FUNCTION bump_tree_version();
CREATE TRIGGER buyers_version_truncate AFTER TRUNCATE ON buyers
    FOR EACH STATEMENT EXECUTE FUNCTION bump_tree_version();
CREATE TRIGGER tiers_version AFTER INSERT OR DELETE ON tiers
    FOR EACH ROW EXECUTE FUNCTION bump_tree_version();
CREATE TRIGGER tiers_version_update AFTER UPDATE ON tiers FOR EACH ROW
    WHEN ((OLD.tier, OLD.name, OLD.mode, OLD.active) IS DISTINCT FROM (NEW.tier, NEW.name, NEW.mode, NEW.active))
    EXECUTE FUNCTION bump_tree_version();
CREATE TRIGGER tiers_version_truncate AFTER TRUNCATE ON tiers
    FOR EACH STATEMENT EXECUTE FUNCTION bump_tree_version();

-- Also when a session runs as a replica (a restore, a test's clean-up): a tree written any way
-- is a new tree.
ALTER TABLE network ENABLE ALWAYS TRIGGER network_version;
ALTER TABLE network ENABLE ALWAYS TRIGGER network_version_truncate;
ALTER TABLE buyers ENABLE ALWAYS TRIGGER buyers_version;
ALTER TABLE buyers ENABLE ALWAYS TRIGGER buyers_version_truncate;
ALTER TABLE tiers ENABLE ALWAYS TRIGGER tiers_version;
ALTER TABLE tiers ENABLE ALWAYS TRIGGER tiers_version_update;
ALTER TABLE tiers ENABLE ALWAYS TRIGGER tiers_version_truncate;
