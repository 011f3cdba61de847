"""Appending to a SQLite store: group commit, savepoints, the careful path, transactions.

Every write runs inside ``BEGIN IMMEDIATE`` under this process's write lock
(``schema.Connections``). Appends by concurrent threads commit together (group commit);
a new stream is appended without looking its version up, and an append that meets an
event id already stored goes again carefully, telling a re-send from a clash.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import msgspec

from chronik.backend import (
    AppendHook,
    Codec,
    ExistingEvent,
    LogPage,
    PreparedWrite,
    append_many_events,
    appending,
    check_named,
    expected_version_ok,
    named_statement,
    prepare_write,
    prepare_writes,
    resolve_existing,
    validate_read_stream,
    write_keys,
)
from chronik.errors import InvalidInputError, WrongExpectedVersionError
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
    StreamWrite,
    validate_stream_id,
)
from chronik.lifecycle import check_append, visible_version
from chronik.stores.sqlite import projection_state as _records
from chronik.stores.sqlite import sql
from chronik.stores.sqlite.reader import read_page, records, stream_records
from chronik.stores.sqlite.schema import Connections, translate

__all__ = ["MAX_LIMIT", "SYSTEM", "SQLiteTransaction", "Writer"]

SYSTEM: Final = "sqlite"
"""What telemetry calls this backend (``db.system.name``)."""

KIND: Final = sql.KIND
MAX_LIMIT: Final = 2**62
# Extended result codes (https://sqlite.org/rescode.html).
_SQLITE_CONSTRAINT_UNIQUE: Final = 2067
_SQLITE_CONSTRAINT_PRIMARYKEY: Final = 1555


def _now_us() -> int:
    return time.time_ns() // 1000


class _Pending:
    """An append waiting in the group-commit queue, and what became of it."""

    __slots__ = ("done", "error", "result", "writes")

    def __init__(self, writes: list[PreparedWrite]) -> None:
        self.writes = writes
        self.done = False
        self.result: list[AppendResult] | None = None
        self.error: BaseException | None = None


class _DuplicateId(Exception):
    """An event id of the batch is already stored: retry the append carefully."""


def _checkpoint_at(position: int) -> Checkpoint:
    return Checkpoint(KIND, (position,))


def _checkpoint(where: ExistingEvent) -> Checkpoint:
    return _checkpoint_at(where.position)


class Writer:
    """A store's writing half: its appends, its append hooks and its write transactions."""

    def __init__(self, connections: Connections, codec: Codec) -> None:
        self.connections = connections
        self.codec = codec
        self.hooks: dict[str, AppendHook] = {}
        """Append hooks by name; replaced whole (never mutated) so appends can read it unlocked."""
        self._queue: list[_Pending] = []
        self._queue_lock = threading.Lock()

    # -- write transactions ------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, refused if a transaction is open on it."""
        conn = self.connections.conn()
        if conn.in_transaction:
            raise InvalidInputError(
                "a transaction is already open on this thread: use that transaction's own "
                "append/execute methods inside `with store.transaction()`"
            )
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: commit on success, roll back on any error."""
        conn = self.connection()
        connections = self.connections
        with connections.locked(), connections.begin(conn):
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[SQLiteTransaction]:
        with self.write() as conn:
            yield SQLiteTransaction(self, conn)

    # -- appending ---------------------------------------------------------------------

    def commit(self, writes: list[PreparedWrite]) -> list[AppendResult]:
        """Commit an append, grouped with the appends other threads queued meanwhile.

        Group commit: every append joins a queue; whichever thread gets the write
        lock commits everything queued so far in one transaction, one savepoint per
        append, so concurrent writers share one fsync instead of waiting for one each.
        Each append still succeeds or fails alone, with its own expected version.
        """
        conn = self.connection()
        pending = _Pending(writes)
        with self._queue_lock:
            self._queue.append(pending)
        with self.connections.locked():
            if not pending.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    if len(batch) == 1:
                        # Alone: no savepoints; an error rolls the transaction back.
                        batch[0].result = self._commit_alone(conn, batch[0].writes)
                    else:
                        with self.connections.begin(conn):
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
            with self.connections.begin(conn):
                return self.append_hooked(conn, writes, careful=False)
        except _DuplicateId:
            # Rolled back whole. Some event id is stored already: go again, looking
            # each batch's ids up first to tell a re-send from a clash.
            with self.connections.begin(conn):
                return self.append_hooked(conn, writes, careful=True)

    def _append_in_savepoint(self, conn: sqlite3.Connection, queued: _Pending) -> None:
        """One append of a group: its own savepoint, so it fails without failing the rest."""
        conn.execute("SAVEPOINT chronik_append")
        try:
            try:
                queued.result = self.append_hooked(conn, queued.writes, careful=False)
            except _DuplicateId:
                conn.execute("ROLLBACK TO chronik_append")
                queued.result = self.append_hooked(conn, queued.writes, careful=True)
        except Exception as err:  # a conflict, bad data, or an inline projection's handler
            conn.execute("ROLLBACK TO chronik_append")
            queued.error = translate(err, self.connections.path) if isinstance(err, sqlite3.Error) else err
        conn.execute("RELEASE chronik_append")

    def append_hooked(
        self, conn: sqlite3.Connection, writes: list[PreparedWrite], *, careful: bool, system: bool = False
    ) -> list[AppendResult]:
        """Append inside the open transaction, then run the append hooks in it.

        ``system``: chronik's own event (a deletion, an audit record), written whatever
        the stream's state (``lifecycle.py``)."""
        if not self.hooks:
            return _append_in(conn, writes, careful=careful, system=system)
        written: list[tuple[int, int]] = []
        results = _append_in(conn, writes, careful=careful, written=written, system=system)
        if written:
            # One writer at a time: everything between the first and last position
            # written here is ours.
            first, last = written[0][0], written[-1][1]
            events = records(conn.execute(sql.READ_RANGE, (first, last)), self.codec)
            tx = SQLiteTransaction(self, conn)
            for hook in list(self.hooks.values()):
                hook.appended(tx, events)
        return results

    # -- append hooks ------------------------------------------------------------------

    def add_hook(self, hook: AppendHook) -> None:
        with self.write() as conn:
            if hook.name in self.hooks:
                raise InvalidInputError(f"an append hook named {hook.name!r} is already installed")
            hook.installed(SQLiteTransaction(self, conn))
            self.hooks = {**self.hooks, hook.name: hook}

    def remove_hook(self, name: str) -> None:
        hooks = dict(self.hooks)
        hooks.pop(name, None)
        self.hooks = hooks


class SQLiteTransaction:
    """An open write transaction on a SQLite store (see ``SQLiteEventStore.transaction``).

    A ``chronik.store.StoreTransaction``, and what append hooks get as their
    ``HookTransaction``.
    """

    paramstyle: Final = "qmark"
    """The driver's own placeholder style: ``?``. Named parameters (``:name`` with a
    dict) work too, and unchanged on PostgreSQL: they are the portable style."""

    def __init__(self, writer: Writer, connection: sqlite3.Connection) -> None:
        self._writer = writer
        self.connection = connection

    def execute(self, statement: str, parameters: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        """Run your own SQL (a read model's writes) in this transaction.

        ``:name`` parameters with a dict run unchanged on SQLite and PostgreSQL;
        ``?`` with a sequence is SQLite's own style.
        """
        try:
            return self.connection.execute(statement, parameters)
        except sqlite3.ProgrammingError:
            _check_named(statement, parameters)
            raise

    def executemany(
        self, statement: str, parameters: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> sqlite3.Cursor:
        """``execute`` once per set of parameters (``:name`` with dicts, or ``?``)."""
        rows = parameters if isinstance(parameters, (list, tuple)) else list(parameters)
        try:
            return self.connection.executemany(statement, rows)
        except sqlite3.ProgrammingError:
            for row in rows:
                _check_named(statement, row)
            raise

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append in this transaction; it commits with everything else or not at all."""
        with appending(SYSTEM, "append", stream_id, expected_version, events) as span:
            writer = self._writer
            keys = write_keys(writer.codec, [events])  # made in this transaction (subject_keys.py)
            prepared = [prepare_write(writer.codec, stream_id, events, expected_version, keys)]
            return span.done(writer.append_hooked(self.connection, prepared, careful=True)[0])

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        """Append to several streams in this transaction, all or nothing."""
        with appending(SYSTEM, "append_many", events=append_many_events(writes)) as span:
            writer = self._writer
            prepared = prepare_writes(writer.codec, writes, write_keys(writer.codec, writes))
            return span.done(writer.append_hooked(self.connection, prepared, careful=True))

    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """Read a stream as this transaction sees it, its own appends included."""
        stream_id, from_version, to_version, _ = validate_read_stream(
            stream_id, from_version, to_version, None
        )
        to = MAX_LIMIT if to_version is None else to_version
        params = (stream_id, from_version, to, MAX_LIMIT, _now_us())
        rows = self.connection.execute(sql.READ_STREAM_FORWARD, params).fetchall()
        return stream_records(stream_id, rows, self._writer.codec)

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        """A page of the global log as this transaction sees it (as ``LogReader.read_page``)."""
        return read_page(self.connection, self._writer.codec, after, size, categories, types)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        _records.check_checkpoint(name, checkpoint)
        _records.save_checkpoint(self.connection, name, checkpoint)

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        return _records.load_checkpoint(self.connection, name)

    def delete_checkpoint(self, name: str) -> None:
        _records.delete_checkpoint(self.connection, name)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        validate_stream_id(snapshot.stream_id)
        _records.save_snapshot(self.connection, snapshot)

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The stream's snapshot as this transaction sees it."""
        return _records.load_snapshot(self.connection, validate_stream_id(stream_id))

    def save_projection_state(self, state: ProjectionState) -> None:
        _records.save_projection_state(self.connection, state)

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        return _records.projection_states(self.connection, name)

    def delete_projection_state(self, name: str, version: int) -> None:
        _records.delete_projection_state(self.connection, name, version)

    def park_event(self, letter: DeadLetter) -> None:
        _records.park_event(self.connection, letter)

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        return _records.dead_letters(self.connection, projection)

    def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        _records.delete_dead_letter(self.connection, projection, version, position)


def _check_named(statement: str, parameters: object) -> None:
    """After the driver refused ``parameters``: name a missing ``:name`` clearly (the
    statement is only scanned then, so the usual path costs nothing)."""
    if isinstance(parameters, Mapping):
        check_named(named_statement(statement).names, parameters, statement)


def _lookup(conn: sqlite3.Connection, write: PreparedWrite) -> dict[uuid.UUID, ExistingEvent]:
    found: dict[uuid.UUID, ExistingEvent] = {}
    for event in write.events:
        row = conn.execute(sql.FIND_EVENT_ID, (event.event_id.bytes,)).fetchone()
        if row is not None:
            found[event.event_id] = ExistingEvent(row[0], row[1], row[2])
    return found


def _tags_json(tags: tuple[str, ...]) -> str | None:
    return msgspec.json.encode(tags).decode() if tags else None


def _append_in(
    conn: sqlite3.Connection,
    writes: list[PreparedWrite],
    *,
    careful: bool,
    written: list[tuple[int, int]] | None = None,
    system: bool = False,
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
        mode = None
        if (
            not careful
            and (write.expected is NO_STREAM or write.expected == 0)
            and conn.execute(sql.STREAM_DELETED, (write.stream_id,)).fetchone() is None
        ):
            # A new stream: no need to look its version up. If it exists after all,
            # inserting version 1 hits the (stream_id, version) index and the append
            # goes again carefully, which reports the conflict with the real version.
            # (A deleted id has a row of chronik_streams: it takes the long way.)
            last = 0
        else:
            found, mode = conn.execute(sql.STREAM_STATE, (write.stream_id,)).fetchone()
            last = found or 0
        # A deleted stream is at version 0 for its writers; written again after a soft
        # delete, it goes on after its deletion event (chronik.lifecycle).
        actual = last
        if not system:
            check_append(write.stream_id, mode)
            actual = visible_version(last, mode)
        if not expected_version_ok(write.expected, actual):
            existing = {} if careful else _lookup(conn, write)
            if existing:
                results.append(resolve_existing(write, existing, _checkpoint))
                continue
            raise WrongExpectedVersionError(write.stream_id, write.expected, actual)
        if mode is not None and not system:
            conn.execute(sql.UNDELETE, (write.stream_id, now))
        sid, cat = write.stream_id, write.category
        try:
            if len(write.events) == 1:
                e = write.events[0]
                cursor = conn.execute(
                    sql.INSERT_EVENT,
                    (
                        sid,
                        cat,
                        last + 1,
                        e.event_id.bytes,
                        e.type,
                        e.schema_version,
                        e.data.decode(),
                        None if e.metadata is None else e.metadata.decode(),
                        now,
                        _tags_json(e.tags),
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
                            last + i,
                            e.event_id.bytes,
                            e.type,
                            e.schema_version,
                            e.data.decode(),
                            None if e.metadata is None else e.metadata.decode(),
                            now,
                            _tags_json(e.tags),
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
        version = last + len(write.events)
        assert position is not None
        # One writer at a time: the batch's positions are consecutive, ending at ``position``.
        first = position - len(write.events) + 1
        tagged = [(tag, first + i) for i, e in enumerate(write.events) if e.tags for tag in e.tags]
        if tagged:
            conn.executemany(sql.INSERT_TAG, tagged)
        if written is not None:
            written.append((position - len(write.events) + 1, position))
        results.append(AppendResult(sid, version, position, _checkpoint_at(position)))
    return results
