"""Opening, checking and migrating a SQLite store's file.

:class:`Connections` is what the parts of a store share: the store, its writer
(``writing.py``) and its subscription readers (``reader.py``) all hold the same one.
It has the path and options, opens connections, keeps each thread's own connection,
knows whether the store is closed, translates driver errors, holds the write lock and
runs ``BEGIN IMMEDIATE`` transactions, and keeps the open readers (closed with the
store) and the notifier that wakes this process's subscriptions on each commit.

Each thread gets its own connection (sqlite3 connections are not meant to be shared
between threads); they run in autocommit mode, so reads always see the latest commit.

:func:`pending` is the one schema check: the store runs it on its own connection when
it opens, and :func:`check_schema` runs it on a read-only connection of its own.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, Literal, Protocol

from chronik.backend import Migration, SchemaStatus, load_migrations, pending_migrations
from chronik.errors import (
    ChronikError,
    IntegrityError,
    InternalError,
    NotAChronikStoreError,
    OperationalError,
    PendingMigrationsError,
    PersistenceError,
    StoreClosedError,
    is_transient,
)
from chronik.stores.sqlite import sql
from chronik.stores.sqlite.reader import notifier_for

__all__ = [
    "MIGRATIONS",
    "Closable",
    "Connections",
    "Synchronous",
    "check_schema",
    "open_schema",
    "pending",
    "schema_status",
    "translate",
]

Synchronous = Literal["FULL", "NORMAL", "EXTRA"]

# Extended result codes (https://sqlite.org/rescode.html).
_SQLITE_NOTADB: Final = 26


def translate(err: sqlite3.Error, path: str) -> ChronikError:
    """Map a driver error to chronik's persistence branch by class and result code.

    The error is ``transient`` (see :func:`chronik.errors.is_transient`) when its
    result code is BUSY or LOCKED (another connection holds the lock), IOERR or FULL;
    an SQL error (which SQLite also reports as operational) is not.
    """
    code = getattr(err, "sqlite_errorcode", None)
    if code == _SQLITE_NOTADB:
        return NotAChronikStoreError(f"{path} is not a SQLite database (and so not a chronik store)")
    message = f"SQLite error on {path}: {err} ({getattr(err, 'sqlite_errorname', 'unknown')})"
    transient = is_transient(err)
    if isinstance(err, sqlite3.OperationalError):
        return OperationalError(message, transient=transient)
    if isinstance(err, sqlite3.IntegrityError):
        return IntegrityError(message, transient=transient)
    if isinstance(err, sqlite3.InternalError):
        return InternalError(message, transient=transient)
    return PersistenceError(message, transient=transient)


class Closable(Protocol):
    """A reader the store closes when it closes."""

    def close(self) -> None: ...


class _WriteLock:
    """Holds the write lock (this process's writers, one at a time)."""

    __slots__ = ("connections",)

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def __enter__(self) -> None:
        c = self.connections
        if not c.write_lock.acquire(timeout=c.busy_timeout if c.busy_timeout else -1):
            raise OperationalError(
                f"SQLite store {c.path}: timed out waiting for the write lock", transient=True
            )

    def __exit__(self, *exc: object) -> None:
        self.connections.write_lock.release()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error; SQLite errors translated.

    IMMEDIATE takes the write lock now, not at the first write, so a version read
    inside cannot change before the insert, and positions (rowids, one more than
    the highest) are handed out in commit order: no reader can ever see position
    N+1 committed while N is pending. (A class, not a generator context manager:
    it is on the path of every append.)
    """

    __slots__ = ("conn", "connections")

    def __init__(self, connections: Connections, conn: sqlite3.Connection) -> None:
        self.connections = connections
        self.conn = conn

    def __enter__(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise translate(err, self.connections.path) from err

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        conn = self.conn
        try:
            if kind is None:
                conn.execute("COMMIT")
                self.connections.notifier.notify()  # wake this process's subscriptions
            elif conn.in_transaction:
                conn.rollback()
        except sqlite3.Error as err:
            raise translate(err, self.connections.path) from err
        finally:
            if conn.in_transaction:  # COMMIT failed (e.g. disk I/O): never leave it open
                try:
                    conn.rollback()
                except sqlite3.Error:
                    pass
        if isinstance(error, sqlite3.Error):
            raise translate(error, self.connections.path) from error


class Connections:
    """The connections of one store object to its file, and their shared state."""

    def __init__(self, path: str, synchronous: Synchronous, busy_timeout: float) -> None:
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self.closed = False
        self.notifier = notifier_for(path)
        """Wakes this process's subscriptions on every commit to the file."""
        # Threads of this process queue here rather than in SQLite's busy handler,
        # which sleeps in growing steps and would add milliseconds to each commit.
        # BEGIN IMMEDIATE still serialises this process against others.
        self.write_lock = threading.Lock()
        self.readers: set[Closable] = set()
        """Open subscription readers, closed with the store."""
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def closed_error(self) -> StoreClosedError:
        return StoreClosedError(f"the SQLite store {self.path} is closed")

    def check_open(self) -> None:
        if self.closed:
            raise self.closed_error()

    def open(self) -> sqlite3.Connection:
        """A new connection to the file, not tracked (a reader owns and closes it)."""
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=128,
            )
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            # Deleted events (a hard delete, a scavenge) are overwritten on the pages
            # that stay, where that costs no extra I/O, so their bytes do not linger in
            # the file (lifecycle.py); appends delete nothing and never pay for it.
            conn.execute("PRAGMA secure_delete = FAST")
        except sqlite3.Error as err:
            raise translate(err, self.path) from err
        return conn

    def conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use and closed with the store."""
        if self.closed:
            raise self.closed_error()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        conn = self.open()
        with self._lock:
            if self.closed:
                conn.close()
                raise self.closed_error()
            self._conns.append(conn)
        self._local.conn = conn
        return conn

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Translate the driver's errors raised in the block."""
        try:
            yield
        except sqlite3.Error as err:
            raise translate(err, self.path) from err

    def locked(self) -> _WriteLock:
        """This process's write lock, for one writer at a time."""
        return _WriteLock(self)

    def begin(self, conn: sqlite3.Connection) -> _Transaction:
        """BEGIN IMMEDIATE ... COMMIT on ``conn``; the caller holds the write lock."""
        return _Transaction(self, conn)

    def add_reader(self, reader: Closable) -> None:
        with self._lock:
            if self.closed:
                raise self.closed_error()
            self.readers.add(reader)

    def forget_reader(self, reader: Closable) -> None:
        with self._lock:
            self.readers.discard(reader)

    def close(self) -> None:
        """Close this thread's connection and every reader; release every other thread's.

        Another thread may be running a statement on its connection at this moment,
        and closing a sqlite3 connection under a running statement crashes the
        interpreter (the driver frees the statement that thread is stepping: a
        segmentation fault, seen when a store was closed while threads still read
        it). So only the calling thread's connection is closed here. The others are
        released: dropping the thread-local and the list leaves each connection with
        no owner but a call running on it, and CPython closes a connection when its
        last reference goes: at once for an idle thread, and for a busy one as soon
        as its statement returns (its next call finds the store closed).
        """
        with self._lock:
            self.closed = True
            conns, self._conns = self._conns, []
            readers = list(self.readers)
        for reader in readers:
            reader.close()
        own: sqlite3.Connection | None = getattr(self._local, "conn", None)
        self._local = threading.local()
        del conns
        if own is not None:
            try:
                own.close()
            except sqlite3.Error:
                pass


# -- the schema ----------------------------------------------------------------

MIGRATIONS: Final[list[Migration]] = load_migrations("chronik.stores.sqlite")


def _applied(conn: sqlite3.Connection, path: str) -> list[str]:
    """The migrations applied to the file (none for an empty file); refuses foreign ones."""
    tables = {row[0] for row in conn.execute(sql.TABLES)}
    if "chronik_migrations" not in tables:
        others = sorted(t for t in tables if not t.startswith("sqlite_"))
        if others:
            raise NotAChronikStoreError(
                f"{path} is a SQLite database but not a chronik store "
                f"(it has tables {', '.join(others)} and no chronik_migrations)"
            )
        return []
    return [row[0] for row in conn.execute(sql.APPLIED_MIGRATIONS)]


def pending(conn: sqlite3.Connection, path: str) -> list[Migration]:
    """The migrations the file still needs, read on ``conn``; never writes."""
    return pending_migrations(MIGRATIONS, _applied(conn, path), path)


def check_schema(path: str | os.PathLike[str]) -> list[str]:
    """Pending migrations of the chronik store at ``path``, opened read-only."""
    return schema_status(path).pending


def schema_status(path: str | os.PathLike[str]) -> SchemaStatus:
    """Applied and pending migrations of the chronik store at ``path``, opened read-only."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return SchemaStatus([], [m.name for m in MIGRATIONS])
    uri = "file:" + path.replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as err:
        raise translate(err, path) from err
    try:
        applied = _applied(conn, path)
        return SchemaStatus(applied, [m.name for m in pending_migrations(MIGRATIONS, applied, path)])
    except sqlite3.Error as err:
        raise translate(err, path) from err
    finally:
        conn.close()


def open_schema(connections: Connections, migrate: bool) -> None:
    """Check the file's schema and, if ``migrate``, bring it up to date.

    Each migration commits with its record, or not at all. Another process may be
    migrating the same file: what is applied is read again under the write lock.
    """
    path = connections.path
    with connections.errors():
        todo = pending(connections.conn(), path)
    if not todo:
        return
    if not migrate:
        raise PendingMigrationsError(
            f"{path} needs migrations {', '.join(m.name for m in todo)}; open it with migrate=True"
        )
    conn = connections.conn()
    with connections.errors():
        if len(todo) == len(MIGRATIONS):
            # A new file: free pages can go back to the file system without a full
            # VACUUM (scavenge, lifecycle.py). Only takes effect before the first
            # table; on a file that has some it changes nothing.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
    with connections.locked(), connections.begin(conn):
        todo = pending(conn, path)
        conn.execute(sql.CREATE_MIGRATIONS)
        for migration in todo:
            _run_script(conn, migration.sql)
            conn.execute(sql.RECORD_MIGRATION, (migration.name, time.time_ns() // 1000))


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
