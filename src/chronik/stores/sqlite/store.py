"""The embedded SQLite event store: the class that wires the parts together.

One file, WAL mode, every write inside ``BEGIN IMMEDIATE``. The parts share one
:class:`~chronik.stores.sqlite.schema.Connections` (the file, each thread's
connection, the write lock, the closed state, the open readers):

- ``schema.py`` opens, checks and migrates the file;
- ``writing.py`` appends (group commit) and runs write transactions and append hooks;
- ``reader.py`` reads streams and the log, and serves subscriptions, each on a
  connection of its own, closed with it;
- ``projection_state.py`` keeps checkpoints, snapshots, projection records and the
  runners' heartbeats;
- ``lifecycle.py`` deletes streams, keeps their metadata, scavenges and repairs.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Final

from chronik.backend import (
    AppendHook,
    SubjectKey,
    Subscribes,
    append_many_events,
    appending,
    forget_subject,
    normalize_filter,
    position_after,
    prepare_decision,
    prepare_write,
    prepare_writes,
    subject_keys_of,
    validate_checkpoint_name,
    validate_expected_version,
    validate_limit,
    validate_read_stream,
    write_keys,
)
from chronik.codec import DEFAULT_MAX_EVENT_SIZE, Codec, EventRegistry
from chronik.errors import AppendConditionFailedError, ConfigurationError, InvalidInputError
from chronik.events import (
    ANY,
    AppendResult,
    Checkpoint,
    DeadLetter,
    ExpectedVersion,
    ProjectionState,
    RecordedEvent,
    RunnerHeartbeat,
    Snapshot,
    StreamInfo,
    StreamWrite,
    validate_stream_id,
)
from chronik.lifecycle import (
    DeleteResult,
    RepairRecord,
    ScavengeResult,
    StreamMetadata,
    validate_operator,
    validate_repair,
    validate_stream_metadata,
)
from chronik.query import AppendCondition, Query, ReadResult, check_read
from chronik.stores.sqlite import dcb, lifecycle, schema, sql
from chronik.stores.sqlite import projection_state as _records
from chronik.stores.sqlite.reader import (
    DEFAULT_POLL_INTERVAL,
    SQLiteLogReader,
    iter_all,
    stream_records,
)
from chronik.stores.sqlite.schema import Closable, Connections, Synchronous, check_schema
from chronik.stores.sqlite.subject_keys import SQLiteSubjectKeys
from chronik.stores.sqlite.writing import MAX_LIMIT, SYSTEM, SQLiteTransaction, Writer

__all__ = ["SQLiteEventStore", "SQLiteTransaction", "check_schema"]

KIND: Final = sql.KIND


class SQLiteEventStore(Subscribes):
    """An event store in one SQLite file, safe from many threads and processes.

    ``synchronous="FULL"`` (the default) makes every commit durable on power loss;
    ``"NORMAL"`` keeps the database consistent but may lose the last commits.
    """

    is_async: Final = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        registry: EventRegistry | None = None,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 30.0,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        migrate: bool = True,
    ) -> None:
        self.path = os.fspath(path)
        if self.path in ("", ":memory:") or self.path.startswith("file::memory:"):
            raise ConfigurationError(
                "an in-memory SQLite database cannot be shared between connections; use memory:// instead"
            )
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ConfigurationError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
        if isinstance(busy_timeout, bool) or not isinstance(busy_timeout, (int, float)) or busy_timeout < 0:
            raise ConfigurationError(f"busy_timeout must be seconds >= 0, got {busy_timeout!r}")
        self.codec = Codec(registry, max_event_size=max_event_size)
        self.synchronous = synchronous
        self.busy_timeout = float(busy_timeout)
        self.poll_interval = DEFAULT_POLL_INTERVAL
        """Seconds between checks for commits by other processes while a subscription waits."""
        self._connections = Connections(self.path, synchronous, self.busy_timeout)
        self.codec.subject_keys = SQLiteSubjectKeys(self._connections)
        self._writer = Writer(self._connections, self.codec)
        try:
            schema.open_schema(self._connections, migrate)
        except BaseException:
            self.close()
            raise

    # -- connections -----------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (tests and tools reach the file through it)."""
        return self._connections.conn()

    @property
    def _readers(self) -> set[Closable]:
        """The subscription readers open on this store."""
        return self._connections.readers

    # -- the database, for read models of your own (chronik.store.SQLDatabase) ------------

    sql_dialect: Final = "sqlite+pysqlite"

    def connect_dbapi(self) -> sqlite3.Connection:
        """A new ``sqlite3`` connection to the store's file, yours to close; it waits up to
        ``busy_timeout`` for the write lock, and may be used from any one thread at a time.

        SQLite has one writer at a time: a write on it waits for the store's writes, and
        they for it, so do not hold one open across store calls on the same thread.
        """
        with self._connections.errors():
            return sqlite3.connect(self.path, timeout=self.busy_timeout, check_same_thread=False)

    def check_schema(self) -> list[str]:
        """Names of the migrations this file still needs; reads, never writes."""
        connections = self._connections
        with connections.errors():
            return [m.name for m in schema.pending(connections.conn(), self.path)]

    # -- writing ---------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        with appending(SYSTEM, "append", stream_id, expected_version, events) as span:
            keys = write_keys(self.codec, [events])
            prepared = [prepare_write(self.codec, stream_id, events, expected_version, keys)]
            return span.done(self._writer.commit(prepared)[0])

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        with appending(SYSTEM, "append_many", events=append_many_events(writes)) as span:
            prepared = prepare_writes(self.codec, writes, write_keys(self.codec, writes))
            return span.done(self._writer.commit(prepared))

    # -- subjects' keys (crypto-shredding: subject_keys.py) -----------------------------

    def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        """The subjects' keys (``chronik.store.SubjectKeyStore``), from the codec's key store."""
        return subject_keys_of(self.codec, subjects, create)

    def forget(self, subject: str) -> None:
        """Destroy ``subject``'s key: its personal data reads as redacted from now on."""
        forget_subject(self.codec, subject)

    # -- Dynamic Consistency Boundaries (dcb.py) ---------------------------------------

    def read_query(
        self, query: Query, *, after: int | None = None, limit: int | None = None, backwards: bool = False
    ) -> ReadResult:
        query, start, limit = check_read(query, after, limit)
        connections = self._connections
        with connections.errors():
            events, head = dcb.read_query(connections.conn(), self.codec, query, start, limit, backwards)
        return ReadResult(events, head)

    def append_if(
        self, events: Sequence[object], condition: AppendCondition | None, *, stream_id: str | None = None
    ) -> AppendResult:
        with appending(SYSTEM, "append_if", stream_id, None, events) as span:
            keys = write_keys(self.codec, [events])
            prepared, checked = prepare_decision(self.codec, events, condition, stream_id, keys)
            writer = self._writer
            with writer.write() as conn:  # BEGIN IMMEDIATE: the write lock is the decision's lock
                if checked is not None:
                    found = dcb.first_conflict(conn, checked)
                    if found is not None:
                        raise AppendConditionFailedError(checked.fail_if_events_match, checked.after, found)
                result = writer.append_hooked(conn, [prepared], careful=True)[0]
            return span.done(result)

    def transaction(self) -> AbstractContextManager[SQLiteTransaction]:
        """A write transaction for appends, checkpoints and your own SQL, all or nothing.

        Read models kept in the same file commit with their checkpoint, so a crash
        can neither lose nor double an effect.
        """
        return self._writer.transaction()

    # -- reading ---------------------------------------------------------------------

    def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        stream_id, from_version, to_version, limit = validate_read_stream(
            stream_id, from_version, to_version, limit
        )
        statement = sql.READ_STREAM_BACKWARD if backwards else sql.READ_STREAM_FORWARD
        params = (
            stream_id,
            from_version,
            MAX_LIMIT if to_version is None else to_version,
            MAX_LIMIT if limit is None else limit,
            time.time_ns() // 1000,  # what max_age is measured from
        )
        connections = self._connections
        with connections.errors():
            rows = connections.conn().execute(statement, params).fetchall()
        return stream_records(stream_id, rows, self.codec)

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        start = self.position_after(after)
        cats = normalize_filter(categories, "categories")
        kinds = normalize_filter(types, "types")
        return iter_all(self._connections, self.codec, start, cats, kinds, validate_limit(limit))

    def position_after(self, after: Checkpoint | None) -> int:
        """The position a ``read_all(after=...)`` starts after; checks the checkpoint."""
        return position_after(after, KIND)

    def stream_info(self, stream_id: str) -> StreamInfo:
        stream_id = validate_stream_id(stream_id)
        connections = self._connections
        with connections.errors():
            version, mode = connections.conn().execute(sql.STREAM_STATE, (stream_id,)).fetchone()
        if mode is not None:
            return StreamInfo(stream_id, 0, mode)
        return StreamInfo(stream_id, version or 0)

    def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        checked = validate_limit(limit)
        if checked is None:
            raise InvalidInputError("limit must be an int >= 0")
        connections = self._connections
        with connections.errors():
            conn = connections.conn()
            if category is None:
                rows = conn.execute(sql.LIST_STREAMS, (after or "", checked)).fetchall()
            else:
                rows = conn.execute(sql.LIST_CATEGORY_STREAMS, (category, after or "", checked)).fetchall()
        return [StreamInfo(s, v) for s, v in rows]

    def head(self) -> Checkpoint | None:
        connections = self._connections
        with connections.errors():
            row = connections.conn().execute(sql.HEAD).fetchone()
        return None if row[0] is None else Checkpoint(KIND, (row[0],))

    # -- deleting, retaining, repairing (lifecycle.py) ---------------------------------

    def delete_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, hard: bool = False
    ) -> DeleteResult:
        stream_id = validate_stream_id(stream_id)
        expected = validate_expected_version(expected_version)
        return lifecycle.delete(self._writer, stream_id, expected, hard)

    def set_stream_metadata(self, stream_id: str, metadata: StreamMetadata) -> None:
        stream_id = validate_stream_id(stream_id)
        lifecycle.set_metadata(self._writer, stream_id, validate_stream_metadata(metadata))

    def get_stream_metadata(self, stream_id: str) -> StreamMetadata:
        stream_id = validate_stream_id(stream_id)
        connections = self._connections
        with connections.errors():
            return lifecycle.metadata_of(connections.conn(), stream_id)[1]

    def scavenge(self) -> ScavengeResult:
        """Remove what deletes and metadata hide, then give the space back to the file
        system (an incremental vacuum; see ``lifecycle.py`` for older files)."""
        return lifecycle.scavenge(self._writer)

    def repair_event(
        self, stream_id: str, version: int, event: object, *, reason: str, operator: str
    ) -> RepairRecord:
        stream_id = validate_stream_id(stream_id)
        reason, operator = validate_repair(stream_id, version, reason, operator)
        return lifecycle.repair(self._writer, stream_id, version, event, reason, operator)

    def archive_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, reason: str, operator: str
    ) -> RepairRecord:
        stream_id = validate_stream_id(stream_id)
        expected = validate_expected_version(expected_version)
        reason, operator = validate_operator(reason, operator)
        return lifecycle.archive(self._writer, stream_id, expected, reason, operator)

    # -- subscriptions ---------------------------------------------------------------

    def log_reader(self) -> SQLiteLogReader:
        """A reader for subscriptions (``chronik.store.LogReader``), on its own connection."""
        reader = SQLiteLogReader(self._connections, self.codec, self.poll_interval)
        self._connections.add_reader(reader)
        return reader

    # -- append hooks (inline projections) -------------------------------------------

    def add_append_hook(self, hook: AppendHook) -> None:
        """Run ``hook`` inside every append of this store object.

        ``hook.installed`` runs first, in a write transaction, so no append can come
        between its catch-up and the hook's first call. Appends by other processes
        or other store objects do not run it.
        """
        self._writer.add_hook(hook)

    def remove_append_hook(self, name: str) -> None:
        self._writer.remove_hook(name)

    # -- projection state ------------------------------------------------------------

    def save_projection_state(self, state: ProjectionState) -> None:
        with self._writer.write() as conn:
            _records.save_projection_state(conn, state)

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        connections = self._connections
        with connections.errors():
            return _records.projection_states(connections.conn(), name)

    def delete_projection_state(self, name: str, version: int) -> None:
        with self._writer.write() as conn:
            _records.delete_projection_state(conn, name, version)

    def park_event(self, letter: DeadLetter) -> None:
        with self._writer.write() as conn:
            _records.park_event(conn, letter)

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        connections = self._connections
        with connections.errors():
            return _records.dead_letters(connections.conn(), projection)

    def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        with self._writer.write() as conn:
            _records.delete_dead_letter(conn, projection, version, position)

    # -- runners' heartbeats -----------------------------------------------------------

    def save_heartbeat(self, heartbeat: RunnerHeartbeat) -> None:
        with self._writer.write() as conn:
            _records.save_heartbeat(conn, heartbeat)

    def heartbeats(self, name: str | None = None) -> list[RunnerHeartbeat]:
        connections = self._connections
        with connections.errors():
            return _records.heartbeats(connections.conn(), name)

    def delete_heartbeat(self, runner_id: str) -> None:
        with self._writer.write() as conn:
            _records.delete_heartbeat(conn, runner_id)

    # -- snapshots and checkpoints ---------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        validate_stream_id(snapshot.stream_id)
        with self._writer.write() as conn:
            _records.save_snapshot(conn, snapshot)

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        validate_stream_id(stream_id)
        connections = self._connections
        with connections.errors():
            return _records.load_snapshot(connections.conn(), stream_id)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        _records.check_checkpoint(name, checkpoint)
        with self._writer.write() as conn:
            _records.save_checkpoint(conn, name, checkpoint)

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        validate_checkpoint_name(name)
        connections = self._connections
        with connections.errors():
            return _records.load_checkpoint(connections.conn(), name)

    def delete_checkpoint(self, name: str) -> None:
        with self._writer.write() as conn:
            _records.delete_checkpoint(conn, name)

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection this store opened, in every thread."""
        self._connections.close()

    def __enter__(self) -> SQLiteEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteEventStore({self.path!r}, synchronous={self.synchronous!r})"
