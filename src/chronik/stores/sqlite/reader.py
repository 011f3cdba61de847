"""Reading a SQLite store: streams, the log page by page, and subscription readers.

A subscription's reader (:class:`SQLiteLogReader`) has a connection of its own and
waits for commits, which wake it two ways. Within the process, every commit of any
store object on the same file bumps a counter and notifies a condition
(:class:`Notifier`), so a waiting reader wakes at once. Commits by other
processes are seen by polling ``PRAGMA data_version`` on the reader's own connection
every ``poll_interval`` seconds while it waits: the pragma changes whenever another
connection commits, and costs a read of shared memory, not of the file. Between polls
the reader sleeps on the condition, so an idle subscription does not spin.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

import msgspec

from chronik.backend import Codec, LogPage, position_after, unlock_events
from chronik.events import Checkpoint, RecordedEvent
from chronik.stores.sqlite import sql

if TYPE_CHECKING:
    from chronik.stores.sqlite.schema import Connections

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "NEW_RECORD",
    "PAGE_SIZE",
    "Notifier",
    "SQLiteLogReader",
    "iter_all",
    "json_list",
    "notifier_for",
    "read_page",
    "records",
    "stream_records",
]

DEFAULT_POLL_INTERVAL: Final = 0.02
PAGE_SIZE: Final = 1000
_KIND: Final = sql.KIND
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


def stream_records(stream_id: str, rows: list[Any], codec: Codec) -> list[RecordedEvent]:
    """Records from rows of ``sql._STREAM_COLUMNS`` (one stream: its id is not selected)."""
    new = NEW_RECORD
    events = [
        new(stream_id, version, position, _KIND, event_id, type_, schema_version, data, meta, at, codec, tags)
        for version, position, event_id, type_, schema_version, data, meta, at, tags in rows
    ]
    unlock_events(codec, events)  # the subjects' keys their personal data needs, if any
    return events


def records(rows: Iterable[Any], codec: Codec) -> list[RecordedEvent]:
    """Records from rows of ``sql._COLUMNS`` (the codec goes between the columns and the tags)."""
    new = NEW_RECORD
    events = [
        new(sid, version, position, kind, event_id, type_, schema_version, data, meta, at, codec, tags)
        for sid, version, position, kind, event_id, type_, schema_version, data, meta, at, tags in rows
    ]
    unlock_events(codec, events)
    return events


def iter_all(
    connections: Connections,
    codec: Codec,
    start: int,
    cats: tuple[str, ...] | None,
    kinds: tuple[str, ...] | None,
    limit: int | None,
) -> Iterator[RecordedEvent]:
    """``read_all``: the log after ``start``, a page at a time on the thread's connection."""
    position = start
    remaining = limit
    while remaining is None or remaining > 0:
        size = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
        page = _read_after(connections, codec, position, size, cats, kinds)
        if not page:
            return
        yield from page
        position = page[-1].position
        if remaining is not None:
            remaining -= len(page)
        if len(page) < size:
            return


def _read_after(
    connections: Connections,
    codec: Codec,
    position: int,
    size: int,
    cats: tuple[str, ...] | None,
    kinds: tuple[str, ...] | None,
) -> list[RecordedEvent]:
    """Up to ``size`` events after ``position`` that pass the filters (for read_all)."""
    conn = connections.conn()
    with connections.errors():
        if cats is None and kinds is None:
            rows = conn.execute(sql.READ_ALL, (position, size)).fetchall()
        else:
            params = (position, size, json_list(cats), json_list(kinds))
            rows = conn.execute(sql.READ_ALL_FILTERED, params).fetchall()
    return records(rows, codec)


def read_page(
    conn: sqlite3.Connection,
    codec: Codec,
    after: Checkpoint | None,
    size: int,
    categories: tuple[str, ...] | None,
    types: tuple[str, ...] | None,
) -> LogPage:
    """A subscription page on ``conn`` (a reader's connection or an open transaction's)."""
    position = position_after(after, _KIND)
    if categories is None and types is None:
        rows = conn.execute(sql.READ_ALL, (position, size)).fetchall()
        events = records(rows, codec)
        return LogPage(events, events[-1].checkpoint if events else after)
    end = conn.execute(sql.WINDOW_END, (position, size)).fetchone()[0]
    if end is None:
        return LogPage([], after)
    rows = conn.execute(
        sql.READ_WINDOW_FILTERED, (position, end, json_list(categories), json_list(types))
    ).fetchall()
    return LogPage(records(rows, codec), Checkpoint(_KIND, (end,)))


class SQLiteLogReader:
    """A subscription's reader: one connection of its own, closed with the reader."""

    def __init__(self, connections: Connections, codec: Codec, poll_interval: float) -> None:
        self._connections = connections
        self._codec = codec
        self._notifier: Notifier = connections.notifier
        self._poll_interval = poll_interval
        self._conn: sqlite3.Connection | None = None
        # Held while the connection is in use; close() takes it to close the
        # connection only once no call is running on it.
        self._busy = threading.Lock()
        self._closed = False

    def _check_store(self) -> None:
        self._connections.check_open()

    def _connection(self) -> sqlite3.Connection:
        self._check_store()
        if self._conn is None:
            self._conn = self._connections.open()
        return self._conn

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        position_after(after, _KIND)
        with self._busy:
            # A closed store is an error; a reader closed by its subscription just
            # reads nothing (the subscription is ending).
            self._check_store()
            if self._closed:
                return LogPage([], after)
            conn = self._connection()
            with self._connections.errors():
                return read_page(conn, self._codec, after, size, categories, types)

    def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        position = position_after(after, _KIND)
        deadline = time.monotonic() + timeout
        notifier = self._notifier
        with self._busy:
            self._check_store()
            if self._closed:
                return False
            conn = self._connection()
            with self._connections.errors():
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
        position = position_after(after, _KIND)
        with self._busy:
            self._check_store()
            if self._closed:
                return 0
            conn = self._connection()
            with self._connections.errors():
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
        self._connections.forget_reader(self)
