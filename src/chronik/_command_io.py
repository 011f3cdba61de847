"""The I/O of command handling: the requests its logic yields, and the loops that perform them.

The logic (``handling._Plan``) is written once, as generators that yield what they
need (read a stream, load or save a snapshot, append) and receive the result.
:func:`drive` performs those requests on a sync store or transaction,
:func:`drive_async` on an asyncio one; an error is thrown back into the generator
where it asked, so its ``try`` blocks see it as if the call had been made there.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from chronik.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent, Snapshot
from chronik.store import AsyncSnapshotStore, SnapshotStore

__all__ = [
    "Append",
    "AsyncWriter",
    "Flow",
    "LoadSnapshot",
    "ReadStream",
    "SaveSnapshot",
    "Writer",
    "drive",
    "drive_async",
]

T = TypeVar("T")


class ReadStream(NamedTuple):
    stream_id: str
    from_version: int
    to_version: int | None


class LoadSnapshot(NamedTuple):
    stream_id: str


class SaveSnapshot(NamedTuple):
    snapshot: Snapshot


class Append(NamedTuple):
    stream_id: str
    events: list[NewEvent]
    expected_version: ExpectedVersion


Request = ReadStream | LoadSnapshot | SaveSnapshot | Append
Flow = Generator[Request, Any, T]


class Writer(Protocol):
    """What a command reads and appends through: an event store, or a transaction of one."""

    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]: ...

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult: ...


class AsyncWriter(Protocol):
    """The asyncio twin of :class:`Writer`."""

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]: ...

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult: ...


def drive(store: Writer, snapshots: SnapshotStore | None, flow: Flow[T]) -> T:
    """Run ``flow`` to its end, performing its requests on ``store`` and ``snapshots``."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            request = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        value, error = None, None
        try:
            if isinstance(request, ReadStream):
                value = store.read_stream(request.stream_id, request.from_version, request.to_version)
            elif isinstance(request, Append):
                value = store.append(request.stream_id, request.events, request.expected_version)
            elif isinstance(request, LoadSnapshot):
                assert snapshots is not None
                value = snapshots.load_snapshot(request.stream_id)
            else:
                assert snapshots is not None
                snapshots.save_snapshot(request.snapshot)
        except Exception as err:
            error = err


async def drive_async(store: AsyncWriter, snapshots: AsyncSnapshotStore | None, flow: Flow[T]) -> T:
    """The asyncio twin of :func:`drive`."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            request = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        value, error = None, None
        try:
            if isinstance(request, ReadStream):
                value = await store.read_stream(request.stream_id, request.from_version, request.to_version)
            elif isinstance(request, Append):
                value = await store.append(request.stream_id, request.events, request.expected_version)
            elif isinstance(request, LoadSnapshot):
                assert snapshots is not None
                value = await snapshots.load_snapshot(request.stream_id)
            else:
                assert snapshots is not None
                await snapshots.save_snapshot(request.snapshot)
        except Exception as err:
            error = err
