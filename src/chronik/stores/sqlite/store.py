"""The embedded SQLite event store.

One file, WAL mode, every write inside ``BEGIN IMMEDIATE``. Each thread gets its own
connection (sqlite3 connections are not meant to be shared between threads); reads
run in autocommit mode so they always see the latest committed write. Each
subscription reads on a connection of its own (``reader.py``), closed with it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from chronik._append import (
    ExistingEvent,
    PreparedWrite,
    expected_ok,
    normalize_filter,
    position_after,
    prepare_write,
    prepare_writes,
    resolve_existing,
    validate_checkpoint_name,
    validate_limit,
    validate_read_stream,
)
from chronik._migrations import Migration, load_migrations, pending_migrations
from chronik.codec import DEFAULT_MAX_EVENT_SIZE, Codec, EventRegistry
from chronik.errors import (
    ChronikError,
    ConfigurationError,
    IntegrityError,
    InternalError,
    InvalidInputError,
    NotAChronikStoreError,
    OperationalError,
    PendingMigrationsError,
    PersistenceError,
    StoreClosedError,
    WrongExpectedVersionError,
)
from chronik.events import (
    ANY,
    NO_STREAM,
    AppendResult,
    Checkpoint,
    DeadLetter,
    ExpectedVersion,
    ProjectionState,
    RecordedEvent,
    Snapshot,
    StreamInfo,
    StreamWrite,
    validate_stream_id,
)
from chronik.store import AppendHook, LogPage
from chronik.stores.sqlite import projection_state as _projections
from chronik.stores.sqlite import sql
from chronik.stores.sqlite.reader import (
    DEFAULT_POLL_INTERVAL,
    NEW_RECORD,
    SQLiteLogReader,
    json_list,
    notifier_for,
    read_page,
)
from chronik.subscriptions import Subscribes

__all__ = ["SQLiteEventStore", "SQLiteTransaction", "check_schema"]

KIND: Final = "sqlite"
PAGE_SIZE: Final = 1000
MIGRATIONS: Final[list[Migration]] = load_migrations("chronik.stores.sqlite")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_LIMIT: Final = 2**62
# Extended result codes (https://sqlite.org/rescode.html).
_SQLITE_NOTADB: Final = 26
_SQLITE_CONSTRAINT_UNIQUE: Final = 2067
_SQLITE_CONSTRAINT_PRIMARYKEY: Final = 1555


Synchronous = Literal["FULL", "NORMAL", "EXTRA"]


def _now_us() -> int:
    return time.time_ns() // 1000


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _translate(err: sqlite3.Error, path: str) -> ChronikError:
    """Map a driver error to chronik's persistence branch by class and result code."""
    code = getattr(err, "sqlite_errorcode", None)
    if code == _SQLITE_NOTADB:
        return NotAChronikStoreError(f"{path} is not a SQLite database (and so not a chronik store)")
    message = f"SQLite error on {path}: {err} ({getattr(err, 'sqlite_errorname', 'unknown')})"
    if isinstance(err, sqlite3.OperationalError):
        return OperationalError(message)
    if isinstance(err, sqlite3.IntegrityError):
        return IntegrityError(message)
    if isinstance(err, sqlite3.InternalError):
        return InternalError(message)
    return PersistenceError(message)


class _Pending:
    """An append waiting in the group-commit queue, and what became of it."""

    __slots__ = ("done", "error", "result", "writes")

    def __init__(self, writes: list[PreparedWrite]) -> None:
        self.writes = writes
        self.done = False
        self.result: list[AppendResult] | None = None
        self.error: BaseException | None = None


class _WriteLock:
    """Holds the store's write lock (this process's writers, one at a time)."""

    __slots__ = ("store",)

    def __init__(self, store: SQLiteEventStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        store = self.store
        if not store._write_lock.acquire(timeout=store.busy_timeout if store.busy_timeout else -1):
            raise OperationalError(f"SQLite store {store.path}: timed out waiting for the write lock")

    def __exit__(self, *exc: object) -> None:
        self.store._write_lock.release()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error; SQLite errors translated.

    IMMEDIATE takes the write lock now, not at the first write, so a version read
    inside cannot change before the insert, and positions (rowids, one more than
    the highest) are handed out in commit order: no reader can ever see position
    N+1 committed while N is pending. (A class, not a generator context manager:
    it is on the path of every append.)
    """

    __slots__ = ("conn", "store")

    def __init__(self, store: SQLiteEventStore, conn: sqlite3.Connection) -> None:
        self.store = store
        self.conn = conn

    def __enter__(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise _translate(err, self.store.path) from err

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        conn = self.conn
        try:
            if kind is None:
                conn.execute("COMMIT")
                self.store._notifier.notify()  # wake this process's subscriptions
            elif conn.in_transaction:
                conn.rollback()
        except sqlite3.Error as err:
            raise _translate(err, self.store.path) from err
        finally:
            if conn.in_transaction:  # COMMIT failed (e.g. disk I/O): never leave it open
                try:
                    conn.rollback()
                except sqlite3.Error:
                    pass
        if isinstance(error, sqlite3.Error):
            raise _translate(error, self.store.path) from error


class _DuplicateId(Exception):
    """An event id of the batch is already stored: retry the append carefully."""


def _checkpoint_at(position: int) -> Checkpoint:
    return Checkpoint(KIND, (position,))


def _checkpoint(where: ExistingEvent) -> Checkpoint:
    return _checkpoint_at(where.position)


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
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        # Threads of this process queue here rather than in SQLite's busy handler,
        # which sleeps in growing steps and would add milliseconds to each commit.
        # BEGIN IMMEDIATE still serialises this process against others.
        self._write_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()
        self._closed = False
        # Subscriptions: wake-ups from commits in this process, readers to close.
        self._notifier = notifier_for(self.path)
        self._readers: set[SQLiteLogReader] = set()
        self.poll_interval = DEFAULT_POLL_INTERVAL
        """Seconds between checks for commits by other processes while a subscription waits."""
        self._hooks: dict[str, AppendHook] = {}
        self._open_schema(migrate)

    # -- connections and transactions ---------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosedError(f"the SQLite store {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        conn = self._open_connection()
        with self._conns_lock:
            if self._closed:
                conn.close()
                raise StoreClosedError(f"the SQLite store {self.path} is closed")
            self._conns.append(conn)
        self._local.conn = conn
        return conn

    def _open_connection(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=128,
            )
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as err:
            raise _translate(err, self.path) from err
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            raise _translate(err, self.path) from err

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: commit on success, roll back on any error."""
        conn = self._writer_connection()
        with self._locked(), self._begin(conn):
            yield conn

    def _writer_connection(self) -> sqlite3.Connection:
        conn = self._conn()
        if conn.in_transaction:
            raise InvalidInputError(
                "a transaction is already open on this thread: use that transaction's own "
                "append/execute methods inside `with store.transaction()`"
            )
        return conn

    def _locked(self) -> _WriteLock:
        return _WriteLock(self)

    def _begin(self, conn: sqlite3.Connection) -> _Transaction:
        """BEGIN IMMEDIATE ... COMMIT on ``conn``; the caller holds ``_write_lock``."""
        return _Transaction(self, conn)

    # -- schema --------------------------------------------------------------------

    def _applied(self, conn: sqlite3.Connection) -> list[str] | None:
        tables = {row[0] for row in conn.execute(sql.TABLES)}
        if "chronik_migrations" not in tables:
            others = sorted(t for t in tables if not t.startswith("sqlite_"))
            if others:
                raise NotAChronikStoreError(
                    f"{self.path} is a SQLite database but not a chronik store "
                    f"(it has tables {', '.join(others)} and no chronik_migrations)"
                )
            return None
        return [row[0] for row in conn.execute(sql.APPLIED_MIGRATIONS)]

    def check_schema(self) -> list[str]:
        """Names of the migrations this file still needs; reads, never writes."""
        with self._errors():
            applied = self._applied(self._conn()) or []
        return [m.name for m in pending_migrations(MIGRATIONS, applied, self.path)]

    def _open_schema(self, migrate: bool) -> None:
        try:
            pending = self.check_schema()
            if not pending:
                return
            if not migrate:
                raise PendingMigrationsError(
                    f"{self.path} needs migrations {', '.join(pending)}; open it with migrate=True"
                )
            conn = self._conn()
            with self._errors():
                conn.execute("PRAGMA journal_mode = WAL")
            # Each migration commits with its record, or not at all. Another process
            # may be migrating the same file: re-read what is applied under the lock.
            with self._write() as conn:
                applied = self._applied(conn) or []
                conn.execute(sql.CREATE_MIGRATIONS)
                for migration in pending_migrations(MIGRATIONS, applied, self.path):
                    _run_script(conn, migration.sql)
                    conn.execute(sql.RECORD_MIGRATION, (migration.name, _now_us()))
        except BaseException:
            self.close()
            raise

    # -- writing ---------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        prepared = [prepare_write(self.codec, stream_id, events, expected_version)]
        return self._commit(prepared)[0]

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        return self._commit(prepare_writes(self.codec, writes))

    def _commit(self, writes: list[PreparedWrite]) -> list[AppendResult]:
        """Commit an append, grouped with the appends other threads queued meanwhile.

        Group commit: every append joins a queue; whichever thread gets the write
        lock commits everything queued so far in one transaction, one savepoint per
        append, so concurrent writers share one fsync instead of waiting for one each.
        Each append still succeeds or fails alone, with its own expected version.
        """
        conn = self._writer_connection()
        pending = _Pending(writes)
        with self._queue_lock:
            self._queue.append(pending)
        with self._locked():
            if not pending.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    if len(batch) == 1:
                        # Alone: no savepoints; an error rolls the transaction back.
                        batch[0].result = self._commit_alone(conn, batch[0].writes)
                    else:
                        with self._begin(conn):
                            for queued in batch:
                                self._append_in_savepoint(conn, queued)
                except BaseException as err:
                    for queued in batch:
                        if queued.error is None:
                            queued.error, queued.result = err, None
                    if not isinstance(err, Exception):
                        raise
                finally:
                    for queued in batch:
                        queued.done = True
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _commit_alone(self, conn: sqlite3.Connection, writes: list[PreparedWrite]) -> list[AppendResult]:
        try:
            with self._begin(conn):
                return self._append_hooked(conn, writes, careful=False)
        except _DuplicateId:
            # Rolled back whole. Some event id is stored already: go again, looking
            # each batch's ids up first to tell a re-send from a clash.
            with self._begin(conn):
                return self._append_hooked(conn, writes, careful=True)

    def _append_in_savepoint(self, conn: sqlite3.Connection, queued: _Pending) -> None:
        """One append of a group: its own savepoint, so it fails without failing the rest."""
        conn.execute("SAVEPOINT chronik_append")
        try:
            try:
                queued.result = self._append_hooked(conn, queued.writes, careful=False)
            except _DuplicateId:
                conn.execute("ROLLBACK TO chronik_append")
                queued.result = self._append_hooked(conn, queued.writes, careful=True)
        except Exception as err:  # a conflict, bad data, or an inline projection's handler
            conn.execute("ROLLBACK TO chronik_append")
            queued.error = _translate(err, self.path) if isinstance(err, sqlite3.Error) else err
        conn.execute("RELEASE chronik_append")

    def _append_hooked(
        self, conn: sqlite3.Connection, writes: list[PreparedWrite], *, careful: bool
    ) -> list[AppendResult]:
        """Append inside the open transaction, then run the append hooks in it."""
        if not self._hooks:
            return _append_in(conn, writes, careful=careful)
        written: list[tuple[int, int]] = []
        results = _append_in(conn, writes, careful=careful, written=written)
        if written:
            # One writer at a time: everything between the first and last position
            # written here is ours.
            first, last = written[0][0], written[-1][1]
            codec, new = self.codec, NEW_RECORD
            events = [new(*row, codec) for row in conn.execute(sql.READ_RANGE, (first, last))]
            tx = SQLiteTransaction(self, conn)
            for hook in list(self._hooks.values()):
                hook.appended(tx, events)
        return results

    @contextmanager
    def transaction(self) -> Iterator[SQLiteTransaction]:
        """A write transaction for appends, checkpoints and your own SQL, all or nothing.

        Read models kept in the same file commit with their checkpoint, so a crash
        can neither lose nor double an effect.
        """
        with self._write() as conn:
            yield SQLiteTransaction(self, conn)

    # -- reading -------------------------------------------------------------------

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
            _MAX_LIMIT if to_version is None else to_version,
            _MAX_LIMIT if limit is None else limit,
        )
        with self._errors():
            rows = self._conn().execute(statement, params).fetchall()
        return _stream_records(stream_id, rows, self.codec)

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
        return self._iter_all(start, cats, kinds, validate_limit(limit))

    def _read_after(
        self, position: int, size: int, cats: tuple[str, ...] | None, kinds: tuple[str, ...] | None
    ) -> list[RecordedEvent]:
        """Up to ``size`` events after ``position`` that pass the filters (for read_all)."""
        conn = self._conn()
        with self._errors():
            if cats is None and kinds is None:
                rows = conn.execute(sql.READ_ALL, (position, size)).fetchall()
            else:
                params = (position, size, json_list(cats), json_list(kinds))
                rows = conn.execute(sql.READ_ALL_FILTERED, params).fetchall()
        codec, new = self.codec, NEW_RECORD
        return [new(*row, codec) for row in rows]

    def _iter_all(
        self, start: int, cats: tuple[str, ...] | None, kinds: tuple[str, ...] | None, limit: int | None
    ) -> Iterator[RecordedEvent]:
        position = start
        remaining = limit
        while remaining is None or remaining > 0:
            size = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
            page = self._read_after(position, size, cats, kinds)
            if not page:
                return
            yield from page
            position = page[-1].position
            if remaining is not None:
                remaining -= len(page)
            if len(page) < size:
                return

    def position_after(self, after: Checkpoint | None) -> int:
        """The position a ``read_all(after=...)`` starts after; checks the checkpoint."""
        return position_after(after, KIND)

    def stream_info(self, stream_id: str) -> StreamInfo:
        stream_id = validate_stream_id(stream_id)
        with self._errors():
            version = self._conn().execute(sql.STREAM_VERSION, (stream_id,)).fetchone()[0]
        return StreamInfo(stream_id, version or 0)

    def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        checked = validate_limit(limit)
        if checked is None:
            raise InvalidInputError("limit must be an int >= 0")
        with self._errors():
            conn = self._conn()
            if category is None:
                rows = conn.execute(sql.LIST_STREAMS, (after or "", checked)).fetchall()
            else:
                rows = conn.execute(sql.LIST_CATEGORY_STREAMS, (category, after or "", checked)).fetchall()
        return [StreamInfo(s, v) for s, v in rows]

    def head(self) -> Checkpoint | None:
        with self._errors():
            row = self._conn().execute(sql.HEAD).fetchone()
        return None if row[0] is None else _checkpoint_at(row[0])

    # -- subscriptions --------------------------------------------------------------

    def log_reader(self) -> SQLiteLogReader:
        """A reader for subscriptions (``chronik.store.LogReader``), on its own connection."""
        reader = SQLiteLogReader(self, self._notifier, self.poll_interval)
        with self._conns_lock:
            if self._closed:
                raise StoreClosedError(f"the SQLite store {self.path} is closed")
            self._readers.add(reader)
        return reader

    def _forget_reader(self, reader: SQLiteLogReader) -> None:
        with self._conns_lock:
            self._readers.discard(reader)

    # -- append hooks (inline projections) -----------------------------------------

    def add_append_hook(self, hook: AppendHook) -> None:
        """Run ``hook`` inside every append of this store object.

        ``hook.installed`` runs first, in a write transaction, so no append can come
        between its catch-up and the hook's first call. Appends by other processes
        or other store objects do not run it.
        """
        with self._write() as conn:
            if hook.name in self._hooks:
                raise InvalidInputError(f"an append hook named {hook.name!r} is already installed")
            hook.installed(SQLiteTransaction(self, conn))
            self._hooks = {**self._hooks, hook.name: hook}

    def remove_append_hook(self, name: str) -> None:
        hooks = dict(self._hooks)
        hooks.pop(name, None)
        self._hooks = hooks

    # -- projection state ----------------------------------------------------------

    def save_projection_state(self, state: ProjectionState) -> None:
        with self._write() as conn:
            _projections.save_projection_state(conn, state)

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        with self._errors():
            return _projections.projection_states(self._conn(), name)

    def delete_projection_state(self, name: str, version: int) -> None:
        with self._write() as conn:
            _projections.delete_projection_state(conn, name, version)

    def park_event(self, letter: DeadLetter) -> None:
        with self._write() as conn:
            _projections.park_event(conn, letter)

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        with self._errors():
            return _projections.dead_letters(self._conn(), projection)

    def delete_checkpoint(self, name: str) -> None:
        with self._write() as conn:
            _projections.delete_checkpoint(conn, name)

    # -- snapshots and checkpoints -------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        validate_stream_id(snapshot.stream_id)
        with self._write() as conn:
            _save_snapshot(conn, snapshot)

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        validate_stream_id(stream_id)
        with self._errors():
            row = self._conn().execute(sql.LOAD_SNAPSHOT, (stream_id,)).fetchone()
        if row is None:
            return None
        return Snapshot(stream_id, row[0], row[1], row[2], bytes(row[3]), _from_us(row[4]))

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        validate_checkpoint_name(name)
        self.position_after(checkpoint)
        with self._write() as conn:
            conn.execute(sql.SAVE_CHECKPOINT, (name, str(checkpoint), _now_us()))

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        validate_checkpoint_name(name)
        with self._errors():
            row = self._conn().execute(sql.LOAD_CHECKPOINT, (name,)).fetchone()
        return None if row is None else Checkpoint.parse(row[0])

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection this store opened, in every thread."""
        with self._conns_lock:
            self._closed = True
            conns, self._conns = self._conns, []
            readers = list(self._readers)
        for reader in readers:
            reader.close()
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def __enter__(self) -> SQLiteEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteEventStore({self.path!r}, synchronous={self.synchronous!r})"


class SQLiteTransaction:
    """An open write transaction on a SQLite store (see ``SQLiteEventStore.transaction``)."""

    def __init__(self, store: SQLiteEventStore, connection: sqlite3.Connection) -> None:
        self.store = store
        self.connection = connection

    def execute(self, statement: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Run your own SQL (a read model's writes) in this transaction."""
        return self.connection.execute(statement, parameters)

    def executemany(self, statement: str, parameters: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self.connection.executemany(statement, parameters)

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append in this transaction; it commits with everything else or not at all."""
        prepared = [prepare_write(self.store.codec, stream_id, events, expected_version)]
        return self.store._append_hooked(self.connection, prepared, careful=True)[0]

    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """Read a stream as this transaction sees it, its own appends included."""
        stream_id, from_version, to_version, _ = validate_read_stream(
            stream_id, from_version, to_version, None
        )
        params = (stream_id, from_version, _MAX_LIMIT if to_version is None else to_version, _MAX_LIMIT)
        rows = self.connection.execute(sql.READ_STREAM_FORWARD, params).fetchall()
        return _stream_records(stream_id, rows, self.store.codec)

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        """A page of the global log as this transaction sees it (as ``LogReader.read_page``)."""
        return read_page(self.connection, self.store, after, size, categories, types)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        validate_checkpoint_name(name)
        self.store.position_after(checkpoint)
        self.connection.execute(sql.SAVE_CHECKPOINT, (name, str(checkpoint), _now_us()))

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        validate_checkpoint_name(name)
        row = self.connection.execute(sql.LOAD_CHECKPOINT, (name,)).fetchone()
        return None if row is None else Checkpoint.parse(row[0])

    def save_snapshot(self, snapshot: Snapshot) -> None:
        validate_stream_id(snapshot.stream_id)
        _save_snapshot(self.connection, snapshot)

    def delete_checkpoint(self, name: str) -> None:
        _projections.delete_checkpoint(self.connection, name)

    def save_projection_state(self, state: ProjectionState) -> None:
        _projections.save_projection_state(self.connection, state)

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        return _projections.projection_states(self.connection, name)

    def delete_projection_state(self, name: str, version: int) -> None:
        _projections.delete_projection_state(self.connection, name, version)

    def park_event(self, letter: DeadLetter) -> None:
        _projections.park_event(self.connection, letter)

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        return _projections.dead_letters(self.connection, projection)


def _stream_records(stream_id: str, rows: list[Any], codec: Codec) -> list[RecordedEvent]:
    """Records from rows of ``sql._STREAM_COLUMNS`` (one stream: its id is not selected)."""
    new = NEW_RECORD
    return [
        new(stream_id, version, position, KIND, event_id, type_, schema_version, data, meta, at, codec)
        for version, position, event_id, type_, schema_version, data, meta, at in rows
    ]


def _save_snapshot(conn: sqlite3.Connection, snapshot: Snapshot) -> None:
    recorded = snapshot.recorded_at or datetime.now(UTC)
    conn.execute(
        sql.SAVE_SNAPSHOT,
        (
            snapshot.stream_id,
            snapshot.version,
            snapshot.type,
            snapshot.schema_version,
            bytes(snapshot.data),
            (recorded - _EPOCH) // timedelta(microseconds=1),
        ),
    )


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run a migration statement by statement, inside the caller's transaction.

    (``executescript`` would COMMIT first and break the migration's atomicity.)
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in statement.splitlines()
    ):
        raise InternalError(f"migration ends with an incomplete statement: {statement[:80]!r}")


def _lookup(conn: sqlite3.Connection, write: PreparedWrite) -> dict[uuid.UUID, ExistingEvent]:
    found: dict[uuid.UUID, ExistingEvent] = {}
    for event in write.events:
        row = conn.execute(sql.FIND_EVENT_ID, (event.event_id.bytes,)).fetchone()
        if row is not None:
            found[event.event_id] = ExistingEvent(row[0], row[1], row[2])
    return found


def _append_in(
    conn: sqlite3.Connection,
    writes: list[PreparedWrite],
    *,
    careful: bool,
    written: list[tuple[int, int]] | None = None,
) -> list[AppendResult]:
    """Append every write inside the caller's open write transaction.

    ``written`` collects the (first, last) positions of each write that stored events.
    """
    now = _now_us()
    results: list[AppendResult] = []
    for write in writes:
        if careful:
            existing = _lookup(conn, write)
            if existing:
                results.append(resolve_existing(write, existing, _checkpoint))
                continue
        if not careful and (write.expected is NO_STREAM or write.expected == 0):
            # A new stream: no need to look its version up. If it exists after all,
            # inserting version 1 hits the (stream_id, version) index and the append
            # goes again carefully, which reports the conflict with the real version.
            actual = 0
        else:
            actual = conn.execute(sql.STREAM_VERSION, (write.stream_id,)).fetchone()[0] or 0
        if not expected_ok(write, actual):
            existing = {} if careful else _lookup(conn, write)
            if existing:
                results.append(resolve_existing(write, existing, _checkpoint))
                continue
            raise WrongExpectedVersionError(write.stream_id, write.expected, actual)
        sid, cat = write.stream_id, write.category
        try:
            if len(write.events) == 1:
                e = write.events[0]
                cursor = conn.execute(
                    sql.INSERT_EVENT,
                    (
                        sid,
                        cat,
                        actual + 1,
                        e.event_id.bytes,
                        e.type,
                        e.schema_version,
                        e.data.decode(),
                        None if e.metadata is None else e.metadata.decode(),
                        now,
                    ),
                )
                position = cursor.lastrowid
            else:
                conn.executemany(
                    sql.INSERT_EVENT,
                    [
                        (
                            sid,
                            cat,
                            actual + i,
                            e.event_id.bytes,
                            e.type,
                            e.schema_version,
                            e.data.decode(),
                            None if e.metadata is None else e.metadata.decode(),
                            now,
                        )
                        for i, e in enumerate(write.events, 1)
                    ],
                )
                position = conn.execute(sql.LAST_POSITION).fetchone()[0]
        except sqlite3.IntegrityError as err:
            # Under BEGIN IMMEDIATE the version we read cannot be stale: an insert
            # can only hit the index on event_id, or the one on (stream_id, version)
            # when we took a new stream for granted. The careful pass tells which.
            code = getattr(err, "sqlite_errorcode", None)
            if code in (_SQLITE_CONSTRAINT_UNIQUE, _SQLITE_CONSTRAINT_PRIMARYKEY) and not careful:
                raise _DuplicateId from err
            raise
        version = actual + len(write.events)
        assert position is not None
        if written is not None:
            written.append((position - len(write.events) + 1, position))
        results.append(AppendResult(sid, version, position, _checkpoint_at(position)))
    return results


def check_schema(path: str | os.PathLike[str]) -> list[str]:
    """Pending migrations of the chronik store at ``path``, opened read-only."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return [m.name for m in MIGRATIONS]
    uri = "file:" + path.replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as err:
        raise _translate(err, path) from err
    try:
        tables = {row[0] for row in conn.execute(sql.TABLES)}
        if "chronik_migrations" not in tables:
            if any(not t.startswith("sqlite_") for t in tables):
                raise NotAChronikStoreError(f"{path} is a SQLite database but not a chronik store")
            return [m.name for m in MIGRATIONS]
        applied = [row[0] for row in conn.execute(sql.APPLIED_MIGRATIONS)]
        return [m.name for m in pending_migrations(MIGRATIONS, applied, path)]
    except sqlite3.Error as err:
        raise _translate(err, path) from err
    finally:
        conn.close()
