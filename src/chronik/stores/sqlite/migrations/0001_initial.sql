-- chronik SQLite schema, version 1.
--
-- position is the rowid: one more than the highest position, given out under the
-- write lock that BEGIN IMMEDIATE takes, so positions follow commit order. Events are
-- never deleted, so a position is never given out twice. (AUTOINCREMENT would only
-- add a write of sqlite_sequence to every commit.)
--
-- A stream's version is max(version) over chronik_events_stream_version, and the
-- list of streams is that index grouped: no table of streams to update on every
-- commit, which would add two pages to each commit's write-ahead log.
CREATE TABLE chronik_events (
    position       INTEGER PRIMARY KEY,
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
