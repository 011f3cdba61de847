"""Reading the sync PostgreSQL store: its reads, and subscription hooks.

GENERATED from ``_async/reader.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import psycopg

from chronik.backend import Codec, LogPage, unlock_events, validate_limit, validate_read_stream
from chronik.errors import InvalidInputError
from chronik.events import Checkpoint, RecordedEvent, StreamInfo, validate_stream_id
from chronik.stores.postgres import sql
from chronik.stores.postgres._common import (
    KIND,
    MAX_VERSION,
    PAGE_SIZE,
    checkpoint_start,
    record,
    translate,
    window,
)
from chronik.stores.postgres._notify import Waker, wait_notification

if TYPE_CHECKING:
    from chronik.stores.postgres._sync.connections import Connections

__all__ = [
    "PostgresLogReader",
    "count_events",
    "head",
    "list_streams",
    "read_all",
    "read_page",
    "read_stream",
    "stream_info",
]

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


# -- the store's reads ------------------------------------------------------------------


def read_stream(
    shared: Connections,
    stream_id: str,
    from_version: int,
    to_version: int | None,
    *,
    backwards: bool,
    limit: int | None,
) -> list[RecordedEvent]:
    """Events of one stream with ``from_version <= version <= to_version``."""
    stream_id, from_version, to_version, limit = validate_read_stream(
        stream_id, from_version, to_version, limit
    )
    statements = shared.statements
    statement = statements.read_stream_backward if backwards else statements.read_stream_forward
    params = {
        "stream_id": stream_id,
        "from_version": from_version,
        "to_version": MAX_VERSION if to_version is None else to_version,
        "limit": limit,
    }
    return shared.records(statement, params)


def read_all(
    shared: Connections, start: tuple[int, int], cats: Filter, kinds: Filter, limit: int | None
) -> Iterator[RecordedEvent]:
    """The global log after ``start``, in pages; waits once for held-back events at its end."""
    after = start
    remaining = limit
    waited = False
    while remaining is None or remaining > 0:
        size = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
        page = _page(shared, after, size, cats, kinds)
        yield from page
        if page:
            last = page[-1].checkpoint.parts
            after = (last[0], last[1])
            if remaining is not None:
                remaining -= len(page)
        if len(page) < size:
            # The end of the final part of the log. Events committed before now
            # may still be held back by an older transaction: wait for it once,
            # then read on, so a read sees every event committed before it.
            if waited or not _wait_released(shared, after):
                return
            waited = True


def _page(
    shared: Connections, after: tuple[int, int], size: int, cats: Filter, kinds: Filter
) -> list[RecordedEvent]:
    if cats is None and kinds is None:
        return shared.records(shared.statements.read_all, (after[0], after[1], size))
    params = {
        "xid": after[0],
        "position": after[1],
        "categories": None if cats is None else list(cats),
        "types": None if kinds is None else list(kinds),
        "limit": size,
    }
    return shared.records(shared.statements.read_all_filtered, params)


def _wait_released(shared: Connections, after: tuple[int, int]) -> bool:
    """At the end of the final log: whether to read once more, after waiting if need be.

    Events committed but held back by an older transaction still running are
    waited for (only transactions running now can hold events back, so this never
    waits for writers that start later), at most ``visibility_timeout`` seconds.
    Otherwise it is worth reading again when final events follow ``after``: they
    may have turned final since the last page. Both are judged from one snapshot,
    so an event that turns final between two looks is not missed.
    """
    timeout = shared.config.visibility_timeout
    if timeout <= 0:
        return False
    statements = shared.statements
    readable, newest = shared.fetch(statements.log_state, {"xid": after[0], "position": after[1]})
    if newest is None:
        return bool(readable)
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not (shared.fetch(statements.released, (newest,)))[0]:
        if time.monotonic() >= deadline:
            return bool(readable)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def head(shared: Connections) -> Checkpoint | None:
    """The checkpoint of the last event in the global log, None when empty."""
    _wait_released(shared, (0, 0))
    statement = shared.statements.head

    def op(conn: Conn) -> Checkpoint | None:
        cursor = conn.execute(statement)
        row = cursor.fetchone()
        return None if row is None else Checkpoint(KIND, (row[0], row[1]))

    return shared.run(op)


def stream_info(shared: Connections, stream_id: str) -> StreamInfo:
    """The stream's version; 0 (``exists`` False) when it has no events."""
    stream_id = validate_stream_id(stream_id)
    statement = shared.statements.stream_version

    def op(conn: Conn) -> StreamInfo:
        cursor = conn.execute(statement, (stream_id,))
        row = cursor.fetchone()
        if row is None:
            return StreamInfo(stream_id, 0)
        version, deleted = row
        return StreamInfo(stream_id, 0, deleted) if deleted is not None else StreamInfo(stream_id, version)

    return shared.run(op)


def list_streams(
    shared: Connections, category: str | None, after: str | None, limit: int
) -> list[StreamInfo]:
    """Streams ordered by id, after the id ``after``."""
    checked = validate_limit(limit)
    if checked is None:
        raise InvalidInputError("limit must be an int >= 0")
    if not isinstance(category, str | None) or not isinstance(after, str | None):
        raise InvalidInputError("category and after must be str or None")
    start = "" if after is None else after
    statements = shared.statements
    statement = statements.list_streams if category is None else statements.list_streams_in_category
    params = (start, checked) if category is None else (category, start, checked)

    def op(conn: Conn) -> list[StreamInfo]:
        cursor = conn.execute(statement, params)
        return [StreamInfo(s, v) for s, v in cursor.fetchall()]

    return shared.run(op)


# -- subscriptions ------------------------------------------------------------------------


class PostgresLogReader:
    """A subscription's reader (``chronik.store.LogReader``): pages and wake-ups."""

    def __init__(self, shared: Connections) -> None:
        self._shared = shared
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
        shared = self._shared
        statements, codec = shared.statements, shared.codec

        def op(conn: Conn) -> LogPage:
            return read_page(conn, statements, codec, after, size, categories, types)

        page = shared.run(op)
        unlock_events(codec, page.events)
        return page

    def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        checkpoint_start(after)
        return self._shared.on(count_events, after, categories, types)

    def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        xid, position = checkpoint_start(after)
        shared = self._shared
        with self._busy:
            if self._closed:
                return False
            shared.check_open()
            deadline = time.monotonic() + timeout
            listener = self._listen()
            if listener is None:  # closed meanwhile
                return False
            state = {"xid": xid, "position": position}
            readable, held_back = shared.fetch(shared.statements.log_state, state)
            if readable:
                return True
            if held_back is not None:
                # Committed but held back by an older transaction: poll until it ends.
                delay = 0.0005
                while not self._closed and time.monotonic() < deadline:
                    if (shared.fetch(shared.statements.released, (held_back,)))[0]:
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
        shared = self._shared
        try:
            listener = psycopg.Connection.connect(shared.config.conninfo, autocommit=True)
            listener.execute(shared.statements.listen)
        except psycopg.Error as err:
            if listener is not None:
                listener.close()
            raise translate(err, shared.where) from err
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
        self._shared.readers.discard(self)
        with self._busy:
            self._drop_listener()
            self._waker.close()
