"""The boundary between the core and the backends: what a store is and what it can do.

``EventStore`` (and its asyncio twin ``AsyncEventStore``) is the whole contract a
backend must meet. Optional powers are separate small Protocols, checked with
``isinstance``: ``SnapshotStore``, ``CheckpointStore``, ``Subscribable`` (live
subscriptions), ``Transactional`` (your writes and chronik's in one transaction),
``AppendHooks`` (inline projections), ``ProjectionStateStore``, ``RunnerHeartbeats``
(what running runners say about themselves), ``DCBStore``, ``SubjectKeyStore``
(crypto-shredding), ``StreamDeletion``, ``StreamRetention`` and ``EventRepair``
(``chronik.lifecycle``), each with an asyncio twin. ``Store`` and ``AsyncStore`` are
the powers every store of chronik's own offers, what ``chronik.connect`` and
``connect_async`` are typed to return.

The two faces are marked explicitly: a sync store has ``is_async = False`` and is a
context manager (``with``), an asyncio store has ``is_async = True`` and is an async
context manager (``async with``), so ``isinstance`` tells them apart too.
:func:`is_async` is the one function the rest of chronik asks.

A backend becomes subscribable by supplying a ``LogReader`` with two hooks, "read a
page of the log after a checkpoint" and "wait until something may have been
appended after it"; the subscription loop, and ``subscribe`` itself, are written
once, in ``chronik.subscriptions``.

The values that cross this boundary live in ``chronik.events``; what a backend may
use to implement it is gathered in ``chronik.backend``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable

from chronik.codec import Codec
from chronik.errors import ConfigurationError
from chronik.events import (
    ANY,
    AppendResult,
    Checkpoint,
    DeadLetter,
    ExpectedVersion,
    ProjectionState,
    RecordedEvent,
    RunnerHeartbeat,
    Snapshot,
    StreamInfo,
    StreamWrite,
)

# The powers of deleting, retaining and repairing live beside their values and rules.
from chronik.lifecycle import (
    AsyncEventRepair,
    AsyncStreamDeletion,
    AsyncStreamRetention,
    EventRepair,
    StreamDeletion,
    StreamRetention,
)
from chronik.personal import SubjectKey
from chronik.query import AppendCondition, Query, ReadResult

if TYPE_CHECKING:
    from types import TracebackType

    from chronik.subscriptions import AsyncSubscription, Partition, Subscription

__all__ = [
    "AppendHook",
    "AppendHooks",
    "AsyncAppendHook",
    "AsyncAppendHooks",
    "AsyncCheckpointStore",
    "AsyncDCBStore",
    "AsyncEventRepair",
    "AsyncEventStore",
    "AsyncHookTransaction",
    "AsyncLogReader",
    "AsyncProjectionStateStore",
    "AsyncRunnerHeartbeats",
    "AsyncSnapshotStore",
    "AsyncStore",
    "AsyncStoreTransaction",
    "AsyncStreamDeletion",
    "AsyncStreamRetention",
    "AsyncSubjectKeyStore",
    "AsyncSubscribable",
    "AsyncTransactional",
    "CheckpointStore",
    "DCBStore",
    "EventRepair",
    "EventStore",
    "HookTransaction",
    "LogPage",
    "LogReader",
    "ProjectionStateStore",
    "RunnerHeartbeats",
    "SQLDatabase",
    "SnapshotStore",
    "Store",
    "StoreTransaction",
    "StreamDeletion",
    "StreamRetention",
    "SubjectKeyStore",
    "Subscribable",
    "Transactional",
    "is_async",
]


def is_async(store: object) -> bool:
    """Whether ``store`` is an asyncio store (its methods are awaited) rather than a sync one.

    Reads the explicit marker every store carries (``is_async``); anything without
    it is not a chronik store, and is refused with a :class:`ConfigurationError`.
    """
    marker = getattr(store, "is_async", None)
    if marker is True:
        return True
    if marker is False:
        return False
    raise ConfigurationError(
        f"{store!r} is not a chronik store: it has no is_async marker (see chronik.backend)"
    )


# -- the core contract ------------------------------------------------------------------------


@runtime_checkable
class EventStore(Protocol):
    """An append-only store of streams of events with one global, ordered log (sync face)."""

    codec: Codec

    @property
    def is_async(self) -> Literal[False]:
        """Always False: methods return their results (see :func:`is_async`)."""

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically if it is at ``expected_version``.

        Raises ``WrongExpectedVersionError`` when it is not. Re-sending events whose
        ids are already stored at the same place succeeds and writes nothing.
        """

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        """Append to several streams in one transaction: all commit or none."""

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

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        """The global log after ``after`` in checkpoint order, fetched in pages."""

    def stream_info(self, stream_id: str) -> StreamInfo:
        """The stream's version; 0 (``exists`` False) when it has no events."""

    def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        """Streams ordered by id, after the id ``after``: pass the last id for the next page."""

    def head(self) -> Checkpoint | None:
        """The checkpoint of the last event in the global log, None when empty."""

    def close(self) -> None:
        """Release connections. The store cannot be used afterwards."""

    def __enter__(self) -> Any: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> Any: ...


@runtime_checkable
class AsyncEventStore(Protocol):
    """The asyncio twin of :class:`EventStore`, method for method."""

    codec: Codec

    @property
    def is_async(self) -> Literal[True]:
        """Always True: methods are awaited (see :func:`is_async`)."""

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

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> Any: ...


# -- Dynamic Consistency Boundaries (docs/dcb.md) ---------------------------------------------


@runtime_checkable
class DCBStore(Protocol):
    """A store that reads by query (types and tags) and appends with a condition."""

    def read_query(
        self, query: Query, *, after: int | None = None, limit: int | None = None, backwards: bool = False
    ) -> ReadResult:
        """The events matching ``query`` with a position after ``after``, in position
        order (newest first if ``backwards``), at most ``limit``; and the head a
        decision made on them passes as ``AppendCondition(after=...)``."""

    def append_if(
        self, events: Sequence[object], condition: AppendCondition | None, *, stream_id: str | None = None
    ) -> AppendResult:
        """Append ``events`` atomically unless an event matching the condition's query
        was stored after its ``after`` (``AppendConditionFailedError``, nothing written).

        The events go to ``stream_id`` (any version), or to a new stream
        ``dcb-<uuid7>`` of their own."""


@runtime_checkable
class AsyncDCBStore(Protocol):
    """The asyncio twin of :class:`DCBStore`."""

    async def read_query(
        self, query: Query, *, after: int | None = None, limit: int | None = None, backwards: bool = False
    ) -> ReadResult: ...

    async def append_if(
        self, events: Sequence[object], condition: AppendCondition | None, *, stream_id: str | None = None
    ) -> AppendResult: ...


# -- snapshots and checkpoints ------------------------------------------------------------------


@runtime_checkable
class SnapshotStore(Protocol):
    """Keeps the latest snapshot of each stream."""

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing an older one of the same stream."""

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot of ``stream_id``, if any."""


@runtime_checkable
class AsyncSnapshotStore(Protocol):
    """The asyncio twin of :class:`SnapshotStore`."""

    async def save_snapshot(self, snapshot: Snapshot) -> None: ...

    async def load_snapshot(self, stream_id: str) -> Snapshot | None: ...


@runtime_checkable
class CheckpointStore(Protocol):
    """Named checkpoints, for subscribers and projections."""

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        """Record that reader ``name`` has processed everything up to ``checkpoint``."""

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        """Where reader ``name`` stands, or None if it never saved one."""

    def delete_checkpoint(self, name: str) -> None:
        """Forget the checkpoint ``name`` (a reset projection starts from the beginning)."""


@runtime_checkable
class AsyncCheckpointStore(Protocol):
    """The asyncio twin of :class:`CheckpointStore`."""

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None: ...

    async def load_checkpoint(self, name: str) -> Checkpoint | None: ...

    async def delete_checkpoint(self, name: str) -> None: ...


# -- subjects' keys (crypto-shredding: chronik.personal) ----------------------------------------


@runtime_checkable
class SubjectKeyStore(Protocol):
    """Keeps each data subject's key, which seals the subject's personal data.

    A store's own keeps them beside its events (a table, a key-value bucket, a dict);
    one given to ``chronik.connect(..., subject_keys=...)`` replaces it (a vault, a
    KMS). Keys never leave it but to seal and open personal fields in this process.
    """

    def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        """The current key of each of ``subjects`` that has one.

        With ``create``, a key is made first for each subject that has none (a subject
        forgotten before gets a new one, with a new id): writers racing to make one
        subject's key all get the same key.
        """

    def forget(self, subject: str) -> None:
        """Destroy ``subject``'s key for good: its personal data, wherever it is stored,
        reads as redacted from now on. A subject without a key (unknown, or forgotten
        already) is no error."""


@runtime_checkable
class AsyncSubjectKeyStore(Protocol):
    """The asyncio twin of :class:`SubjectKeyStore`."""

    async def subject_keys(
        self, subjects: Collection[str], *, create: bool = False
    ) -> dict[str, SubjectKey]: ...

    async def forget(self, subject: str) -> None: ...


# -- subscriptions ------------------------------------------------------------------------------


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

    def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        """Block until an event after ``after`` may exist, ``timeout`` seconds pass or
        the reader is closed; True when there may be one.

        Returning True early (a spurious wake-up) is allowed; returning False while
        an event after ``after`` is readable is not, except on timeout or close. It
        must not busy-loop. Raises ``StoreClosedError`` when the store is closed.
        """

    def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        """How many events after ``after`` match the filters (for lag)."""

    def close(self) -> None:
        """Release the reader's connections and wake any waiter. Safe to call twice."""


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
class Subscribable(Protocol):
    """A store whose global log can be followed live (see ``chronik.subscriptions``).

    A backend supplies ``log_reader``; ``subscribe`` comes from
    ``chronik.subscriptions.Subscribes``, which it inherits.
    """

    def log_reader(self) -> LogReader:
        """A new reader on connections of its own; closing it releases them."""

    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        partition: Partition | None = None,
        batch_size: int = ...,
    ) -> Subscription:
        """Events after ``after``: the history in batches, then new ones as they commit."""


@runtime_checkable
class AsyncSubscribable(Protocol):
    """The asyncio twin of :class:`Subscribable` (``subscribe`` from ``AsyncSubscribes``)."""

    def log_reader(self) -> AsyncLogReader: ...

    def subscribe(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        partition: Partition | None = None,
        batch_size: int = ...,
    ) -> AsyncSubscription: ...


# -- projection bookkeeping ---------------------------------------------------------------------


@runtime_checkable
class ProjectionStateStore(Protocol):
    """Where projections record their state and park the events they could not take.

    Transactions offer the same methods, so a projection parks an event in the same
    commit as the checkpoint that moves past it.
    """

    def save_projection_state(self, state: ProjectionState) -> None:
        """Store ``state``, replacing the one of the same name and version."""

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        """States ordered by name and version, of one projection or of all."""

    def delete_projection_state(self, name: str, version: int) -> None:
        """Forget one version of a projection: its state and its dead letters."""

    def park_event(self, letter: DeadLetter) -> None:
        """Record a dead letter; parking the same event again changes nothing."""

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        """Dead letters in the order they were parked, of one projection or of all."""

    def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        """Forget one dead letter: version ``version`` of ``projection``'s letter for the
        event at ``position`` (replayed or skipped); one that is not there changes nothing."""


@runtime_checkable
class AsyncProjectionStateStore(Protocol):
    """The asyncio twin of :class:`ProjectionStateStore`."""

    async def save_projection_state(self, state: ProjectionState) -> None: ...

    async def projection_states(self, name: str | None = None) -> list[ProjectionState]: ...

    async def delete_projection_state(self, name: str, version: int) -> None: ...

    async def park_event(self, letter: DeadLetter) -> None: ...

    async def dead_letters(self, projection: str | None = None) -> list[DeadLetter]: ...

    async def delete_dead_letter(self, projection: str, version: int, position: int) -> None: ...


@runtime_checkable
class RunnerHeartbeats(Protocol):
    """Where running runners record what they are doing, for other processes to read.

    One record per runner (``runner_id``), replaced by each heartbeat; the command
    line, the HTTP API and the web UI read them. Outside any transaction: a runner
    writes its heartbeat from a thread (or task) of its own, not in its batches.
    """

    def save_heartbeat(self, heartbeat: RunnerHeartbeat) -> None:
        """Store ``heartbeat``, replacing the record of the same ``runner_id``."""

    def heartbeats(self, name: str | None = None) -> list[RunnerHeartbeat]:
        """Records of the runners of one projection (or of all), ordered by name,
        version, partition, start and runner id."""

    def delete_heartbeat(self, runner_id: str) -> None:
        """Forget one runner's record; one that is not there changes nothing."""


@runtime_checkable
class AsyncRunnerHeartbeats(Protocol):
    """The asyncio twin of :class:`RunnerHeartbeats`."""

    async def save_heartbeat(self, heartbeat: RunnerHeartbeat) -> None: ...

    async def heartbeats(self, name: str | None = None) -> list[RunnerHeartbeat]: ...

    async def delete_heartbeat(self, runner_id: str) -> None: ...


# -- transactions -------------------------------------------------------------------------------


@runtime_checkable
class StoreTransaction(CheckpointStore, ProjectionStateStore, Protocol):
    """An open write transaction: appends, checkpoints, snapshots, projection
    bookkeeping and your own statements commit together or not at all."""

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult: ...

    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """Read a stream as this transaction sees it (its own appends included)."""

    def save_snapshot(self, snapshot: Snapshot) -> None: ...

    def execute(self, statement: str, parameters: Any = ()) -> Any:
        """Run one of your own statements (a read model's writes) in the transaction.

        On SQL stores it is SQL, with the driver's placeholders; a store without a
        query language refuses it with ``ConfigurationError``.
        """


@runtime_checkable
class AsyncStoreTransaction(AsyncCheckpointStore, AsyncProjectionStateStore, Protocol):
    """The asyncio twin of :class:`StoreTransaction`."""

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult: ...

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]: ...

    async def save_snapshot(self, snapshot: Snapshot) -> None: ...

    async def execute(self, statement: str, parameters: Any = ()) -> Any: ...


@runtime_checkable
class Transactional(Protocol):
    """A store that lets the caller write in the same transaction as chronik does."""

    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        """A write transaction; commits when the block ends, rolls back if it raises."""


@runtime_checkable
class AsyncTransactional(Protocol):
    """The asyncio twin of :class:`Transactional`: ``async with store.transaction() as tx``."""

    def transaction(self) -> AbstractAsyncContextManager[AsyncStoreTransaction]: ...


@runtime_checkable
class SQLDatabase(Protocol):
    """A store in a SQL database that your own code may connect to as well (read
    models beside the events: ``chronik.projections.SQLAlchemyTarget``).

    Both faces of a store have it, and on both ``connect_dbapi`` is a plain sync call:
    it is for code that runs on a thread of its own.
    """

    @property
    def sql_dialect(self) -> str:
        """The database and its DB-API driver, spelt as SQLAlchemy spells them
        (``"sqlite+pysqlite"``, ``"postgresql+psycopg"``)."""

    def connect_dbapi(self) -> Any:
        """A new DB-API 2 connection to the store's database, the caller's to close,
        on which table names without a schema resolve where they do in the store's
        transactions (on PostgreSQL: the store's schema, or its ``read_model_schema``)."""


# -- append hooks (inline projections) ------------------------------------------------------------


class HookTransaction(Protocol):
    """What an append hook gets: the append's own transaction, as far as a hook needs it.

    Every backend offers at least this; SQL stores hand over their whole
    :class:`StoreTransaction`, so a hook can also ``execute`` statements in it.
    """

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        """A page of the log as the transaction sees it (as :meth:`LogReader.read_page`)."""

    def load_checkpoint(self, name: str) -> Checkpoint | None: ...

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None: ...


class AsyncHookTransaction(Protocol):
    """The asyncio twin of :class:`HookTransaction`."""

    async def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage: ...

    async def load_checkpoint(self, name: str) -> Checkpoint | None: ...

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None: ...


class AppendHook(Protocol):
    """Code run inside every append's own transaction (an inline projection).

    An exception fails the append, and nothing of it is written.
    """

    @property
    def name(self) -> str: ...

    def installed(self, tx: HookTransaction) -> None:
        """Called once, in a write transaction, before any append can run the hook:
        catch up on the events already stored here."""

    def appended(self, tx: HookTransaction, events: Sequence[RecordedEvent]) -> None:
        """Called in the transaction of each append that wrote ``events``."""


class AsyncAppendHook(Protocol):
    """The asyncio twin of :class:`AppendHook`, which asyncio stores await."""

    @property
    def name(self) -> str: ...

    async def installed(self, tx: AsyncHookTransaction) -> None: ...

    async def appended(self, tx: AsyncHookTransaction, events: Sequence[RecordedEvent]) -> None: ...


@runtime_checkable
class AppendHooks(Protocol):
    """A store that runs append hooks (:class:`AppendHook`) inside its appends' transactions."""

    def add_append_hook(self, hook: AppendHook) -> None:
        """Install ``hook`` (its ``installed`` runs first, under the write lock)."""

    def remove_append_hook(self, name: str) -> None: ...


@runtime_checkable
class AsyncAppendHooks(Protocol):
    """The asyncio twin of :class:`AppendHooks`."""

    async def add_append_hook(self, hook: AsyncAppendHook) -> None: ...

    def remove_append_hook(self, name: str) -> None: ...


# -- everything at once -------------------------------------------------------------------------


@runtime_checkable
class Store(
    EventStore,
    SnapshotStore,
    CheckpointStore,
    Subscribable,
    Transactional,
    ProjectionStateStore,
    RunnerHeartbeats,
    AppendHooks,
    DCBStore,
    StreamDeletion,
    StreamRetention,
    SubjectKeyStore,
    Protocol,
):
    """Every power at once: what each of chronik's own stores offers (the NATS store
    lacks transactions and DCB), and what ``chronik.connect`` is typed to return.
    ``EventRepair`` is not part of it: the NATS store cannot replace a message."""


@runtime_checkable
class AsyncStore(
    AsyncEventStore,
    AsyncSnapshotStore,
    AsyncCheckpointStore,
    AsyncSubscribable,
    AsyncTransactional,
    AsyncProjectionStateStore,
    AsyncRunnerHeartbeats,
    AsyncAppendHooks,
    AsyncDCBStore,
    AsyncStreamDeletion,
    AsyncStreamRetention,
    AsyncSubjectKeyStore,
    Protocol,
):
    """The asyncio twin of :class:`Store`, what ``chronik.connect_async`` is typed to return."""
