-- chronik SQLite schema, version 6: deleted streams and stream metadata (docs/lifecycle.md).
--
-- One row per stream that is deleted (soft, hard or archived) or has metadata; every
-- other stream has none, so appends and reads of ordinary streams find nothing here
-- with one seek of a small table. A stream's version stays max(version) of its
-- events: a delete appends its deletion event, and a scavenge never removes a
-- stream's last event, so that maximum is never lost (and no position is given out
-- twice: the last event of the log is the last event of its stream).
CREATE TABLE chronik_streams (
    stream_id       TEXT    PRIMARY KEY,
    deleted         TEXT,              -- soft | hard | archived; NULL: live
    max_count       INTEGER,
    max_age         INTEGER,           -- microseconds
    truncate_before INTEGER,
    updated_at      INTEGER NOT NULL   -- microseconds since the Unix epoch, UTC
) WITHOUT ROWID;
