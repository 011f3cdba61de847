"""Subscription hooks for the SQLite store: pages of the log and waiting for commits.

Wake-ups come two ways. Within the process, every commit of any store object on the
same file bumps a counter and notifies a condition (:class:`Notifier`), so a waiting
reader wakes at once. Commits by other processes are seen by polling
``PRAGMA data_version`` on the reader's own connection every ``poll_interval``
seconds while it waits: the pragma changes whenever another connection commits, and
costs a read of shared memory, not of the file. Between polls the reader sleeps on
the condition, so an idle subscription does not spin.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Final

import msgspec

from chronik.errors import StoreClosedError
from chronik.events import Checkpoint, RecordedEvent
from chronik.store import LogPage
from chronik.stores.sqlite import sql

if TYPE_CHECKING:
    from chronik.stores.sqlite.store import SQLiteEventStore

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "NEW_RECORD",
    "Notifier",
    "SQLiteLogReader",
    "json_list",
    "notifier_for",
    "read_page",
]

DEFAULT_POLL_INTERVAL: Final = 0.02
_KIND: Final = "sqlite"  # the store's checkpoint kind (store.KIND)
# Rows are selected in the order of RecordedEvent's parameters (see sql._COLUMNS).
NEW_RECORD: Final[Any] = RecordedEvent


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


def json_list(values: tuple[str, ...] | None) -> str | None:
    """A filter as the one JSON parameter that ``json_each`` unpacks (None: no filter)."""
    return None if values is None else msgspec.json.encode(values).decode()


def read_page(
    conn: sqlite3.Connection,
    store: SQLiteEventStore,
    after: Checkpoint | None,
    size: int,
    categories: tuple[str, ...] | None,
    types: tuple[str, ...] | None,
) -> LogPage:
    """A subscription page on ``conn`` (a reader's connection or an open transaction's)."""
    position = store.position_after(after)
    codec, new = store.codec, NEW_RECORD
    if categories is None and types is None:
        rows = conn.execute(sql.READ_ALL, (position, size)).fetchall()
        events = [new(*row, codec) for row in rows]
        return LogPage(events, events[-1].checkpoint if events else after)
    end = conn.execute(sql.WINDOW_END, (position, size)).fetchone()[0]
    if end is None:
        return LogPage([], after)
    rows = conn.execute(
        sql.READ_WINDOW_FILTERED, (position, end, json_list(categories), json_list(types))
    ).fetchall()
    return LogPage([new(*row, codec) for row in rows], Checkpoint(_KIND, (end,)))


class SQLiteLogReader:
    """A subscription's reader: one connection of its own, closed with the reader."""

    def __init__(self, store: SQLiteEventStore, notifier: Notifier, poll_interval: float) -> None:
        self._store = store
        self._notifier = notifier
        self._poll_interval = poll_interval
        self._conn: sqlite3.Connection | None = None
        # Held while the connection is in use; close() takes it to close the
        # connection only once no call is running on it.
        self._busy = threading.Lock()
        self._closed = False

    def _check_store(self) -> None:
        if self._store._closed:
            raise StoreClosedError(f"the SQLite store {self._store.path} is closed")

    def _connection(self) -> sqlite3.Connection:
        self._check_store()
        if self._conn is None:
            self._conn = self._store._open_connection()
        return self._conn

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        store = self._store
        store.position_after(after)
        with self._busy:
            # A closed store is an error; a reader closed by its subscription just
            # reads nothing (the subscription is ending).
            self._check_store()
            if self._closed:
                return LogPage([], after)
            conn = self._connection()
            with store._errors():
                return read_page(conn, store, after, size, categories, types)

    def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        store = self._store
        position = store.position_after(after)
        deadline = time.monotonic() + timeout
        notifier = self._notifier
        with self._busy:
            self._check_store()
            if self._closed:
                return False
            conn = self._connection()
            with store._errors():
                while True:
                    # Take both change signals before looking at the head: a commit
                    # after this point changes one of them, so it cannot be missed.
                    seen = notifier.sequence
                    data_version = conn.execute(sql.DATA_VERSION).fetchone()[0]
                    head = conn.execute(sql.HEAD).fetchone()[0]
                    if head is not None and head > position:
                        return True
                    while True:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            return False
                        with notifier.condition:
                            if notifier.sequence == seen and not self._closed:
                                notifier.condition.wait(min(remaining, self._poll_interval))
                        self._check_store()
                        if self._closed:
                            return False
                        if notifier.sequence != seen:
                            break
                        if conn.execute(sql.DATA_VERSION).fetchone()[0] != data_version:
                            break

    def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        store = self._store
        position = store.position_after(after)
        with self._busy:
            self._check_store()
            if self._closed:
                return 0
            conn = self._connection()
            with store._errors():
                count: int = conn.execute(
                    sql.COUNT_AFTER, (position, json_list(categories), json_list(types))
                ).fetchone()[0]
                return count

    def close(self) -> None:
        with self._notifier.condition:
            self._closed = True
            self._notifier.condition.notify_all()
        with self._busy:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
        self._store._forget_reader(self)
