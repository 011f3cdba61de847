"""A blocking face over an async store, so one test suite exercises both faces.

The async store runs on its own event loop in a private thread; each call is
submitted there and waited for. Calls from many threads at once are fine.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from typing import Any, Final, TypeVar

from chronik.codec import Codec
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
from chronik.store import AsyncCheckpointStore, AsyncEventStore, AsyncSnapshotStore

__all__ = ["BlockingStore"]

T = TypeVar("T")


class BlockingStore:
    """Presents an :class:`AsyncEventStore` as a sync :class:`EventStore`."""

    is_async: Final = False

    def __init__(self, store: AsyncEventStore) -> None:
        self.async_store = store
        self.codec: Codec = store.codec
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chronik-bridge", daemon=True)
        self._thread.start()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        return self._call(self.async_store.append(stream_id, events, expected_version))

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        return self._call(self.async_store.append_many(writes))

    def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        return self._call(
            self.async_store.read_stream(
                stream_id, from_version, to_version, backwards=backwards, limit=limit
            )
        )

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        async def collect() -> list[RecordedEvent]:
            it = self.async_store.read_all(after, categories=categories, types=types, limit=limit)
            return [e async for e in it]

        return iter(self._call(collect()))

    def stream_info(self, stream_id: str) -> StreamInfo:
        return self._call(self.async_store.stream_info(stream_id))

    def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        return self._call(self.async_store.list_streams(category=category, after=after, limit=limit))

    def head(self) -> Checkpoint | None:
        return self._call(self.async_store.head())

    def save_snapshot(self, snapshot: Snapshot) -> None:
        assert isinstance(self.async_store, AsyncSnapshotStore)
        self._call(self.async_store.save_snapshot(snapshot))

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        assert isinstance(self.async_store, AsyncSnapshotStore)
        return self._call(self.async_store.load_snapshot(stream_id))

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        assert isinstance(self.async_store, AsyncCheckpointStore)
        self._call(self.async_store.save_checkpoint(name, checkpoint))

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        assert isinstance(self.async_store, AsyncCheckpointStore)
        return self._call(self.async_store.load_checkpoint(name))

    def delete_checkpoint(self, name: str) -> None:
        assert isinstance(self.async_store, AsyncCheckpointStore)
        self._call(self.async_store.delete_checkpoint(name))

    def __enter__(self) -> BlockingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def close(self) -> None:
        """Close the async store; the bridge's loop keeps running until :meth:`shutdown`."""
        self._call(self.async_store.close())

    def shutdown(self) -> None:
        """Close the store if still open, then stop the private event loop."""
        if self._loop.is_closed():
            return
        try:
            self.close()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
