"""The boundary between the core and the backends.

``EventStore`` (and its asyncio twin ``AsyncEventStore``) is the whole contract a
backend must meet. Optional powers are separate small Protocols, checked with
``isinstance``: ``SnapshotStore``, ``CheckpointStore``. Backends live in
``chronik.stores.<name>``; none imports another and the core imports none of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

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

__all__ = [
    "AsyncCheckpointStore",
    "AsyncEventStore",
    "AsyncSnapshotStore",
    "CheckpointStore",
    "EventStore",
    "SnapshotStore",
]


@runtime_checkable
class EventStore(Protocol):
    """An append-only store of streams of events with one global, ordered log."""

    codec: Codec

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically if it is at ``expected_version``.

        Raises ``WrongExpectedVersionError`` when it is not. Re-sending events whose
        ids are already stored at the same place succeeds and writes nothing.
        """
        ...

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        """Append to several streams in one transaction: all commit or none."""
        ...

    def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        """Events of one stream with ``from_version <= version <= to_version``.

        ``backwards=True`` reads from the highest version down; then ``from_version``
        is still the lower bound and ``to_version`` the upper one.
        """
        ...

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        """The global log after ``after`` in checkpoint order, fetched in pages."""
        ...

    def stream_info(self, stream_id: str) -> StreamInfo:
        """The stream's version; 0 (``exists`` False) when it has no events."""
        ...

    def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        """Streams ordered by id, after the id ``after``: pass the last id for the next page."""
        ...

    def head(self) -> Checkpoint | None:
        """The checkpoint of the last event in the global log, None when empty."""
        ...

    def close(self) -> None:
        """Release connections. The store cannot be used afterwards."""
        ...


@runtime_checkable
class SnapshotStore(Protocol):
    """Keeps the latest snapshot of each stream."""

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing an older one of the same stream."""
        ...

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of ``stream_id``, if any."""
        ...


@runtime_checkable
class CheckpointStore(Protocol):
    """Named checkpoints, for subscribers and projections."""

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        """Record that reader ``name`` has processed everything up to ``checkpoint``."""
        ...

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        """Where reader ``name`` stands, or None if it never saved one."""
        ...


@runtime_checkable
class AsyncEventStore(Protocol):
    """The asyncio twin of :class:`EventStore`, method for method."""

    codec: Codec

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult: ...

    async def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]: ...

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]: ...

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[RecordedEvent]: ...

    async def stream_info(self, stream_id: str) -> StreamInfo: ...

    async def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]: ...

    async def head(self) -> Checkpoint | None: ...

    async def close(self) -> None: ...


@runtime_checkable
class AsyncSnapshotStore(Protocol):
    """The asyncio twin of :class:`SnapshotStore`."""

    async def save_snapshot(self, snapshot: Snapshot) -> None: ...

    async def load_snapshot(self, stream_id: str) -> Snapshot | None: ...


@runtime_checkable
class AsyncCheckpointStore(Protocol):
    """The asyncio twin of :class:`CheckpointStore`."""

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None: ...

    async def load_checkpoint(self, name: str) -> Checkpoint | None: ...
