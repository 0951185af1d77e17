-- Publishers (form backends): their records, their API keys (hashed), and idempotency keys
-- scoped to the publisher and expiring.

CREATE TABLE publishers (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    verticals    text[] NOT NULL DEFAULT '{}',       -- empty: every vertical
    -- The payout rule: a fixed price per sold lead, or a share of the sale price.
    payout_kind  text NOT NULL CHECK (payout_kind IN ('fixed', 'share')),
    payout_cents bigint CHECK (payout_cents >= 0),
    share_bp     integer CHECK (share_bp BETWEEN 0 AND 10000),   -- basis points: 6000 = 60 %
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((payout_kind = 'fixed' AND payout_cents IS NOT NULL AND share_bp IS NULL)
        OR (payout_kind = 'share' AND share_bp IS NOT NULL AND payout_cents IS NULL))
);

-- A key is shown once; only its SHA-256 is kept. `id` is the public part, printed in the key.
CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    publisher_id text NOT NULL REFERENCES publishers (id),
    key_sha256   text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_publisher ON api_keys (publisher_id);

-- Which publisher sent the lead, as a column: scoped reads and payouts filter on it.
ALTER TABLE leads ADD COLUMN publisher_id text GENERATED ALWAYS AS (source ->> 'publisher_id') STORED;
CREATE INDEX leads_publisher ON leads (publisher_id, created_at);

-- Idempotency keys belong to one publisher and expire: another publisher's key never collides,
-- and a key older than the window is free again.
CREATE TABLE idempotency_keys (
    publisher_id   text NOT NULL,
    key            text NOT NULL,
    lead_id        uuid NOT NULL REFERENCES leads (id) DEFERRABLE INITIALLY DEFERRED,
    payload_sha256 text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (publisher_id, key)
);
INSERT INTO idempotency_keys (publisher_id, key, lead_id, payload_sha256, created_at)
    SELECT source ->> 'publisher_id', idempotency_key, id, payload_sha256, created_at
    FROM leads WHERE idempotency_key IS NOT NULL;
-- The lead keeps the key it came with (for tracing), no longer unique across publishers.
ALTER TABLE leads DROP CONSTRAINT leads_idempotency_key_key;
