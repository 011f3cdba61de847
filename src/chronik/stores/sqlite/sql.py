"""Every SQL statement the SQLite store runs, one per operation.

Statements are constants: caller text never becomes SQL. Filters that take a list
pass it as one JSON parameter and unpack it with ``json_each``.
"""

from typing import Final

TABLES: Final = "SELECT name FROM sqlite_master WHERE type = 'table'"
CREATE_MIGRATIONS: Final = """
CREATE TABLE IF NOT EXISTS chronik_migrations (
    name       TEXT    PRIMARY KEY,
    applied_at INTEGER NOT NULL
) WITHOUT ROWID"""
APPLIED_MIGRATIONS: Final = "SELECT name FROM chronik_migrations ORDER BY name"
RECORD_MIGRATION: Final = "INSERT INTO chronik_migrations (name, applied_at) VALUES (?, ?)"

# max() over the (stream_id, version) index: one seek. Always one row (NULL: no stream).
STREAM_VERSION: Final = "SELECT max(version) FROM chronik_events WHERE stream_id = ?"
# The stream's version and how it is deleted (NULL: live), in one statement: what an
# append checks and what stream_info reports. Always one row.
STREAM_STATE: Final = """
SELECT (SELECT max(version) FROM chronik_events WHERE stream_id = ?1),
       (SELECT deleted FROM chronik_streams WHERE stream_id = ?1)"""
# A new stream's append inserts version 1 without reading the version; it only asks
# whether the id was deleted (a soft-deleted stream goes on after its last version).
STREAM_DELETED: Final = "SELECT deleted FROM chronik_streams WHERE stream_id = ?"
INSERT_EVENT: Final = """
INSERT INTO chronik_events
    (stream_id, category, version, event_id, type, schema_version, data, metadata, recorded_at, tags)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
INSERT_TAG: Final = "INSERT INTO chronik_event_tags (tag, position) VALUES (?, ?)"
LAST_POSITION: Final = "SELECT last_insert_rowid()"
FIND_EVENT_ID: Final = "SELECT stream_id, version, position FROM chronik_events WHERE event_id = ?"

KIND: Final = "sqlite"
"""The kind of this store's checkpoints: ``Checkpoint("sqlite", (position,))``."""
# In the order of RecordedEvent's constructor; 'sqlite' is the checkpoint kind.
_COLUMNS: Final = (
    f"stream_id, version, position, '{KIND}', event_id, type, schema_version, data, metadata, recorded_at, "
    "tags"
)
# A stream's events: the stream id and checkpoint kind are known, so not selected.
_STREAM_COLUMNS: Final = (
    "version, position, event_id, type, schema_version, data, metadata, recorded_at, tags"
)
# What a read of a stream shows (chronik.lifecycle): nothing of a deleted stream, and
# nothing before truncate_before, before the last max_count, or older than max_age
# (?5 is now, in microseconds). The bounds are constant subqueries, evaluated once, so
# the read stays a range of the (stream_id, version) index.
_READ_STREAM = f"""
WITH s AS (SELECT deleted, max_count, max_age, truncate_before FROM chronik_streams WHERE stream_id = ?1)
SELECT {_STREAM_COLUMNS} FROM chronik_events
WHERE stream_id = ?1 AND version <= ?3
  AND version >= max(?2,
      coalesce((SELECT truncate_before FROM s), 1),
      coalesce((SELECT max(version) FROM chronik_events WHERE stream_id = ?1)
               - (SELECT max_count FROM s) + 1, 1))
  AND NOT EXISTS (SELECT 1 FROM s WHERE deleted IS NOT NULL)
  AND ((SELECT max_age FROM s) IS NULL OR recorded_at >= ?5 - (SELECT max_age FROM s))
ORDER BY version {{order}} LIMIT ?4"""
READ_STREAM_FORWARD: Final = _READ_STREAM.format(order="ASC")
READ_STREAM_BACKWARD: Final = _READ_STREAM.format(order="DESC")
READ_ALL: Final = f"""
SELECT {_COLUMNS} FROM chronik_events
WHERE position > ?1 ORDER BY position LIMIT ?2"""
READ_ALL_FILTERED: Final = f"""
SELECT {_COLUMNS} FROM chronik_events
WHERE position > ?1
  AND (?3 IS NULL OR category IN (SELECT value FROM json_each(?3)))
  AND (?4 IS NULL OR type IN (SELECT value FROM json_each(?4)))
ORDER BY position LIMIT ?2"""
HEAD: Final = "SELECT max(position) FROM chronik_events"

# Streams walk the (stream_id, version) index in order, one group per stream.
# Deleted streams are left out (the subquery is computed once, over a small table).
_NOT_DELETED: Final = "stream_id NOT IN (SELECT stream_id FROM chronik_streams WHERE deleted IS NOT NULL)"
LIST_STREAMS: Final = f"""
SELECT stream_id, max(version) FROM chronik_events
WHERE stream_id > ?1 AND {_NOT_DELETED}
GROUP BY stream_id ORDER BY stream_id LIMIT ?2"""
# A category's streams are 'cat' and those from 'cat-' up to (not including) 'cat.'
# ('.' sorts right after '-'): a range of the same index.
LIST_CATEGORY_STREAMS: Final = f"""
SELECT stream_id, max(version) FROM chronik_events
WHERE ((stream_id >= ?1 || '-' AND stream_id < ?1 || '.') OR stream_id = ?1) AND stream_id > ?2
  AND {_NOT_DELETED}
GROUP BY stream_id ORDER BY stream_id LIMIT ?3"""

SAVE_SNAPSHOT: Final = """
INSERT INTO chronik_snapshots (stream_id, version, type, schema_version, data, recorded_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (stream_id) DO UPDATE SET
    version = excluded.version, type = excluded.type, schema_version = excluded.schema_version,
    data = excluded.data, recorded_at = excluded.recorded_at"""
LOAD_SNAPSHOT: Final = """
SELECT version, type, schema_version, data, recorded_at FROM chronik_snapshots WHERE stream_id = ?"""

SAVE_CHECKPOINT: Final = """
INSERT INTO chronik_checkpoints (name, checkpoint, updated_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET checkpoint = excluded.checkpoint, updated_at = excluded.updated_at"""
LOAD_CHECKPOINT: Final = "SELECT checkpoint FROM chronik_checkpoints WHERE name = ?"

# -- subscriptions ----------------------------------------------------------------------
# A filtered page is read as a window of the next ?2 positions, whatever they hold, so
# the page can say how far it read even when no event in it matched. One writer at a
# time (BEGIN IMMEDIATE) means every position up to the window's end has committed.
WINDOW_END: Final = """
SELECT max(position) FROM (
    SELECT position FROM chronik_events WHERE position > ?1 ORDER BY position LIMIT ?2
)"""
READ_WINDOW_FILTERED: Final = f"""
SELECT {_COLUMNS} FROM chronik_events
WHERE position > ?1 AND position <= ?2
  AND (?3 IS NULL OR category IN (SELECT value FROM json_each(?3)))
  AND (?4 IS NULL OR type IN (SELECT value FROM json_each(?4)))
ORDER BY position"""
READ_RANGE: Final = f"""
SELECT {_COLUMNS} FROM chronik_events WHERE position >= ?1 AND position <= ?2 ORDER BY position"""
COUNT_AFTER: Final = """
SELECT count(*) FROM chronik_events
WHERE position > ?1
  AND (?2 IS NULL OR category IN (SELECT value FROM json_each(?2)))
  AND (?3 IS NULL OR type IN (SELECT value FROM json_each(?3)))"""
DATA_VERSION: Final = "PRAGMA data_version"

# -- projections --------------------------------------------------------------------------
SAVE_PROJECTION_STATE: Final = """
INSERT INTO chronik_projections (name, version, status, active, failure, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (name, version) DO UPDATE SET
    status = excluded.status, active = excluded.active, failure = excluded.failure,
    updated_at = excluded.updated_at"""
PROJECTION_STATES: Final = """
SELECT name, version, status, active, failure, updated_at FROM chronik_projections
WHERE ?1 IS NULL OR name = ?1 ORDER BY name, version"""
DELETE_PROJECTION_STATE: Final = "DELETE FROM chronik_projections WHERE name = ? AND version = ?"
DELETE_DEAD_LETTERS: Final = (
    "DELETE FROM chronik_dead_letters WHERE projection = ? AND projection_version = ?"
)
DELETE_DEAD_LETTER: Final = (
    "DELETE FROM chronik_dead_letters WHERE projection = ? AND projection_version = ? AND position = ?"
)
PARK_EVENT: Final = """
INSERT INTO chronik_dead_letters
    (projection, projection_version, position, stream_id, version, type, event_id, checkpoint,
     error, attempts, parked_at, parked_seq)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
        (SELECT coalesce(max(parked_seq), 0) + 1 FROM chronik_dead_letters))
ON CONFLICT (projection, projection_version, position) DO NOTHING"""
DEAD_LETTERS: Final = """
SELECT projection, projection_version, position, stream_id, version, type, event_id, checkpoint,
       error, attempts, parked_at
FROM chronik_dead_letters WHERE ?1 IS NULL OR projection = ?1
ORDER BY parked_seq"""
DELETE_CHECKPOINT: Final = "DELETE FROM chronik_checkpoints WHERE name = ?"

# -- runners' heartbeats (migration 0005) --------------------------------------------------
SAVE_HEARTBEAT: Final = """
INSERT INTO chronik_runners (runner_id, name, version, heard_at, record) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (runner_id) DO UPDATE SET
    name = excluded.name, version = excluded.version, heard_at = excluded.heard_at,
    record = excluded.record"""
HEARTBEATS: Final = "SELECT record FROM chronik_runners WHERE ?1 IS NULL OR name = ?1"
DELETE_HEARTBEAT: Final = "DELETE FROM chronik_runners WHERE runner_id = ?"

# -- Dynamic Consistency Boundaries (dcb.py) ----------------------------------------------
# One statement per query item, in position order; dcb.py merges the items' answers.
# A tagged item walks chronik_event_tags from its first tag (?1) in position order and
# checks its other tags (?4, a JSON array) by primary key; ?3 is its types or NULL.
_E_COLUMNS: Final = ", ".join(
    f"e.{c}" if c not in (f"'{KIND}'",) else c for c in (c.strip() for c in _COLUMNS.split(","))
)
_QUERY_TAGGED: Final = f"""
SELECT {_E_COLUMNS} FROM chronik_event_tags AS t JOIN chronik_events AS e ON e.position = t.position
WHERE t.tag = ?1 AND t.position > ?2
  AND (?3 IS NULL OR e.type IN (SELECT value FROM json_each(?3)))
  AND NOT EXISTS (
      SELECT 1 FROM json_each(?4) AS wanted WHERE NOT EXISTS (
          SELECT 1 FROM chronik_event_tags AS o WHERE o.tag = wanted.value AND o.position = t.position))
ORDER BY t.position {{order}} LIMIT ?5"""
QUERY_TAGGED: Final = _QUERY_TAGGED.format(order="ASC")
QUERY_TAGGED_BACKWARD: Final = _QUERY_TAGGED.format(order="DESC")
_QUERY_TYPES: Final = f"""
SELECT {_COLUMNS} FROM chronik_events
WHERE type IN (SELECT value FROM json_each(?1)) AND position > ?2
ORDER BY position {{order}} LIMIT ?3"""
QUERY_TYPES: Final = _QUERY_TYPES.format(order="ASC")
QUERY_TYPES_BACKWARD: Final = _QUERY_TYPES.format(order="DESC")
_QUERY_ALL: Final = (
    f"SELECT {_COLUMNS} FROM chronik_events WHERE position > ?1 ORDER BY position {{order}} LIMIT ?2"
)
QUERY_ALL: Final = _QUERY_ALL.format(order="ASC")
QUERY_ALL_BACKWARD: Final = _QUERY_ALL.format(order="DESC")

# -- deleting, retaining, repairing (lifecycle.py) ----------------------------------------
STREAM_METADATA: Final = """
SELECT deleted, max_count, max_age, truncate_before FROM chronik_streams WHERE stream_id = ?"""
SET_DELETED: Final = """
INSERT INTO chronik_streams (stream_id, deleted, truncate_before, updated_at) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (stream_id) DO UPDATE SET
    deleted = excluded.deleted, truncate_before = excluded.truncate_before,
    updated_at = excluded.updated_at"""
# Written again after a soft delete, a stream is live (its truncate_before stays).
UNDELETE: Final = "UPDATE chronik_streams SET deleted = NULL, updated_at = ?2 WHERE stream_id = ?1"
SET_METADATA: Final = """
INSERT INTO chronik_streams (stream_id, max_count, max_age, truncate_before, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (stream_id) DO UPDATE SET
    max_count = excluded.max_count, max_age = excluded.max_age,
    truncate_before = excluded.truncate_before, updated_at = excluded.updated_at"""
# A live stream whose metadata was cleared needs no row.
FORGET_EMPTY: Final = """
DELETE FROM chronik_streams WHERE stream_id = ? AND deleted IS NULL AND max_count IS NULL
    AND max_age IS NULL AND truncate_before IS NULL"""
DELETE_SNAPSHOT: Final = "DELETE FROM chronik_snapshots WHERE stream_id = ?"
# Events of a stream below a version (a hard delete: all but the deletion event), tags first.
REMOVE_TAGS_BELOW: Final = """
DELETE FROM chronik_event_tags WHERE position IN (
    SELECT position FROM chronik_events WHERE stream_id = ?1 AND version < ?2)"""
REMOVE_BELOW: Final = "DELETE FROM chronik_events WHERE stream_id = ?1 AND version < ?2"
# What a scavenge removes from one stream: every event before its last (?2) that is
# below ?3 (truncate_before, max_count) or older than ?4 (max_age; -1 for none).
SCAVENGE_STREAMS: Final = """
SELECT s.stream_id, s.deleted, s.max_count, s.max_age, s.truncate_before,
       (SELECT max(version) FROM chronik_events AS e WHERE e.stream_id = s.stream_id)
FROM chronik_streams AS s WHERE s.deleted IS NULL OR s.deleted <> 'archived'"""
_SCAVENGED: Final = """
SELECT position FROM chronik_events
WHERE stream_id = ?1 AND version < ?2 AND (version < ?3 OR recorded_at < ?4)"""
SCAVENGE_TAGS: Final = f"DELETE FROM chronik_event_tags WHERE position IN ({_SCAVENGED})"
SCAVENGE_EVENTS: Final = f"DELETE FROM chronik_events WHERE position IN ({_SCAVENGED})"
AUTO_VACUUM: Final = "PRAGMA auto_vacuum"
FREE_PAGES: Final = "PRAGMA freelist_count"
SET_INCREMENTAL_VACUUM: Final = "PRAGMA auto_vacuum = INCREMENTAL"
INCREMENTAL_VACUUM: Final = "PRAGMA incremental_vacuum"
VACUUM: Final = "VACUUM"
CHECKPOINT_WAL: Final = "PRAGMA wal_checkpoint(TRUNCATE)"
EVENT_AT: Final = """
SELECT position, event_id, type, schema_version, data, metadata, tags
FROM chronik_events WHERE stream_id = ? AND version = ?"""
STREAM_EVENTS: Final = """
SELECT position, type, data, metadata FROM chronik_events WHERE stream_id = ? ORDER BY version"""
REPLACE_EVENT: Final = """
UPDATE chronik_events SET type = ?2, schema_version = ?3, data = ?4, metadata = ?5 WHERE position = ?1"""

# -- subjects' keys (crypto-shredding): one row per subject ----------------------------

# The subjects come as one JSON array, unpacked by json_each: one statement for any
# number of them, never built from their text.
READ_SUBJECT_KEYS: Final = (
    "SELECT subject, key_id, key FROM chronik_subject_keys WHERE subject IN (SELECT value FROM json_each(?))"
)
# A key another writer made first wins (the INSERT does nothing): every writer then
# reads the same key back.
INSERT_SUBJECT_KEY: Final = (
    "INSERT INTO chronik_subject_keys (subject, key_id, key, created_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (subject) DO NOTHING"
)
DELETE_SUBJECT_KEY: Final = "DELETE FROM chronik_subject_keys WHERE subject = ?"
