"""The asyncio face of a store whose I/O is synchronous (memory, SQLite).

The logic lives once, in the sync store. For SQLite every call runs on one private
worker thread, so the event loop never blocks on the database; the sync path itself
never hops threads. The memory store does no I/O, so its calls run inline.

A subscription's reader gets a worker thread of its own: waiting for new events
blocks that thread, never the store's worker or the event loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Generic, ParamSpec, TypeVar

from chronik.errors import ConfigurationError, StoreClosedError
from chronik.events import (
    ANY,
    AppendResult,
    Checkpoint,
    ExpectedVersion,
    RecordedEvent,
    Snapshot,
    StreamInfo,
    StreamWrite,
)
from chronik.store import CheckpointStore, EventStore, LogPage, LogReader, SnapshotStore, Subscribable
from chronik.subscriptions import AsyncSubscribes

__all__ = ["AsyncStoreAdapter"]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound=EventStore)
PAGE = 1000


class AsyncStoreAdapter(AsyncSubscribes, Generic[S]):
    """Wraps a sync store in the :class:`chronik.store.AsyncEventStore` contract.

    ``offload=True`` runs every call on a dedicated worker thread (one, so a
    SQLite store uses one connection and calls keep their order).
    """

    is_async: Final = True

    def __init__(self, store: S, *, offload: bool) -> None:
        self.sync = store
        self.codec = store.codec
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="chronik-aio") if offload else None
        self._closed = False

    async def _run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed")
        if self._executor is None:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        return await self._run(self.sync.append, stream_id, events, expected_version)

    async def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        return await self._run(self.sync.append_many, writes)

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        return await self._run(
            self.sync.read_stream, stream_id, from_version, to_version, backwards=backwards, limit=limit
        )

    async def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        # Argument errors surface here, at the first step, as they would in the sync
        # face at the call. Pages are pulled on the worker thread.
        iterator = await self._run(self.sync.read_all, after, categories=categories, types=types, limit=limit)
        while True:
            page = await self._run(_take, iterator, PAGE)
            for event in page:
                yield event
            if len(page) < PAGE:
                return

    async def stream_info(self, stream_id: str) -> StreamInfo:
        return await self._run(self.sync.stream_info, stream_id)

    async def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        return await self._run(self.sync.list_streams, category=category, after=after, limit=limit)

    async def head(self) -> Checkpoint | None:
        return await self._run(self.sync.head)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        store = self.sync
        assert isinstance(store, SnapshotStore)
        await self._run(store.save_snapshot, snapshot)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        store = self.sync
        assert isinstance(store, SnapshotStore)
        return await self._run(store.load_snapshot, stream_id)

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        store = self.sync
        assert isinstance(store, CheckpointStore)
        await self._run(store.save_checkpoint, name, checkpoint)

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        store = self.sync
        assert isinstance(store, CheckpointStore)
        return await self._run(store.load_checkpoint, name)

    async def delete_checkpoint(self, name: str) -> None:
        store = self.sync
        assert isinstance(store, CheckpointStore)
        await self._run(store.delete_checkpoint, name)

    def log_reader(self) -> AsyncLogReaderAdapter:
        """A reader for subscriptions (``chronik.store.AsyncLogReader``)."""
        store = self.sync
        if not isinstance(store, Subscribable):
            raise ConfigurationError(f"{store!r} does not support subscriptions")
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed")
        return AsyncLogReaderAdapter(store.log_reader(), offload_reads=self._executor is not None)

    async def close(self) -> None:
        if self._closed:
            return
        await self._run(self.sync.close)
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncStoreAdapter[S]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncStoreAdapter({self.sync!r})"


class AsyncLogReaderAdapter:
    """A sync :class:`~chronik.store.LogReader` as an asyncio one.

    Waits run on a worker thread of the reader's own; so do reads when
    ``offload_reads`` (SQLite), while a memory store's reads run inline.
    """

    def __init__(self, reader: LogReader, *, offload_reads: bool) -> None:
        self.sync = reader
        self._offload_reads = offload_reads
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="chronik-subscription")

    async def _run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        if not self._offload_reads:
            return self.sync.read_page(after, size, categories, types)
        return await self._run(self.sync.read_page, after, size, categories, types)

    async def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        return await self._run(self.sync.wait_for_events, after, timeout)

    async def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        if not self._offload_reads:
            return self.sync.count_events(after, categories, types)
        return await self._run(self.sync.count_events, after, categories, types)

    async def close(self) -> None:
        # close() wakes a wait in progress on the worker, then waits for it to let go
        # of the connection: run it on the default executor, not on the loop.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.sync.close)
        self._executor.shutdown(wait=False)


def _take(iterator: Iterator[Any], n: int) -> list[Any]:
    page = []
    for item in iterator:
        page.append(item)
        if len(page) == n:
            break
    return page
