"""Subscription hooks for the sync PostgreSQL store.

GENERATED from ``async_reader.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, TypeAlias

import psycopg

from chronik.codec import Codec
from chronik.events import Checkpoint
from chronik.store import LogPage
from chronik.stores.postgres import sql
from chronik.stores.postgres._common import checkpoint_start, record, translate, window
from chronik.stores.postgres._notify import Waker, wait_notification

if TYPE_CHECKING:
    from chronik.stores.postgres.store import PostgresEventStore

__all__ = ["PostgresLogReader", "count_events", "read_page"]

Conn: TypeAlias = psycopg.Connection[tuple[Any, ...]]
Filter = tuple[str, ...] | None


def _params(after: Checkpoint | None, size: int, categories: Filter, types: Filter) -> dict[str, Any]:
    xid, position = checkpoint_start(after)
    return {
        "xid": xid,
        "position": position,
        "limit": size,
        "categories": None if categories is None else list(categories),
        "types": None if types is None else list(types),
    }


def read_page(
    conn: Conn,
    statements: sql.Statements,
    codec: Codec,
    after: Checkpoint | None,
    size: int,
    categories: Filter,
    types: Filter,
) -> LogPage:
    """A subscription page on ``conn`` (the pool's, or an open transaction's)."""
    params = _params(after, size, categories, types)
    if categories is None and types is None:
        cursor = conn.execute(statements.read_all, (params["xid"], params["position"], size), binary=True)
        events = [record(row, codec) for row in cursor.fetchall()]
        return LogPage(events, events[-1].checkpoint if events else after)
    cursor = conn.execute(statements.read_window, params, binary=True)
    return window(cursor.fetchall(), codec, after)


def count_events(
    conn: Conn, statements: sql.Statements, after: Checkpoint | None, categories: Filter, types: Filter
) -> int:
    cursor = conn.execute(statements.count_after, _params(after, 0, categories, types))
    row = cursor.fetchone()
    assert row is not None
    count: int = row[0]
    return count


class PostgresLogReader:
    """A subscription's reader (``chronik.store.LogReader``): pages and wake-ups."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store
        self._listener: Conn | None = None
        self._waker = Waker()
        # Held while waiting; close() takes it to close the LISTEN connection only
        # once the (woken) waiter is done with it.
        self._busy = threading.Lock()
        self._closed = False

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        checkpoint_start(after)
        if self._closed:
            return LogPage([], after)
        store = self._store
        statements, codec = store._sql, store.codec

        def op(conn: Conn) -> LogPage:
            return read_page(conn, statements, codec, after, size, categories, types)

        return store._run(op)

    def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        checkpoint_start(after)
        statements = self._store._sql

        def op(conn: Conn) -> int:
            return count_events(conn, statements, after, categories, types)

        return self._store._run(op)

    def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        xid, position = checkpoint_start(after)
        store = self._store
        with self._busy:
            if self._closed:
                return False
            store._check_open()
            deadline = time.monotonic() + timeout
            listener = self._listen()
            if listener is None:  # closed meanwhile
                return False
            state = {"xid": xid, "position": position}
            readable, held_back = store._fetch(store._sql.log_state, state)
            if readable:
                return True
            if held_back is not None:
                # Committed but held back by an older transaction: poll until it ends.
                delay = 0.0005
                while not self._closed and time.monotonic() < deadline:
                    if (store._fetch(store._sql.released, (held_back,)))[0]:
                        return True
                    self._waker.sleep(min(delay, deadline - time.monotonic()))
                    delay = min(delay * 2, 0.05)
                return False
            try:
                return wait_notification(listener, deadline - time.monotonic(), self._waker)
            except psycopg.Error:
                # The listening connection died: drop it and let the caller read again
                # (a spurious wake-up is allowed); the next wait listens anew.
                self._drop_listener()
                return True

    def _listen(self) -> Conn | None:
        """The LISTEN connection, opened if need be; None once the reader is closed."""
        listener = self._listener
        if listener is not None and not listener.closed:
            return listener
        store = self._store
        try:
            listener = psycopg.Connection.connect(store.config.conninfo, autocommit=True)
            listener.execute(store._sql.listen)
        except psycopg.Error as err:
            if listener is not None:
                listener.close()
            raise translate(err, store.where) from err
        self._listener = listener
        if self._closed:  # closed while connecting
            self._drop_listener()
            return None
        return listener

    def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def close(self) -> None:
        """Release the LISTEN connection and wake a wait in progress. Safe to call twice."""
        self._closed = True
        self._waker.wake()
        self._store._forget_reader(self)
        with self._busy:
            self._drop_listener()
            self._waker.close()
