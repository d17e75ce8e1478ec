-- The first schema. Records are the same JSON as sled's, in `record`;
-- the other columns are what queries select, order and lock on.

CREATE TABLE subscriptions (
    tenant text NOT NULL,
    id text NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- Bumped by every subscription change: a node compares it with the version
-- its in-memory copy was read at.
CREATE TABLE subscriptions_version (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL
);
INSERT INTO subscriptions_version (version) VALUES (0);

CREATE TABLE events (
    id text COLLATE "C" PRIMARY KEY,
    tenant text NOT NULL,
    source_id text,
    created_ms bigint NOT NULL,
    deliveries integer NOT NULL,
    record bytea NOT NULL
);
-- Idempotent ingest: NULL source ids never conflict.
CREATE UNIQUE INDEX events_source_id ON events (tenant, source_id);
CREATE INDEX events_created ON events (created_ms);

CREATE TABLE deliveries (
    id text COLLATE "C" PRIMARY KEY,
    -- Ingest order, across nodes: an ordered subscription's head is its
    -- pending delivery with the lowest seq.
    seq bigint GENERATED ALWAYS AS IDENTITY,
    event_id text NOT NULL,
    tenant text NOT NULL,
    subscription_id text NOT NULL,
    pending boolean NOT NULL,
    ordered boolean NOT NULL,
    due_ms bigint,
    -- A claim: the node attempting it, until when (then another may retake it).
    locked_until_ms bigint,
    locked_by text,
    record bytea NOT NULL
);
CREATE INDEX deliveries_event ON deliveries (event_id, seq);
CREATE INDEX deliveries_due ON deliveries (due_ms) WHERE pending;
CREATE INDEX deliveries_lease ON deliveries (locked_until_ms) WHERE pending AND locked_until_ms IS NOT NULL;
CREATE INDEX deliveries_subscription ON deliveries (tenant, subscription_id, seq) WHERE pending;

CREATE TABLE attempts (
    id text COLLATE "C" PRIMARY KEY,
    tenant text NOT NULL,
    subscription_id text NOT NULL,
    created_ms bigint NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX attempts_subscription ON attempts (tenant, subscription_id, id);
CREATE INDEX attempts_created ON attempts (created_ms);

CREATE TABLE plugins (
    name text PRIMARY KEY,
    sha256 text NOT NULL,
    record bytea NOT NULL
);
CREATE TABLE plugin_blobs (
    sha256 text PRIMARY KEY,
    wasm bytea NOT NULL
);

-- One row per subscription change, numbered by subscriptions_version: what a
-- node reads to catch its in-memory copy up. Old entries are swept.
CREATE TABLE subscription_changes (
    version bigint PRIMARY KEY,
    tenant text NOT NULL,
    id text NOT NULL
);
