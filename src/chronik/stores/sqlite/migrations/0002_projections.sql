-- chronik SQLite schema, version 2: projection state and dead letters.
--
-- One row per version of each projection, so a new version can build beside the
-- old one (blue/green); `active` marks the version that serves queries.
CREATE TABLE chronik_projections (
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    status     TEXT    NOT NULL,  -- building | live | failed | retired
    active     INTEGER NOT NULL,  -- 1 for the version that serves queries
    failure    TEXT,              -- JSON: the event the projection stopped on, and why
    updated_at INTEGER NOT NULL,  -- microseconds since the Unix epoch, UTC
    PRIMARY KEY (name, version)
) WITHOUT ROWID;

-- Events a projection parked instead of stopping. The key makes parking the same
-- event twice (a runner that crashed after parking, before its checkpoint) a no-op.
CREATE TABLE chronik_dead_letters (
    projection         TEXT    NOT NULL,
    projection_version INTEGER NOT NULL,
    position           INTEGER NOT NULL,
    stream_id          TEXT    NOT NULL,
    version            INTEGER NOT NULL,
    type               TEXT    NOT NULL,
    event_id           BLOB    NOT NULL,
    checkpoint         TEXT    NOT NULL,
    error              TEXT    NOT NULL,
    attempts           INTEGER NOT NULL,
    parked_at          INTEGER NOT NULL,
    PRIMARY KEY (projection, projection_version, position)
) WITHOUT ROWID;
