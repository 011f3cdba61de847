"""The boundary between the core and the backends.

``EventStore`` (and its asyncio twin ``AsyncEventStore``) is the whole contract a
backend must meet. Optional powers are separate small Protocols, checked with
``isinstance``: ``SnapshotStore``, ``CheckpointStore``, ``Subscribable`` (live
subscriptions), ``Transactional`` (your writes and chronik's in one transaction),
``AppendHooks`` (inline projections) and ``ProjectionStateStore``. Backends live in
``chronik.stores.<name>``; none imports another and the core imports none of them.

A backend becomes subscribable by supplying two hooks, through a ``LogReader``:
"read a page of the log after a checkpoint" and "wait until something may have been
appended after it". The subscription loop itself is written once, in
``chronik.subscriptions``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

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

if TYPE_CHECKING:
    from chronik.projections.state import DeadLetter, ProjectionState
    from chronik.subscriptions import AsyncSubscription, Partition, Subscription

__all__ = [
    "AppendHook",
    "AppendHooks",
    "AsyncCheckpointStore",
    "AsyncEventStore",
    "AsyncLogReader",
    "AsyncSnapshotStore",
    "AsyncSubscribable",
    "CheckpointStore",
    "EventStore",
    "LogPage",
    "LogReader",
    "ProjectionStateStore",
    "SnapshotStore",
    "StoreTransaction",
    "Subscribable",
    "Transactional",
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


# -- subscriptions ----------------------------------------------------------------------


class LogPage(NamedTuple):
    """One page of the global log, as a subscription reads it."""

    events: list[RecordedEvent]
    """The events of the page that match the filters, in checkpoint order."""
    checkpoint: Checkpoint | None
    """Where the next page starts: after the last event *read*, matching or not.

    It moves past events the filters skipped, so a filtered reader never reads them
    again; it is the ``after`` that was asked for when the page read nothing."""


@runtime_checkable
class LogReader(Protocol):
    """A backend's two subscription hooks, on connections of the reader's own.

    A subscription uses one reader from one thread at a time, except ``close``,
    which may come from any thread and must wake a ``wait_for_events`` in progress.
    """

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        """Up to ``size`` events of the log after ``after``, in checkpoint order.

        The page must never hold an event while an event before it in checkpoint
        order can still commit (the ordering guarantee), and must check that
        ``after`` was made by this kind of store (``InvalidCheckpointError``).
        """
        ...

    def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        """Block until an event after ``after`` may exist, ``timeout`` seconds pass or
        the reader is closed; True when there may be one.

        Returning True early (a spurious wake-up) is allowed; returning False while
        an event after ``after`` is readable is not, except on timeout or close. It
        must not busy-loop. Raises ``StoreClosedError`` when the store is closed.
        """
        ...

    def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        """How many events after ``after`` match the filters (for lag)."""
        ...

    def close(self) -> None:
        """Release the reader's connections and wake any waiter. Safe to call twice."""
        ...


@runtime_checkable
class Subscribable(Protocol):
    """A store whose global log can be followed live (see ``chronik.subscriptions``)."""

    def log_reader(self) -> LogReader:
        """A new reader on connections of its own; closing it releases them."""
        ...

    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        partition: Partition | None = None,
        batch_size: int = 500,
    ) -> Subscription:
        """Events after ``after``: the history in batches, then new ones as they commit.

        Implementations return ``chronik.subscriptions.Subscription(self, ...)``.
        """
        ...


@runtime_checkable
class AsyncLogReader(Protocol):
    """The asyncio twin of :class:`LogReader`; ``close`` may be awaited from any task."""

    async def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage: ...

    async def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool: ...

    async def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int: ...

    async def close(self) -> None: ...


@runtime_checkable
class AsyncSubscribable(Protocol):
    """The asyncio twin of :class:`Subscribable`."""

    def log_reader(self) -> AsyncLogReader: ...

    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        partition: Partition | None = None,
        batch_size: int = 500,
    ) -> AsyncSubscription: ...


# -- transactions and inline projections ----------------------------------------------------


@runtime_checkable
class StoreTransaction(Protocol):
    """An open write transaction: appends, checkpoints and your own statements commit
    together or not at all."""

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult: ...

    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """Read a stream as this transaction sees it (its own appends included)."""
        ...

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None: ...

    def load_checkpoint(self, name: str) -> Checkpoint | None: ...

    def execute(self, statement: str, parameters: Any = ()) -> Any:
        """Run one of your own SQL statements (a read model's writes) in the transaction."""
        ...


@runtime_checkable
class Transactional(Protocol):
    """A store that lets the caller write in the same transaction as chronik does."""

    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        """A write transaction; commits when the block ends, rolls back if it raises."""
        ...


class AppendHook(Protocol):
    """Code run inside every append's own transaction (an inline projection).

    ``tx`` is the backend's transaction: a :class:`StoreTransaction` on SQL stores.
    It also has ``read_page`` (as :meth:`LogReader.read_page`), ``save_checkpoint``
    and ``load_checkpoint`` on every backend. An exception fails the append.
    """

    @property
    def name(self) -> str: ...

    def installed(self, tx: Any) -> None:
        """Called once, in a write transaction, before any append can run the hook:
        catch up on the events already stored here."""
        ...

    def appended(self, tx: Any, events: Sequence[RecordedEvent]) -> None:
        """Called in the transaction of each append that wrote ``events``."""
        ...


@runtime_checkable
class AppendHooks(Protocol):
    """A store that runs append hooks (:class:`AppendHook`) inside its appends' transactions."""

    def add_append_hook(self, hook: AppendHook) -> None:
        """Install ``hook`` (its ``installed`` runs first, under the write lock)."""
        ...

    def remove_append_hook(self, name: str) -> None: ...


# -- projection bookkeeping -----------------------------------------------------------------


@runtime_checkable
class ProjectionStateStore(Protocol):
    """Where projections record their state and park the events they could not take.

    SQL stores offer the same methods on their transactions, so a projection parks an
    event in the same commit as the checkpoint that moves past it.
    """

    def save_projection_state(self, state: ProjectionState) -> None:
        """Store ``state``, replacing the one of the same name and version."""
        ...

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        """States ordered by name and version, of one projection or of all."""
        ...

    def delete_projection_state(self, name: str, version: int) -> None:
        """Forget one version of a projection: its state and its dead letters."""
        ...

    def park_event(self, letter: DeadLetter) -> None:
        """Record a dead letter; parking the same event again changes nothing."""
        ...

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        """Dead letters in the order they were parked, of one projection or of all."""
        ...

    def delete_checkpoint(self, name: str) -> None:
        """Forget the checkpoint ``name`` (a reset projection starts from the beginning)."""
        ...
