-- chronik SQLite schema, version 1.
--
-- position is the rowid. AUTOINCREMENT makes SQLite never hand out a position
-- again, even one whose row was deleted, so a checkpoint can never point at an
-- event that is later replaced by another.
CREATE TABLE chronik_events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    category       TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    metadata       TEXT,
    recorded_at    INTEGER NOT NULL  -- microseconds since the Unix epoch, UTC
);

CREATE UNIQUE INDEX chronik_events_stream_version ON chronik_events (stream_id, version);

CREATE UNIQUE INDEX chronik_events_event_id ON chronik_events (event_id);

CREATE TABLE chronik_streams (
    stream_id TEXT    PRIMARY KEY,
    category  TEXT    NOT NULL,
    version   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX chronik_streams_category ON chronik_streams (category, stream_id);

CREATE TABLE chronik_snapshots (
    stream_id      TEXT    PRIMARY KEY,
    version        INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    recorded_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE chronik_checkpoints (
    name       TEXT    PRIMARY KEY,
    checkpoint TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
