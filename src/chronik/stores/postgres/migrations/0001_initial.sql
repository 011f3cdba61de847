-- chronik PostgreSQL schema, migration 0001.
--
-- Runs with search_path set to the store's own schema (default "chronik"), so the
-- names below are that schema's tables. To read it by hand:
--     SET search_path TO chronik;  SELECT * FROM events ORDER BY transaction_id, position;
--
-- Identifiers that compare as strings use COLLATE "C": streams list in code-point
-- order whatever the database's locale, the same as every other chronik store.

CREATE TABLE events (
    -- Store-wide, unique, increasing within a stream. Taken at insert time, so it
    -- does NOT follow commit order: readers of the global log order by
    -- (transaction_id, position) and only read finished transactions (see sql.py).
    position       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writer's top-level transaction id (64 bits, never wraps around).
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id      text        COLLATE "C" NOT NULL,
    category       text        COLLATE "C" NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    event_id       uuid        NOT NULL,
    type           text        NOT NULL,
    schema_version integer     NOT NULL,
    -- json, not jsonb: it keeps the payload exactly as encoded, and it accepts the
    -- escape \u0000, which jsonb rejects. Readable in psql either way.
    data           json        NOT NULL,
    metadata       json,
    recorded_at    timestamptz NOT NULL DEFAULT statement_timestamp(),
    -- Two writers of one stream cannot both take a version: the second gets
    -- unique_violation (SQLSTATE 23505), which chronik turns into a retry or a
    -- WrongExpectedVersionError. Writers of different streams never touch the same
    -- key, so they never wait for each other.
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

CREATE INDEX events_order_idx ON events (transaction_id, position);

CREATE INDEX events_category_order_idx ON events (category, transaction_id, position);

COMMENT ON TABLE events IS
    'chronik events. Global order: (transaction_id, position), rows of finished transactions only.';

-- One row per stream: its version and the transaction that last appended to it.
CREATE TABLE streams (
    stream_id      text   COLLATE "C" PRIMARY KEY,
    category       text   COLLATE "C" NOT NULL,
    version        bigint NOT NULL,
    transaction_id xid8   NOT NULL
);

CREATE INDEX streams_category_idx ON streams (category, stream_id);

CREATE TABLE snapshots (
    stream_id      text        COLLATE "C" PRIMARY KEY,
    version        bigint      NOT NULL,
    type           text        NOT NULL,
    schema_version integer     NOT NULL,
    data           bytea       NOT NULL,
    recorded_at    timestamptz NOT NULL
);

-- Where each named reader of the global log stands: the checkpoint (transaction_id,
-- position) of the last event it processed.
CREATE TABLE checkpoints (
    name           text        COLLATE "C" PRIMARY KEY,
    transaction_id xid8        NOT NULL,
    position       bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT statement_timestamp()
);
