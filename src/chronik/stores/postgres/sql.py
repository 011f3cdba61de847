"""Every SQL statement the PostgreSQL store runs, one per operation.

Statements are constants. The only thing filled in is the store's schema name, which
is checked against ``[a-z_][a-z0-9_]*`` when the store is opened and then quoted as
an identifier by :mod:`psycopg.sql`; caller data (stream ids, payloads, filters)
always travels as bound parameters, lists as arrays. :func:`statements` renders the
set for one schema once and caches it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Final

from psycopg import sql

__all__ = ["Statements", "dcb_statement", "statements"]

# -- schema inspection and migrations (the schema name is a parameter here) ---------

SCHEMA_EXISTS: Final = "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = %s)"
SCHEMA_TABLES: Final = """
SELECT c.relname FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
ORDER BY c.relname"""
# What the schema's tables take on disk, with their indexes and TOAST (chronik info).
SCHEMA_SIZE: Final = """
SELECT coalesce(sum(pg_catalog.pg_total_relation_size(c.oid)), 0)::bigint FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'm')"""
READ_ONLY: Final = "SET TRANSACTION READ ONLY"
# Serialises chronik processes that open the same schema at once, so migrations run
# exactly once; a transaction-level lock, released at commit.
MIGRATION_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtextextended('chronik.migrate.' || %s, 0))"
# Each pooled connection, once (PostgresConfig.search_path says why); session-wide.
SET_SEARCH_PATH: Final = "SELECT pg_catalog.set_config('search_path', %s, false)"
NOTIFY: Final = "SELECT pg_notify(%s, '')"
NOTIFIER_SETUP: Final = "SET synchronous_commit TO off"

# -- per-schema statements ({schema} is the quoted schema name) ----------------------

_CREATE_SCHEMA = "CREATE SCHEMA {schema}"
_CREATE_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS {schema}.migrations (
    name       text        COLLATE "C" PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT statement_timestamp()
)"""
_APPLIED_MIGRATIONS = "SELECT name FROM {schema}.migrations ORDER BY name"
_RECORD_MIGRATION = "INSERT INTO {schema}.migrations (name) VALUES (%s)"
_USE_SCHEMA = "SET LOCAL search_path TO {schema}"
_LISTEN = "LISTEN {channel}"

# One statement appends to one or more streams: it reads each stream's version,
# checks the expected versions, inserts every event (numbering versions on from the
# current one) and updates the streams, all or nothing, in one round trip whatever
# the batch size. Events arrive as parallel arrays, in binary (%b: no text escaping
# of thousands of JSON strings); ``write_idx`` says which write (1-based) each
# belongs to and ``offset`` its place in that write. ``expected`` is
# NULL for ANY/STREAM_EXISTS, else the exact version (0 for NO_STREAM).
#
# No row is locked up front. If a concurrent writer takes the same version first,
# the insert fails with unique_violation on events_stream_version_key and the caller
# re-reads and decides again; writers of other streams are never waited for.
#
# The statement does hold its events' DCB keys (``keys``: chronik.query.event_keys,
# joined by chr(29)) SHARED, until its transaction ends: ``dcb_locks`` takes them,
# and the insert is gated on it (a one-time filter, evaluated before the insert's
# first row, so before any of its events gets a position). A decision holds the keys
# of its condition EXCLUSIVE (_async/dcb.py), so it waits for every append of an
# event it would match, tagged or not, plain or in a transaction, and every such
# append that starts later waits for it. Shared keys never wait for each other, so
# appends never wait for appends. With no keys (an append_if, which took them with
# its condition's), nothing is locked here.
#
# ``order_ok`` keeps each stream's events in version order in the global log: an
# event must not get a smaller transaction id than the stream's previous event.
# That can only be at risk inside a caller's ``transaction()`` that took its id
# before another writer appended to the stream; a plain append takes its id inside
# this statement, after every event it can see was committed, so it always holds.
#
# A deleted stream (``deleted``, migration 0005; chronik.lifecycle) is at version 0
# for expected versions; one deleted for good or archived is refused (``refused``),
# and a soft-deleted one written again lives again (``deleted = NULL``), numbered on
# from its last version. A delete appends its deletion event with the SYSTEM variant,
# which neither hides the version nor refuses. A delete and an append that both read
# version N insert version N+1: the unique key lets only one of them through.
_APPEND_TEMPLATE = """
WITH dcb_locks AS (
    SELECT count(*) AS n FROM (
        SELECT pg_advisory_xact_lock_shared(wanted.h) FROM (
            SELECT DISTINCT hashtextextended({dcb_key} || key, 0) AS h
            FROM unnest(string_to_array(%(keys)s, chr(29))) AS key ORDER BY 1
        ) AS wanted
    ) AS taken
),
writes AS (
    SELECT w.idx, w.stream_id, w.category, w.expected, w.must_exist
    FROM {writes}
),
current AS (
    SELECT w.idx, w.stream_id, w.category, coalesce(s.version, 0) AS version,
        (w.expected IS NULL OR {visible} = w.expected)
            AND (NOT w.must_exist OR {visible} > 0) AS expected_ok,
        (s.transaction_id IS NULL OR pg_current_xact_id_if_assigned() IS NULL
            OR s.transaction_id <= pg_current_xact_id_if_assigned()) AS order_ok,
        {refused} AS refused
    FROM writes AS w LEFT JOIN {schema}.streams AS s ON s.stream_id = w.stream_id
),
inserted AS (
    INSERT INTO {schema}.events
        (stream_id, category, version, event_id, type, schema_version, data, metadata, tags)
    SELECT c.stream_id, c.category, c.version + e.n, e.event_id, e.type, e.schema_version,
        e.data::json, e.metadata::json,
        -- tags travel as one JSON array per event (arrays of arrays must be rectangular)
        CASE WHEN e.tags IS NULL THEN NULL
            ELSE ARRAY(SELECT json_array_elements_text(e.tags::json)) END
    FROM {events}
    JOIN current AS c ON c.idx = e.write_idx
    WHERE (SELECT n FROM dcb_locks) >= 0
      AND NOT EXISTS (SELECT FROM current WHERE NOT (expected_ok AND order_ok) OR refused)
    -- Positions are taken in this order: each write's events get consecutive
    -- positions, in version order, and the writes follow each other as given.
    ORDER BY e.ord
    RETURNING stream_id, category, version, position, transaction_id
),
upserted AS (
    INSERT INTO {schema}.streams (stream_id, category, version, transaction_id)
    SELECT stream_id, category, max(version), pg_current_xact_id()
    FROM inserted GROUP BY stream_id, category
    ON CONFLICT (stream_id) DO UPDATE
        SET version = excluded.version, transaction_id = excluded.transaction_id{undelete}
)
SELECT c.idx, c.version, c.expected_ok, c.order_ok, i.last_version, i.last_position,
    i.transaction_id, c.refused
FROM current AS c
LEFT JOIN (
    SELECT stream_id, max(version) AS last_version, max(position) AS last_position,
        min(transaction_id::text)::bigint AS transaction_id
    FROM inserted GROUP BY stream_id
) AS i ON i.stream_id = c.stream_id
ORDER BY c.idx"""

_USER_APPEND = (
    _APPEND_TEMPLATE.replace(
        "{visible}", "CASE WHEN s.deleted IS NULL THEN coalesce(s.version, 0) ELSE 0 END"
    )
    .replace("{refused}", "coalesce(s.deleted IN ('hard', 'archived'), false)")
    .replace("{undelete}", ", deleted = NULL")
)
_SYSTEM_APPEND = (
    _APPEND_TEMPLATE.replace("{visible}", "coalesce(s.version, 0)")
    .replace("{refused}", "false")
    .replace("{undelete}", "")
)
_APPEND = _USER_APPEND.replace(
    "{writes}",
    """unnest(%(stream_ids)b::text[], %(categories)b::text[], %(expected)b::bigint[],
                %(must_exist)b::boolean[])
        WITH ORDINALITY AS w (stream_id, category, expected, must_exist, idx)""",
).replace(
    "{events}",
    """unnest(%(write_idx)b::bigint[], %(offsets)b::bigint[], %(event_ids)b::uuid[],
                %(types)b::text[], %(schema_versions)b::integer[], %(data)b::text[],
                %(metadata)b::text[], %(tags)b::text[])
        WITH ORDINALITY AS e (write_idx, n, event_id, type, schema_version, data, metadata, tags,
            ord)""",
)
# The same statement for the commonest append, one event to one stream, with every
# value a plain parameter: arrays cost the client far more to send than scalars
# (about half the client's time for a single-event append).
_ONE_WRITE = """(VALUES (%(stream_id)s::text, %(category)s::text, %(expected)s::bigint,
                %(must_exist)s::boolean, 1::bigint))
        AS w (stream_id, category, expected, must_exist, idx)"""
_ONE_EVENT = """(VALUES (1::bigint, 1::bigint, %(event_id)s::uuid, %(type)s::text,
                %(schema_version)s::integer, %(data)s::text, %(metadata)s::text, %(tags)s::text,
                1::bigint))
        AS e (write_idx, n, event_id, type, schema_version, data, metadata, tags, ord)"""
_APPEND_ONE = _USER_APPEND.replace("{writes}", _ONE_WRITE).replace("{events}", _ONE_EVENT)
# chronik's own events (a deletion, an audit record) are always one event.
_APPEND_SYSTEM = _SYSTEM_APPEND.replace("{writes}", _ONE_WRITE).replace("{events}", _ONE_EVENT)

_FIND_EVENT_IDS = """
SELECT event_id, stream_id, version, position, transaction_id::text::bigint
FROM {schema}.events WHERE event_id = ANY(%s::uuid[])"""
_STREAM_VERSIONS = """
SELECT stream_id, version, deleted FROM {schema}.streams WHERE stream_id = ANY(%s::text[])"""
_STREAM_VERSION = "SELECT version, deleted FROM {schema}.streams WHERE stream_id = %s"

# In the order of RecordedEvent's arguments (the checkpoint is built from the
# transaction id and position); event id as 16 bytes and time as microseconds since
# the epoch, which RecordedEvent converts only if asked.
_COLUMNS = (
    "stream_id, version, position, transaction_id::text::bigint AS xid, uuid_send(event_id) AS event_id, "
    "type, schema_version, data, metadata, "
    "(extract(epoch FROM recorded_at) * 1000000)::bigint AS recorded_at, tags"
)
_OUTER_COLUMNS = (
    "stream_id, version, position, xid, event_id, type, schema_version, data, metadata, recorded_at, tags"
)
_NO_COLUMNS = (
    "NULL::text, NULL::bigint, position, xid, NULL::bytea, NULL::text, NULL::integer, NULL::json, "
    "NULL::json, NULL::bigint, NULL::text[]"
)
# What a read of a stream shows (chronik.lifecycle): nothing of a deleted stream, and
# nothing before truncate_before, before the last max_count, or older than max_age.
# The bounds come from the stream's row once (InitPlans), so the read stays a range
# of the (stream_id, version) index.
_READ_STREAM = f"""
WITH s AS (
    SELECT version AS last, deleted, max_count, max_age, truncate_before
    FROM {{schema}}.streams WHERE stream_id = %(stream_id)s
)
SELECT {_COLUMNS} FROM {{schema}}.events
WHERE stream_id = %(stream_id)s AND version <= %(to_version)s
  AND version >= greatest(%(from_version)s, (SELECT truncate_before FROM s),
                          (SELECT last - max_count + 1 FROM s))
  AND NOT EXISTS (SELECT FROM s WHERE deleted IS NOT NULL)
  AND ((SELECT max_age FROM s) IS NULL
       OR recorded_at >= statement_timestamp() - (SELECT max_age FROM s) * interval '1 microsecond')
ORDER BY version {{{{order}}}} LIMIT %(limit)s"""
_READ_STREAM_FORWARD = _READ_STREAM.replace("{{order}}", "ASC")
_READ_STREAM_BACKWARD = _READ_STREAM.replace("{{order}}", "DESC")

# THE ORDERING GUARANTEE. Positions come from a sequence when a row is inserted and
# become visible when its transaction commits, and those two orders differ: T1 takes
# position 10, T2 takes 11 and commits first. A reader ordering by position alone
# would see 11, save it as its checkpoint and resume "after 11", silently skipping
# 10 when T1 commits a moment later (the bug Marten, Eventuous and Emmett shipped).
#
# So every row carries its writer's transaction id, the log is ordered by
# (transaction_id, position), and a reader only takes rows whose transaction id is
# below the xmin of its own snapshot: the oldest transaction id still running.
# Every transaction below that xmin has finished, so its rows are all visible now or
# never will be (rolled back); and every transaction that can still commit, running
# now or started later, has an id >= xmin, so all of its rows sort after every row
# this reader returned. The part of the log below xmin is therefore final: a
# checkpoint taken in it can never have a new event appear before it, and resuming
# after it neither skips nor repeats anything. No writer waits for another to
# achieve this; a reader waits (see _LOG_STATE) only for transactions already
# running. pg_current_snapshot() is the statement's own snapshot, so the rows seen
# and the xmin they are compared with come from the same instant.
_VISIBLE = "transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
_FILTERS = """
  AND (%(categories)s::text[] IS NULL OR category = ANY(%(categories)s::text[]))
  AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s::text[]))"""
# A page is read as the first ``limit`` rows after the checkpoint in log order, of
# which only those below xmin are kept (_PAGE_VISIBLE). That is exactly the first
# rows of the final log: the log is ordered by transaction id first, so every row
# below xmin sorts before every row at or above it. Comparing with xmin outside the
# LIMIT, not inside it, keeps the plan an index scan that stops after ``limit``
# rows. With both bounds inside, the planner guessed a handful of rows and chose to
# fetch and sort everything after the checkpoint, on every page: 23 ms for a page
# of 1,000 in a 20,000-event log, against 1.5 ms this way.
_PAGE_VISIBLE = "tx < pg_snapshot_xmin(pg_current_snapshot())"
_READ_ALL = f"""
SELECT {_OUTER_COLUMNS} FROM (
    SELECT transaction_id AS tx, {_COLUMNS} FROM {{schema}}.events
    WHERE (transaction_id, position) > (%s::text::xid8, %s::bigint)
    ORDER BY transaction_id, position LIMIT %s
) AS page
WHERE {_PAGE_VISIBLE} ORDER BY tx, position"""
_READ_ALL_FILTERED = f"""
SELECT {_OUTER_COLUMNS} FROM (
    SELECT transaction_id AS tx, {_COLUMNS} FROM {{schema}}.events
    WHERE (transaction_id, position) > (%(xid)s::text::xid8, %(position)s::bigint) {_FILTERS}
    ORDER BY transaction_id, position LIMIT %(limit)s
) AS page
WHERE {_PAGE_VISIBLE} ORDER BY tx, position"""
# A subscription's page: a window of the next ``limit`` events of the final log, of
# which only those matching the filters are sent, followed by one row with no
# stream id that marks where the window ends: the next page starts there, so a
# filtered reader moves past what it skipped and never reads it again.
_READ_WINDOW = f"""
WITH page AS MATERIALIZED (
    SELECT {_OUTER_COLUMNS}, category FROM (
        SELECT transaction_id AS tx, {_COLUMNS}, category FROM {{schema}}.events
        WHERE (transaction_id, position) > (%(xid)s::text::xid8, %(position)s::bigint)
        ORDER BY transaction_id, position LIMIT %(limit)s
    ) AS window_ WHERE {_PAGE_VISIBLE}
)
(SELECT {_OUTER_COLUMNS} FROM page WHERE true {_FILTERS} ORDER BY xid, position)
UNION ALL
(SELECT {_NO_COLUMNS} FROM page ORDER BY xid DESC, position DESC LIMIT 1)"""
_COUNT_AFTER = f"""
SELECT count(*) FROM {{schema}}.events
WHERE (transaction_id, position) > (%(xid)s::text::xid8, %(position)s::bigint) AND {_VISIBLE} {_FILTERS}"""
# For a reader at the end of the final log, from one snapshot: is an event after the
# checkpoint readable now, and which is the newest transaction whose events are
# committed but held back, because a transaction older than it is still running?
# (The reader then waits until that one is released: _RELEASED.)
_LOG_STATE = f"""
SELECT EXISTS (
    SELECT FROM {{schema}}.events
    WHERE (transaction_id, position) > (%(xid)s::text::xid8, %(position)s::bigint) AND {_VISIBLE}
), (
    SELECT transaction_id::text::bigint FROM {{schema}}.events
    WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot())
      AND (transaction_id, position) > (%(xid)s::text::xid8, %(position)s::bigint)
    ORDER BY transaction_id DESC LIMIT 1
)"""
_HEAD = f"""
SELECT transaction_id::text::bigint, position FROM {{schema}}.events WHERE {_VISIBLE}
ORDER BY transaction_id DESC, position DESC LIMIT 1"""
_RELEASED = "SELECT pg_snapshot_xmin(pg_current_snapshot()) > %s::text::xid8"

# Deleted streams, and streams with metadata but no event yet, are left out.
_LIST_STREAMS = """
SELECT stream_id, version FROM {schema}.streams
WHERE stream_id > %s AND version > 0 AND deleted IS NULL ORDER BY stream_id LIMIT %s"""
_LIST_STREAMS_IN_CATEGORY = """
SELECT stream_id, version FROM {schema}.streams
WHERE category = %s AND stream_id > %s AND version > 0 AND deleted IS NULL
ORDER BY stream_id LIMIT %s"""

_SAVE_SNAPSHOT = """
INSERT INTO {schema}.snapshots (stream_id, version, type, schema_version, data, recorded_at)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (stream_id) DO UPDATE SET
    version = excluded.version, type = excluded.type, schema_version = excluded.schema_version,
    data = excluded.data, recorded_at = excluded.recorded_at"""
_LOAD_SNAPSHOT = """
SELECT version, type, schema_version, data, recorded_at FROM {schema}.snapshots WHERE stream_id = %s"""

_SAVE_CHECKPOINT = """
INSERT INTO {schema}.checkpoints (name, transaction_id, position)
VALUES (%s, %s::text::xid8, %s)
ON CONFLICT (name) DO UPDATE SET
    transaction_id = excluded.transaction_id, position = excluded.position,
    updated_at = statement_timestamp()"""
_DELETE_CHECKPOINT = "DELETE FROM {schema}.checkpoints WHERE name = %s"
_LOAD_CHECKPOINT = """
SELECT transaction_id::text::bigint, position FROM {schema}.checkpoints WHERE name = %s"""

# -- subjects' keys (crypto-shredding, migration 0006) -----------------------------

_READ_SUBJECT_KEYS = "SELECT subject, key_id, key FROM {schema}.subject_keys WHERE subject = ANY(%s)"
# A key another writer made first wins (nothing is inserted for it): every writer then
# reads the same key back.
_INSERT_SUBJECT_KEYS = """
INSERT INTO {schema}.subject_keys (subject, key_id, key)
SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[])
ON CONFLICT (subject) DO NOTHING"""
_DELETE_SUBJECT_KEY = "DELETE FROM {schema}.subject_keys WHERE subject = %s"

# -- projection state and dead letters (migration 0002) ----------------------------

_SAVE_PROJECTION_STATE = """
INSERT INTO {schema}.projections (name, version, status, active, failure, updated_at)
VALUES (%s, %s, %s, %s, %s::json, coalesce(%s::timestamptz, statement_timestamp()))
ON CONFLICT (name, version) DO UPDATE SET
    status = excluded.status, active = excluded.active, failure = excluded.failure,
    updated_at = excluded.updated_at"""
_PROJECTION_STATES = """
SELECT name, version, status, active, failure, updated_at FROM {schema}.projections
WHERE %(name)s::text IS NULL OR name = %(name)s::text ORDER BY name, version"""
# A projection version's state and its dead letters go together, in one statement.
_DELETE_PROJECTION_STATE = """
WITH state AS (DELETE FROM {schema}.projections WHERE name = %(name)s AND version = %(version)s)
DELETE FROM {schema}.dead_letters WHERE projection = %(name)s AND projection_version = %(version)s"""
_DELETE_DEAD_LETTER = """
DELETE FROM {schema}.dead_letters
WHERE projection = %(projection)s AND projection_version = %(version)s AND position = %(position)s"""
_PARK_EVENT = """
INSERT INTO {schema}.dead_letters
    (projection, projection_version, position, transaction_id, stream_id, version, type, event_id,
     error, attempts, parked_at)
VALUES (%s, %s, %s, %s::text::xid8, %s, %s, %s, %s, %s, %s, coalesce(%s::timestamptz, statement_timestamp()))
ON CONFLICT (projection, projection_version, position) DO NOTHING"""
_DEAD_LETTERS = """
SELECT projection, projection_version, position, transaction_id::text::bigint, stream_id, version,
    type, event_id, error, attempts, parked_at
FROM {schema}.dead_letters WHERE %(projection)s::text IS NULL OR projection = %(projection)s::text
ORDER BY parked"""

# -- runners' heartbeats (migration 0004) -----------------------------------------------

# A heartbeat is a note, not data: its commit need not wait for the disk. That keeps
# its transaction short, and while one runs, readers of the log (of every schema) wait
# for the events of younger transactions (they sort after it).
_HEARTBEAT_COMMIT = "SET LOCAL synchronous_commit TO OFF"
_SAVE_HEARTBEAT = """
INSERT INTO {schema}.runners (runner_id, name, version, heard_at, record) VALUES (%s, %s, %s, %s, %s::json)
ON CONFLICT (runner_id) DO UPDATE SET
    name = excluded.name, version = excluded.version, heard_at = excluded.heard_at,
    record = excluded.record"""
_HEARTBEATS = """
SELECT record::text FROM {schema}.runners WHERE %(name)s::text IS NULL OR name = %(name)s::text"""
_DELETE_HEARTBEAT = "DELETE FROM {schema}.runners WHERE runner_id = %s"

# -- inline projections (append hooks); the reasoning is in _async/projection_state.py ----

# Every transaction that runs inline projections holds this lock until it ends: a
# transaction-level advisory lock of the store's schema, taken only by stores that
# have append hooks installed, so ordinary appends never see it. The xid is taken
# right after it (the lock is the FROM item, evaluated before the select list), so
# a waiter has no id yet and hooked transactions get their ids in commit order.
_INLINE_ENTER = """
SELECT pg_current_xact_id()::text::bigint
FROM pg_advisory_xact_lock(hashtextextended({inline_key}, 0)) AS inline_lock"""
# A transaction that already has an id (it wrote before its first append) must not
# wait for the lock while holding it: see enter_inline.
_INLINE_TRY_ENTER = """
SELECT pg_try_advisory_xact_lock(hashtextextended({inline_key}, 0)),
    pg_current_xact_id()::text::bigint"""
_HAS_XID = "SELECT pg_current_xact_id_if_assigned() IS NOT NULL"
# The oldest transaction still running if it is older than this one, else NULL. A
# snapshot's xmin is the oldest transaction running, this one included (xip would
# not do: it omits transactions at or above the snapshot's xmax, which can be older
# than this one and still running).
_OLDER_RUNNING = """
SELECT pg_snapshot_xmin(s)::text::bigint FROM pg_current_snapshot() AS s
WHERE pg_snapshot_xmin(s) < pg_current_xact_id()"""
# Whether events of a transaction younger than this one have committed already.
_YOUNGER_EVENTS = """
SELECT EXISTS (SELECT FROM {schema}.events WHERE transaction_id > pg_current_xact_id())"""
# This transaction's own events after a position: what an append just wrote.
_OWN_EVENTS = f"""
SELECT {_COLUMNS} FROM {{schema}}.events
WHERE transaction_id = pg_current_xact_id() AND position > %s
ORDER BY position"""

# -- Dynamic Consistency Boundaries (the reasoning is in _async/dcb.py) ---------------------

# Lists of names travel as one text each, the names separated by chr(31) or, for lock
# keys (which contain chr(30) and chr(31): chronik.query.lock_keys), by chr(29): tags,
# type names and keys are printable otherwise, and psycopg sends a text much faster
# than an array (which it dumps element by element, in Python).
#
# Transaction-level advisory locks on the hashes of (type, tag) keys, in one order
# (by hash) so that two writers never wait for each other in a cycle: exclusive on
# the keys of a decision's condition, shared on the keys of the events it writes.
# The key text is prefixed with the schema, so stores in other schemas never meet.
# It also answers the store's head as the statement began (a read by query's head).
_DCB_LOCK = """
SELECT count(*), (SELECT max(position) FROM {schema}.events) FROM (
    SELECT CASE WHEN wanted.exclusive THEN pg_advisory_xact_lock(wanted.h)
                ELSE pg_advisory_xact_lock_shared(wanted.h) END
    FROM (
        SELECT hashtextextended({dcb_key} || k.key, 0) AS h, bool_or(k.exclusive) AS exclusive
        FROM (
            SELECT key, true AS exclusive FROM unnest(string_to_array(%(exclusive)s, chr(29))) AS key
            UNION ALL
            SELECT key, false FROM unnest(string_to_array(%(shared)s, chr(29))) AS key
        ) AS k
        GROUP BY 1 ORDER BY 1
    ) AS wanted
) AS taken"""
# One statement per query item kind (the GIN index on tags answers @>): the events
# after a position; ``dcb_statement`` adds the order and the limit, and makes a query
# of several items their UNION ALL. Positional parameters, in the order written.
_DCB_TAGGED = f"""
SELECT {_COLUMNS} FROM {{schema}}.events
WHERE tags @> string_to_array(%s, chr(31))
  AND (%s::text IS NULL OR type = ANY(string_to_array(%s, chr(31)))) AND position > %s"""
_DCB_TYPES = f"""
SELECT {_COLUMNS} FROM {{schema}}.events
WHERE type = ANY(string_to_array(%s, chr(31))) AND position > %s"""
_DCB_ALL = f"""
SELECT {_COLUMNS} FROM {{schema}}.events WHERE position > %s"""


# -- deleting, retaining, repairing (the reasoning is in _async/lifecycle.py) --------------

_SET_DELETED = """
UPDATE {schema}.streams SET deleted = %(mode)s, truncate_before = %(truncate_before)s
WHERE stream_id = %(stream_id)s"""
_REMOVE_BELOW = "DELETE FROM {schema}.events WHERE stream_id = %s AND version < %s"
_DELETE_SNAPSHOT = "DELETE FROM {schema}.snapshots WHERE stream_id = %s"
_STREAM_METADATA = """
SELECT deleted, max_count, max_age, truncate_before FROM {schema}.streams WHERE stream_id = %s"""
# A stream without events gets a row at version 0, transaction id 0 (migration 0005).
_SET_METADATA = """
INSERT INTO {schema}.streams (stream_id, category, version, transaction_id, max_count, max_age,
    truncate_before)
VALUES (%(stream_id)s, %(category)s, 0, '0'::xid8, %(max_count)s, %(max_age)s, %(truncate_before)s)
ON CONFLICT (stream_id) DO UPDATE SET max_count = excluded.max_count, max_age = excluded.max_age,
    truncate_before = excluded.truncate_before"""
# Every event a delete or a stream's metadata hides, but never a stream's last event
# (it holds the version) nor anything of an archived stream; counted as it goes.
_SCAVENGE = """
WITH gone AS (
    DELETE FROM {schema}.events AS e USING {schema}.streams AS s
    WHERE e.stream_id = s.stream_id AND e.version < s.version
      AND s.deleted IS DISTINCT FROM 'archived'
      AND (s.deleted IS NOT NULL OR s.max_count IS NOT NULL OR s.max_age IS NOT NULL
           OR s.truncate_before IS NOT NULL)
      AND (s.deleted IS NOT NULL
           OR e.version < s.truncate_before
           OR e.version <= s.version - s.max_count
           OR e.recorded_at < statement_timestamp() - s.max_age * interval '1 microsecond')
    RETURNING e.stream_id
)
SELECT count(*), count(DISTINCT stream_id) FROM gone"""
_VACUUM = "VACUUM (ANALYZE) {schema}.events"
_EVENT_AT = """
SELECT position, event_id, type, schema_version, data, metadata, coalesce(tags, '{{}}'::text[])
FROM {schema}.events WHERE stream_id = %s AND version = %s FOR UPDATE"""
_REPLACE_EVENT = """
UPDATE {schema}.events SET type = %(type)s, schema_version = %(schema_version)s, data = %(data)s::json,
    metadata = %(metadata)s::json
WHERE position = %(position)s"""
_STREAM_EVENTS = """
SELECT position, type, data, metadata FROM {schema}.events WHERE stream_id = %s ORDER BY version"""


# eq=False: hashed by identity (``statements`` makes one per schema), so that
# ``dcb_statement``'s cache does not hash fifty strings at every read.
@dataclass(frozen=True, slots=True, eq=False)
class Statements:
    """The statements of one schema, rendered to text once."""

    create_schema: str
    create_migrations: str
    applied_migrations: str
    record_migration: str
    use_schema: str
    listen: str
    append: str
    append_one: str
    append_system: str
    find_event_ids: str
    stream_versions: str
    stream_version: str
    read_stream_forward: str
    read_stream_backward: str
    read_all: str
    read_all_filtered: str
    read_window: str
    count_after: str
    log_state: str
    head: str
    released: str
    list_streams: str
    list_streams_in_category: str
    save_snapshot: str
    load_snapshot: str
    save_checkpoint: str
    load_checkpoint: str
    delete_checkpoint: str
    save_projection_state: str
    projection_states: str
    delete_projection_state: str
    park_event: str
    dead_letters: str
    delete_dead_letter: str
    heartbeat_commit: str
    save_heartbeat: str
    heartbeats: str
    delete_heartbeat: str
    inline_enter: str
    inline_try_enter: str
    has_xid: str
    older_running: str
    younger_events: str
    own_events: str
    dcb_lock: str
    dcb_tagged: str
    dcb_types: str
    dcb_all: str
    set_deleted: str
    remove_below: str
    delete_snapshot: str
    stream_metadata: str
    set_metadata: str
    scavenge: str
    vacuum: str
    event_at: str
    replace_event: str
    stream_events: str
    read_subject_keys: str
    insert_subject_keys: str
    delete_subject_key: str


@functools.lru_cache(maxsize=64)
def statements(schema: str, channel: str) -> Statements:
    """Render every statement for ``schema`` (already validated by the caller)."""
    names = {
        "schema": sql.Identifier(schema),
        "channel": sql.Identifier(channel),
        "inline_key": sql.Literal(f"chronik.inline.{schema}"),
        "dcb_key": sql.Literal(f"chronik.dcb.{schema}."),
    }
    source = globals()
    rendered = {
        f.name: sql.SQL(source[f"_{f.name.upper()}"]).format(**names).as_string(None)
        for f in fields(Statements)
    }
    return Statements(**rendered)


@functools.lru_cache(maxsize=256)
def dcb_statement(statements: Statements, kinds: tuple[str, ...], backwards: bool, how: str) -> str:
    """A read by query in one statement, from the item statements of ``kinds``
    (``tagged``, ``types``, or ``()`` for ``Query.all()``), in position order (reversed
    if ``backwards``). ``how``: ``all`` the events, ``limit`` (each item's statement,
    and their union, take a ``LIMIT`` parameter after the item's own), or ``first``
    (the position of the first match: a condition's check)."""
    parts: list[str] = [getattr(statements, f"dcb_{kind}") for kind in kinds or ("all",)]
    order = "position DESC" if backwards else "position"
    tail = {
        "all": f" ORDER BY {order}",
        "limit": f" ORDER BY {order} LIMIT %s",
        "first": " ORDER BY position LIMIT 1",
    }
    parts = [p + tail[how] for p in parts]
    if how == "first":
        return "SELECT min(position) FROM (" + " UNION ALL ".join(f"({p})" for p in parts) + ") AS matched"
    if len(parts) == 1:
        return parts[0]
    # An event two items match comes once; each item's first ``limit`` rows hold the
    # first ``limit`` of the union.
    union = " UNION ALL ".join(f"({p})" for p in parts)
    return f"SELECT DISTINCT ON (position) * FROM ({union}) AS matched{tail[how]}"
