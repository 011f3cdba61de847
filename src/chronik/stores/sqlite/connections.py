"""What the parts of a SQLite store share: the file, its connections and their locks.

:class:`Connections` is the one object the store, its writer (``writing.py``) and its
subscription readers (``reader.py``) hold in common: the path and options, opening
connections, each thread's own connection, the closed state, translating driver
errors, the write lock and ``BEGIN IMMEDIATE`` transactions, the open readers (closed
with the store) and the notifier that wakes this process's subscriptions on commit.

Each thread gets its own connection (sqlite3 connections are not meant to be shared
between threads); they run in autocommit mode, so reads always see the latest commit.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, Literal, Protocol

from chronik.errors import (
    ChronikError,
    IntegrityError,
    InternalError,
    NotAChronikStoreError,
    OperationalError,
    PersistenceError,
    StoreClosedError,
)

__all__ = ["Closable", "Connections", "Notifier", "Synchronous", "notifier_for", "translate"]

Synchronous = Literal["FULL", "NORMAL", "EXTRA"]

# Extended result codes (https://sqlite.org/rescode.html).
_SQLITE_NOTADB: Final = 26


def translate(err: sqlite3.Error, path: str) -> ChronikError:
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


class Notifier:
    """Commits to one file by store objects of this process: a counter and a condition."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.sequence = 0

    def notify(self) -> None:
        with self.condition:
            self.sequence += 1
            self.condition.notify_all()


_notifiers: weakref.WeakValueDictionary[str, Notifier] = weakref.WeakValueDictionary()
_notifiers_lock = threading.Lock()


def notifier_for(path: str) -> Notifier:
    """The notifier shared by every store object of this process on the file ``path``."""
    key = os.path.realpath(path)
    with _notifiers_lock:
        notifier = _notifiers.get(key)
        if notifier is None:
            notifier = _notifiers[key] = Notifier()
        return notifier


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
            raise OperationalError(f"SQLite store {c.path}: timed out waiting for the write lock")

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
        """Close every connection opened here, in every thread, and every reader."""
        with self._lock:
            self.closed = True
            conns, self._conns = self._conns, []
            readers = list(self.readers)
        for reader in readers:
            reader.close()
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()
