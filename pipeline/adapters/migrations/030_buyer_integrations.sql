-- Buyer integrations: a buyer speaks the native protocol (its URLs) or its own API, described
-- by an integration document; credentials are kept apart so no view ever reads them by accident.
ALTER TABLE buyers ALTER COLUMN ping_url DROP NOT NULL;
ALTER TABLE buyers ALTER COLUMN post_url DROP NOT NULL;
-- JSON text, not jsonb: jsonb reorders keys, and a buyer's form fields go out in the order written.
ALTER TABLE buyers ADD COLUMN integration text;
ALTER TABLE buyers ADD COLUMN credentials jsonb NOT NULL DEFAULT '{}';
