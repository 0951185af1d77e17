-- pingtree schema v1: the tree, leads with their consent and history, auctions, pings, sales.

CREATE TABLE network (
    id                  integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    score_floor         integer NOT NULL DEFAULT 50,
    bid_floor_cents     bigint  NOT NULL DEFAULT 100,
    auction_timeout_ms  integer NOT NULL DEFAULT 10000,
    max_cycles          integer NOT NULL DEFAULT 2,
    rerun_interval_s    integer NOT NULL DEFAULT 300,
    duplicate_window_h  integer NOT NULL DEFAULT 24,
    stuck_after_s       integer NOT NULL DEFAULT 60,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
INSERT INTO network (id) VALUES (1);

CREATE TABLE tiers (
    tier        integer PRIMARY KEY,
    name        text NOT NULL,
    mode        text NOT NULL CHECK (mode IN ('auction', 'waterfall', 'round_robin')),
    active      boolean NOT NULL DEFAULT true,
    last_winner text
);

CREATE TABLE buyers (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    tier         integer NOT NULL,
    priority     integer NOT NULL DEFAULT 0,
    bid_cents    bigint CHECK (bid_cents >= 0),
    verticals    text[] NOT NULL,
    geo          jsonb NOT NULL DEFAULT '{}',
    min_score    integer NOT NULL DEFAULT 0,
    rules        jsonb NOT NULL DEFAULT '[]',
    schedule     jsonb,
    caps         jsonb NOT NULL DEFAULT '{}',
    ping_url     text NOT NULL,
    post_url     text NOT NULL,
    pre_ping_url text,
    timeout_ms   integer NOT NULL DEFAULT 3000,
    secret       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE leads (
    id              uuid PRIMARY KEY,
    status          text NOT NULL CHECK (status IN ('received', 'validated', 'scored', 'auctioning',
                        'delivering', 'held', 'sold', 'rejected', 'unsold')),
    status_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    vertical        text NOT NULL,
    idempotency_key text UNIQUE,
    payload_sha256  text NOT NULL,
    contact         jsonb NOT NULL,          -- personal data: only the post and the validate stage read it
    qualifiers      jsonb NOT NULL,
    source          jsonb NOT NULL,
    form            jsonb,
    facts           jsonb,                   -- normalisation results of the validate stage
    phone_sha256    text,
    email_sha256    text,
    score           integer,
    signals         jsonb,
    reject_reasons  text[] NOT NULL DEFAULT '{}',
    duplicate_of    uuid,
    cycle           integer NOT NULL DEFAULT 0,
    auction_id      uuid,                    -- the auction the lead is in (auctioning/delivering)
    award_ping_id   uuid,                    -- the bid being delivered (delivering)
    next_run_at     timestamptz,             -- held: when the next cycle is due
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX leads_phone_dup ON leads (vertical, phone_sha256, created_at) WHERE phone_sha256 IS NOT NULL;
CREATE INDEX leads_email_dup ON leads (vertical, email_sha256, created_at) WHERE email_sha256 IS NOT NULL;
CREATE INDEX leads_open ON leads (status, status_at) WHERE status NOT IN ('sold', 'rejected', 'unsold');
CREATE INDEX leads_held ON leads (next_run_at) WHERE status = 'held';

-- The consent record is the legal foundation of every sale: written once, never changed.
CREATE TABLE consents (
    lead_id              uuid PRIMARY KEY REFERENCES leads (id),
    ip                   inet NOT NULL,
    consented_at         timestamptz NOT NULL,
    text                 text NOT NULL,
    text_sha256          text NOT NULL,
    page_url             text,
    user_agent           text,
    trustedform_cert_url text,
    jornaya_leadid       text,
    recorded_at          timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION consents_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent records are immutable';
END $$;
CREATE TRIGGER consents_no_change BEFORE UPDATE OR DELETE ON consents
    FOR EACH ROW EXECUTE FUNCTION consents_immutable();

CREATE TABLE lead_events (
    id      bigserial PRIMARY KEY,
    lead_id uuid NOT NULL REFERENCES leads (id),
    status  text NOT NULL,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    detail  jsonb
);
CREATE INDEX lead_events_lead ON lead_events (lead_id, id);

CREATE TABLE auctions (
    id          uuid PRIMARY KEY,
    lead_id     uuid NOT NULL REFERENCES leads (id),
    cycle       integer NOT NULL,
    tier        integer NOT NULL,
    mode        text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    deadline_at timestamptz NOT NULL,
    closed_at   timestamptz,
    buyer_ids   text[] NOT NULL,             -- eligible buyers in rank order
    shards      integer NOT NULL,
    skipped     jsonb NOT NULL DEFAULT '[]',
    UNIQUE (lead_id, cycle, tier)
);
CREATE INDEX auctions_lead ON auctions (lead_id);

CREATE TABLE auction_shards (
    auction_id uuid NOT NULL REFERENCES auctions (id),
    shard      integer NOT NULL,
    started_at timestamptz,
    PRIMARY KEY (auction_id, shard)
);

CREATE TABLE pings (
    id          uuid PRIMARY KEY,
    auction_id  uuid NOT NULL REFERENCES auctions (id),
    lead_id     uuid NOT NULL REFERENCES leads (id),
    buyer_id    text NOT NULL REFERENCES buyers (id),
    tier        integer NOT NULL,
    cycle       integer NOT NULL,
    rank        integer NOT NULL,
    kind        text NOT NULL DEFAULT 'ping' CHECK (kind IN ('ping', 'pre_ping')),
    outcome     text NOT NULL CHECK (outcome IN ('accept', 'reject', 'timeout', 'error', 'late',
                    'post_rejected', 'eligible', 'ineligible')),
    bid_cents   bigint,
    ref         text,
    latency_ms  integer,
    reason      text,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (auction_id, buyer_id, kind)
);
CREATE INDEX pings_lead ON pings (lead_id);
CREATE INDEX pings_buyer_at ON pings (buyer_id, at);

CREATE TABLE post_attempts (
    id          bigserial PRIMARY KEY,
    lead_id     uuid NOT NULL REFERENCES leads (id),
    ping_id     uuid NOT NULL REFERENCES pings (id),
    buyer_id    text NOT NULL,
    attempt     integer NOT NULL,
    http_status integer,
    outcome     text NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'retry')),
    reason      text,
    latency_ms  integer,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX post_attempts_lead ON post_attempts (lead_id);

-- One sale per lead, ever: the primary key is the exclusivity guarantee.
CREATE TABLE sales (
    lead_id       uuid PRIMARY KEY REFERENCES leads (id),
    buyer_id      text NOT NULL REFERENCES buyers (id),
    ping_id       uuid NOT NULL REFERENCES pings (id),
    price_cents   bigint NOT NULL CHECK (price_cents >= 0),
    sold_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    returned_at   timestamptz,
    return_reason text
);
CREATE INDEX sales_buyer ON sales (buyer_id, sold_at);

-- Cap counters per buyer and period (period start in the buyer's timezone).
CREATE TABLE cap_usage (
    buyer_id     text NOT NULL REFERENCES buyers (id),
    period       text NOT NULL CHECK (period IN ('hourly', 'daily', 'weekly', 'monthly')),
    period_start timestamptz NOT NULL,
    leads        integer NOT NULL DEFAULT 0,
    spend_cents  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (buyer_id, period, period_start)
);
CREATE TABLE cap_reservations (
    lead_id      uuid NOT NULL REFERENCES leads (id),
    ping_id      uuid NOT NULL REFERENCES pings (id),
    buyer_id     text NOT NULL,
    period       text NOT NULL,
    period_start timestamptz NOT NULL,
    price_cents  bigint NOT NULL,
    PRIMARY KEY (ping_id, period)
);

-- Internal do-not-contact list: hashes of normalised phones and emails.
CREATE TABLE suppressions (
    kind         text NOT NULL CHECK (kind IN ('phone', 'email')),
    value_sha256 text NOT NULL,
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value_sha256)
);
