"""Subscription hooks for the PostgreSQL store: pages of the final log, and waiting.

Written for asyncio; ``reader.py`` is generated from this file by
``tools/unasync.py`` (see ``async_store.py``).

A reader pages through the final part of the log (rows of finished transactions
only; see ``sql.py`` for why that is what makes checkpoints safe) on the store's
pool, and waits on a LISTEN connection of its own. Waiting is careful about the
order of things: it starts listening *before* it looks at the log, so a commit
after the look sends a notification it will get; and when an event is committed
but still held back by an older transaction, no notification will say when that
transaction ends (it may not even be chronik's), so it polls, with a growing
interval, until the event is released.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, TypeAlias

import psycopg

from chronik.codec import Codec
from chronik.events import Checkpoint
from chronik.store import LogPage
from chronik.stores.postgres import sql
from chronik.stores.postgres._common import checkpoint_start, record, translate, window
from chronik.stores.postgres._notify import AsyncWaker, async_wait_notification

if TYPE_CHECKING:
    from chronik.stores.postgres.async_store import AsyncPostgresEventStore

__all__ = ["AsyncPostgresLogReader", "count_events", "read_page"]

Conn: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]
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


async def read_page(
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
        cursor = await conn.execute(
            statements.read_all, (params["xid"], params["position"], size), binary=True
        )
        events = [record(row, codec) for row in await cursor.fetchall()]
        return LogPage(events, events[-1].checkpoint if events else after)
    cursor = await conn.execute(statements.read_window, params, binary=True)
    return window(await cursor.fetchall(), codec, after)


async def count_events(
    conn: Conn, statements: sql.Statements, after: Checkpoint | None, categories: Filter, types: Filter
) -> int:
    cursor = await conn.execute(statements.count_after, _params(after, 0, categories, types))
    row = await cursor.fetchone()
    assert row is not None
    count: int = row[0]
    return count


class AsyncPostgresLogReader:
    """A subscription's reader (``chronik.store.AsyncLogReader``): pages and wake-ups."""

    def __init__(self, store: AsyncPostgresEventStore) -> None:
        self._store = store
        self._listener: Conn | None = None
        self._waker = AsyncWaker()
        # Held while waiting; close() takes it to close the LISTEN connection only
        # once the (woken) waiter is done with it.
        self._busy = asyncio.Lock()
        self._closed = False

    async def read_page(
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

        async def op(conn: Conn) -> LogPage:
            return await read_page(conn, statements, codec, after, size, categories, types)

        return await store._run(op)

    async def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        checkpoint_start(after)
        statements = self._store._sql

        async def op(conn: Conn) -> int:
            return await count_events(conn, statements, after, categories, types)

        return await self._store._run(op)

    async def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        xid, position = checkpoint_start(after)
        store = self._store
        async with self._busy:
            if self._closed:
                return False
            store._check_open()
            deadline = time.monotonic() + timeout
            listener = await self._listen()
            if listener is None:  # closed meanwhile
                return False
            state = {"xid": xid, "position": position}
            readable, held_back = await store._fetch(store._sql.log_state, state)
            if readable:
                return True
            if held_back is not None:
                # Committed but held back by an older transaction: poll until it ends.
                delay = 0.0005
                while not self._closed and time.monotonic() < deadline:
                    if (await store._fetch(store._sql.released, (held_back,)))[0]:
                        return True
                    await self._waker.sleep(min(delay, deadline - time.monotonic()))
                    delay = min(delay * 2, 0.05)
                return False
            try:
                return await async_wait_notification(listener, deadline - time.monotonic(), self._waker)
            except psycopg.Error:
                # The listening connection died: drop it and let the caller read again
                # (a spurious wake-up is allowed); the next wait listens anew.
                await self._drop_listener()
                return True

    async def _listen(self) -> Conn | None:
        """The LISTEN connection, opened if need be; None once the reader is closed."""
        listener = self._listener
        if listener is not None and not listener.closed:
            return listener
        store = self._store
        try:
            listener = await psycopg.AsyncConnection.connect(store.config.conninfo, autocommit=True)
            await listener.execute(store._sql.listen)
        except psycopg.Error as err:
            if listener is not None:
                await listener.close()
            raise translate(err, store.where) from err
        self._listener = listener
        if self._closed:  # closed while connecting
            await self._drop_listener()
            return None
        return listener

    async def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()

    async def close(self) -> None:
        """Release the LISTEN connection and wake a wait in progress. Safe to call twice."""
        self._closed = True
        self._waker.wake()
        self._store._forget_reader(self)
        async with self._busy:
            await self._drop_listener()
            self._waker.close()
