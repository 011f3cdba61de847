"""The I/O of command handling: the requests its logic yields, and the loops that perform them.

The logic (``handling._Plan``) is written once, as generators that yield what they
need (read a stream, load or save a snapshot, append) and receive the result.
:func:`drive` performs those requests on a sync store or transaction,
:func:`drive_async` on an asyncio one; an error is thrown back into the generator
where it asked, so its ``try`` blocks see it as if the call had been made there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from chronik._subject_keys import (
    opened_snapshot,
    opened_snapshot_async,
    sealed_snapshot,
    sealed_snapshot_async,
)
from chronik.codec import Codec
from chronik.events import ANY, AppendResult, ExpectedVersion, NewEvent, RecordedEvent, Snapshot
from chronik.store import AsyncSnapshotStore, AsyncSubjectKeyStore, SnapshotStore, SubjectKeyStore

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
Q = TypeVar("Q")


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


def run_flow(flow: Generator[Q, Any, T], perform: Callable[[Q], Any]) -> T:
    """Run a flow of requests to its end: each request is ``perform``-ed and its result
    (or its error, thrown in) sent back, until the flow returns its result."""
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
            value = perform(request)
        except Exception as err:
            error = err


async def run_flow_async(flow: Generator[Q, Any, T], perform: Callable[[Q], Awaitable[Any]]) -> T:
    """The asyncio twin of :func:`run_flow`: ``perform`` is awaited."""
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
            value = await perform(request)
        except Exception as err:
            error = err


def drive(store: Writer, snapshots: SnapshotStore | None, flow: Flow[T]) -> T:
    """Run ``flow`` to its end, performing its requests on ``store`` and ``snapshots``.

    Snapshots are sealed and opened with the snapshot store's codec (at rest, and
    with their subjects' keys: ``chronik._sealed_snapshots``); saving one answers
    whether it was saved (not when a subject of its state was forgotten meanwhile).
    """

    def perform(request: Request) -> Any:
        if isinstance(request, ReadStream):
            return store.read_stream(request.stream_id, request.from_version, request.to_version)
        if isinstance(request, Append):
            return store.append(request.stream_id, request.events, request.expected_version)
        assert snapshots is not None
        codec: Codec | None = getattr(snapshots, "codec", None)
        keys = snapshots if isinstance(snapshots, SubjectKeyStore) else None
        if isinstance(request, LoadSnapshot):
            found = snapshots.load_snapshot(request.stream_id)
            return found if codec is None else opened_snapshot(codec, found, keys)
        sealed = request.snapshot if codec is None else sealed_snapshot(codec, request.snapshot, keys)
        if sealed is None:
            return False
        snapshots.save_snapshot(sealed)
        return True

    return run_flow(flow, perform)


async def drive_async(store: AsyncWriter, snapshots: AsyncSnapshotStore | None, flow: Flow[T]) -> T:
    """The asyncio twin of :func:`drive`."""

    async def perform(request: Request) -> Any:
        if isinstance(request, ReadStream):
            return await store.read_stream(request.stream_id, request.from_version, request.to_version)
        if isinstance(request, Append):
            return await store.append(request.stream_id, request.events, request.expected_version)
        assert snapshots is not None
        codec: Codec | None = getattr(snapshots, "codec", None)
        keys = snapshots if isinstance(snapshots, AsyncSubjectKeyStore) else None
        if isinstance(request, LoadSnapshot):
            found = await snapshots.load_snapshot(request.stream_id)
            return found if codec is None else await opened_snapshot_async(codec, found, keys)
        sealed = (
            request.snapshot if codec is None else await sealed_snapshot_async(codec, request.snapshot, keys)
        )
        if sealed is None:
            return False
        await snapshots.save_snapshot(sealed)
        return True

    return await run_flow_async(flow, perform)
