"""The asyncio face of a store whose I/O is synchronous (memory, SQLite).

The logic lives once, in the sync store; the adapter only decides which thread runs
each call, so the event loop never blocks on the store (the sync path itself never
hops threads):

- writes run on one worker thread of the adapter's own, reads on another, so a read
  never queues behind a write that waits for the store's write lock;
- a transaction runs on a thread lent to it for its whole life (begin, each
  statement, commit or rollback), taken from a pool of single-thread executors that
  grows to the number of transactions open at once and is reused. A sync store's
  transaction belongs to its thread (SQLite: one connection per thread, a threading
  lock), so it can live neither on the loop nor on the shared writer, which may be
  waiting for that very lock;
- a subscription's reader gets a worker thread of its own: waiting for new events
  blocks that thread, never the store's workers or the event loop;
- an append hook (:class:`chronik.store.AsyncAppendHook`) is installed on the sync
  store as a sync shim: the append runs on the writer thread, inside the sync
  store's transaction, and the shim runs the hook's coroutine on the event loop
  meanwhile (the writer thread waits, so the transaction is used by one thread at a
  time). A hook that raises fails the append and nothing is written.

The adapter has exactly the powers of the store it wraps: for a sync store that is
not, say, ``Transactional``, the adapter has no ``transaction`` attribute at all (so
``isinstance(adapter, AsyncTransactional)`` is False, and using it raises an
``AttributeError`` naming the missing power).

A task that holds the write lock (it is inside ``async with store.transaction()``,
or it is an append hook running) may not write through the store itself: that
would wait for its own lock. It gets ``InvalidInputError``, as the sync stores give
a thread that does the same.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Final, Generic, ParamSpec, TypeVar, cast

from chronik.errors import ConfigurationError, InvalidInputError, StoreClosedError
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
from chronik.lifecycle import DeleteResult, RepairRecord, ScavengeResult, StreamMetadata
from chronik.personal import SubjectKey
from chronik.query import AppendCondition, Query, ReadResult
from chronik.store import (
    AppendHooks,
    AsyncAppendHook,
    AsyncHookTransaction,
    CheckpointStore,
    DCBStore,
    EventRepair,
    EventStore,
    HookTransaction,
    LogPage,
    LogReader,
    ProjectionStateStore,
    RunnerHeartbeats,
    SnapshotStore,
    SQLDatabase,
    StreamDeletion,
    StreamRetention,
    SubjectKeyStore,
    Subscribable,
    Transactional,
)
from chronik.subscriptions import AsyncSubscribes

__all__ = ["AsyncLogReaderAdapter", "AsyncStoreAdapter", "AsyncTransactionAdapter"]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound=EventStore)
PAGE = 1000
_IN_OWN_TRANSACTION: Final = (
    "a transaction is already open in this task (or an append hook is running in it): "
    "use that transaction's own methods (await tx.append(...)) inside `async with store.transaction()`"
)


class AsyncStoreAdapter(AsyncSubscribes, Generic[S]):
    """Wraps a sync store in the :class:`chronik.store.AsyncStore` contract.

    Every call is offloaded to a thread (see the module's docstring), the memory
    store's too: its transactions and append hooks hold a threading lock that the
    event loop must never wait for. A power the sync store lacks is absent here too.
    """

    is_async: Final = True
    _composed: ClassVar[bool] = False  # True on the classes _without makes

    def __new__(cls, store: S) -> AsyncStoreAdapter[S]:
        if not cls._composed:
            cls = _without(cls, store)
        return super().__new__(cls)

    def __init__(self, store: S) -> None:
        self.sync = store
        self.codec = store.codec
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="chronik-aio-write")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="chronik-aio-read")
        self._transaction_threads = _ThreadPool()
        # Tasks that hold the sync store's write lock: those in a transaction block,
        # and those running an append hook. They may not write through the store.
        self._writing: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- running calls ---------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed")

    async def _read(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        self._check_open()
        loop = asyncio.get_running_loop()
        # In the caller's context (as asyncio.to_thread does): the current span, so an
        # append's span and its events' trace context are the caller's trace.
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._reader, call)

    async def _write(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        self._check_open()
        self._check_not_writing()
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._writer, call)

    def _check_not_writing(self) -> None:
        task = asyncio.current_task()
        if task is not None and task in self._writing:
            raise InvalidInputError(_IN_OWN_TRANSACTION)

    # A power the sync store lacks is absent from this class (see _without), so the
    # methods below only run when the sync store has theirs.

    # -- the contract --------------------------------------------------------------------

    async def read_query(
        self, query: Query, *, after: int | None = None, limit: int | None = None, backwards: bool = False
    ) -> ReadResult:
        return await self._read(
            cast(DCBStore, self.sync).read_query, query, after=after, limit=limit, backwards=backwards
        )

    async def append_if(
        self, events: Sequence[object], condition: AppendCondition | None, *, stream_id: str | None = None
    ) -> AppendResult:
        return await self._write(cast(DCBStore, self.sync).append_if, events, condition, stream_id=stream_id)

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        return await self._write(self.sync.append, stream_id, events, expected_version)

    async def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        return await self._write(self.sync.append_many, writes)

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        return await self._read(
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
        # face at the call. Pages are pulled on the reader thread.
        iterator = await self._read(
            self.sync.read_all, after, categories=categories, types=types, limit=limit
        )
        while True:
            page = await self._read(_take, iterator, PAGE)
            for event in page:
                yield event
            if len(page) < PAGE:
                return

    async def stream_info(self, stream_id: str) -> StreamInfo:
        return await self._read(self.sync.stream_info, stream_id)

    async def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        return await self._read(self.sync.list_streams, category=category, after=after, limit=limit)

    async def head(self) -> Checkpoint | None:
        return await self._read(self.sync.head)

    # -- snapshots and checkpoints ---------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._write(cast(SnapshotStore, self.sync).save_snapshot, snapshot)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return await self._read(cast(SnapshotStore, self.sync).load_snapshot, stream_id)

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        await self._write(cast(CheckpointStore, self.sync).save_checkpoint, name, checkpoint)

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        return await self._read(cast(CheckpointStore, self.sync).load_checkpoint, name)

    async def delete_checkpoint(self, name: str) -> None:
        await self._write(cast(CheckpointStore, self.sync).delete_checkpoint, name)

    # -- projection state ------------------------------------------------------------------

    async def save_projection_state(self, state: ProjectionState) -> None:
        await self._write(cast(ProjectionStateStore, self.sync).save_projection_state, state)

    async def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        return await self._read(cast(ProjectionStateStore, self.sync).projection_states, name)

    async def delete_projection_state(self, name: str, version: int) -> None:
        await self._write(cast(ProjectionStateStore, self.sync).delete_projection_state, name, version)

    async def park_event(self, letter: DeadLetter) -> None:
        await self._write(cast(ProjectionStateStore, self.sync).park_event, letter)

    async def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        return await self._read(cast(ProjectionStateStore, self.sync).dead_letters, projection)

    async def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        store = cast(ProjectionStateStore, self.sync)
        await self._write(store.delete_dead_letter, projection, version, position)

    # -- deleting, retaining, repairing ----------------------------------------------------

    async def delete_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, hard: bool = False
    ) -> DeleteResult:
        store = cast(StreamDeletion, self.sync)
        return await self._write(store.delete_stream, stream_id, expected_version, hard=hard)

    async def set_stream_metadata(self, stream_id: str, metadata: StreamMetadata) -> None:
        await self._write(cast(StreamRetention, self.sync).set_stream_metadata, stream_id, metadata)

    async def get_stream_metadata(self, stream_id: str) -> StreamMetadata:
        return await self._read(cast(StreamRetention, self.sync).get_stream_metadata, stream_id)

    async def scavenge(self) -> ScavengeResult:
        return await self._write(cast(StreamRetention, self.sync).scavenge)

    async def repair_event(
        self, stream_id: str, version: int, event: object, *, reason: str, operator: str
    ) -> RepairRecord:
        store = cast(EventRepair, self.sync)
        return await self._write(
            store.repair_event, stream_id, version, event, reason=reason, operator=operator
        )

    async def archive_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, reason: str, operator: str
    ) -> RepairRecord:
        store = cast(EventRepair, self.sync)
        return await self._write(
            store.archive_stream, stream_id, expected_version, reason=reason, operator=operator
        )

    # -- subjects' keys (crypto-shredding) ---------------------------------------------------

    async def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        store = cast(SubjectKeyStore, self.sync)
        if create:
            return await self._write(store.subject_keys, subjects, create=True)
        return await self._read(store.subject_keys, subjects)

    async def forget(self, subject: str) -> None:
        await self._write(cast(SubjectKeyStore, self.sync).forget, subject)

    # -- transactions ----------------------------------------------------------------------

    async def save_heartbeat(self, heartbeat: RunnerHeartbeat) -> None:
        await self._write(cast(RunnerHeartbeats, self.sync).save_heartbeat, heartbeat)

    async def heartbeats(self, name: str | None = None) -> list[RunnerHeartbeat]:
        return await self._read(cast(RunnerHeartbeats, self.sync).heartbeats, name)

    async def delete_heartbeat(self, runner_id: str) -> None:
        await self._write(cast(RunnerHeartbeats, self.sync).delete_heartbeat, runner_id)

    def transaction(self) -> _TransactionBlock:
        """``async with store.transaction() as tx``: the sync store's transaction, run on a
        thread of its own for its whole life; commits when the block ends, rolls back
        if it raises (a cancelled task's transaction too)."""
        return _TransactionBlock(self, cast(Transactional, self.sync))

    # -- append hooks ----------------------------------------------------------------------

    async def add_append_hook(self, hook: AsyncAppendHook) -> None:
        """Run ``hook`` inside every append of the sync store (``hook.installed`` first,
        under its write lock), on this event loop; see the module's docstring."""
        store = cast(AppendHooks, self.sync)
        shim = _HookShim(self, hook, asyncio.get_running_loop())
        await self._write(store.add_append_hook, shim)

    def remove_append_hook(self, name: str) -> None:
        # Never waits for the write lock (the stores swap their hook table), so it may
        # run on the loop even while an append on the writer runs a hook there.
        cast(AppendHooks, self.sync).remove_append_hook(name)

    # -- subscriptions ---------------------------------------------------------------------

    def log_reader(self) -> AsyncLogReaderAdapter:
        """A reader for subscriptions (``chronik.store.AsyncLogReader``)."""
        store = cast(Subscribable, self.sync)
        self._check_open()
        return AsyncLogReaderAdapter(store.log_reader())

    # -- the database, for read models of your own -------------------------------------------

    @property
    def sql_dialect(self) -> str:
        """The wrapped store's (``chronik.store.SQLDatabase``)."""
        return cast(SQLDatabase, self.sync).sql_dialect

    def connect_dbapi(self) -> Any:
        """The wrapped store's: a sync call, for code on a thread of its own."""
        return cast(SQLDatabase, self.sync).connect_dbapi()

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        # Not on the writer, where it would wait behind appends that wait for an open
        # transaction: closing ends those with StoreClosedError.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.sync.close)
        self._closed = True
        self._writer.shutdown(wait=False)
        self._reader.shutdown(wait=False)
        self._transaction_threads.close()

    async def __aenter__(self) -> AsyncStoreAdapter[S]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncStoreAdapter({self.sync!r})"


# -- the powers the wrapped store lacks are absent --------------------------------------------

_POWERS: Final[tuple[tuple[type, tuple[str, ...]], ...]] = (
    (SnapshotStore, ("save_snapshot", "load_snapshot")),
    (CheckpointStore, ("save_checkpoint", "load_checkpoint", "delete_checkpoint")),
    (Subscribable, ("log_reader", "subscribe")),
    (Transactional, ("transaction",)),
    (
        ProjectionStateStore,
        (
            "save_projection_state",
            "projection_states",
            "delete_projection_state",
            "park_event",
            "dead_letters",
        ),
    ),
    (RunnerHeartbeats, ("save_heartbeat", "heartbeats", "delete_heartbeat")),
    (AppendHooks, ("add_append_hook", "remove_append_hook")),
    (SQLDatabase, ("sql_dialect", "connect_dbapi")),
    (DCBStore, ("read_query", "append_if")),
    (StreamDeletion, ("delete_stream",)),
    (StreamRetention, ("set_stream_metadata", "get_stream_metadata", "scavenge")),
    (EventRepair, ("repair_event", "archive_stream")),
    (SubjectKeyStore, ("subject_keys", "forget")),
)
_FACES: dict[tuple[type, frozenset[type]], type] = {}
_FACES_LOCK: Final = threading.Lock()


def _absent_getattribute(self: Any, name: str) -> Any:
    """``__getattribute__`` of a face that lacks some powers: their methods are absent."""
    absent: dict[str, type] = type(self)._absent
    if name in absent:
        raise AttributeError(
            f"{name!r}: {object.__getattribute__(self, 'sync')!r} is not {absent[name].__name__}, "
            f"so its asyncio face has no {name}"
        )
    return object.__getattribute__(self, name)


def _without(cls: type[AsyncStoreAdapter[Any]], store: object) -> type[AsyncStoreAdapter[Any]]:
    """``cls`` without the methods of the powers ``store`` lacks (one class per set).

    Each such method is None in the class, which is how a runtime Protocol check
    learns that a method is blocked (as ``__hash__ = None`` does), and reading it from
    an instance raises an ``AttributeError`` that names the missing power.
    """
    missing = frozenset(power for power, _ in _POWERS if not isinstance(store, power))
    if not missing:
        return cls
    with _FACES_LOCK:
        face = _FACES.get((cls, missing))
        if face is None:
            absent = {name: power for power, names in _POWERS if power in missing for name in names}
            namespace: dict[str, Any] = dict.fromkeys(absent)
            namespace.update(
                __module__=cls.__module__,
                __qualname__=cls.__qualname__,
                _composed=True,
                _absent=absent,
                __getattribute__=_absent_getattribute,
            )
            face = _FACES[(cls, missing)] = type(cls.__name__, (cls,), namespace)
        return face


class _ThreadPool:
    """Single-thread executors lent to transactions, one to each for its whole life.

    It grows to the number of transactions open at once and keeps its threads for
    the next ones (a SQLite store keeps a connection per thread, so threads are
    reused rather than started anew)."""

    def __init__(self) -> None:
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(1, thread_name_prefix="chronik-aio-transaction")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for executor in idle:
            executor.shutdown(wait=False)


async def _wait_for(future: Future[R]) -> R:
    """The result of work submitted to a transaction's thread.

    Shielded: cancelling the task never cancels the work, so a transaction's steps
    always run in order and its commit or rollback is never skipped.
    """
    waited = asyncio.wrap_future(future)
    try:
        return await asyncio.shield(waited)
    except asyncio.CancelledError:
        # Nobody awaits it now: take its outcome when it comes, so none goes unretrieved.
        waited.add_done_callback(lambda done: done.cancelled() or done.exception())
        raise


class _TransactionBlock:
    """What ``AsyncStoreAdapter.transaction()`` returns: ``async with`` it.

    ``__aenter__`` and ``__aexit__`` may run in different tasks (a sync face over
    this one does that); only the task that entered is refused store writes.
    """

    def __init__(self, adapter: AsyncStoreAdapter[Any], store: Transactional) -> None:
        self._adapter = adapter
        self._store = store
        self._executor: ThreadPoolExecutor | None = None
        self._block: AbstractContextManager[Any] | None = None
        self._tx: AsyncTransactionAdapter | None = None
        self._task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> AsyncTransactionAdapter:
        adapter = self._adapter
        adapter._check_open()
        adapter._check_not_writing()
        if self._executor is not None:
            raise InvalidInputError(
                "this transaction block was entered already: call store.transaction() again"
            )
        executor = self._executor = adapter._transaction_threads.take()
        block = self._block = self._store.transaction()
        entered = executor.submit(block.__enter__)
        try:
            sync_tx = await _wait_for(entered)
        except BaseException:
            # Cancelled while beginning (or BEGIN failed). If the transaction opened on
            # its thread after all, end it there, then lend the thread again.
            def undo() -> None:
                if not entered.cancelled() and entered.exception() is None:
                    block.__exit__(asyncio.CancelledError, asyncio.CancelledError(), None)

            ended = executor.submit(undo)
            ended.add_done_callback(lambda _: adapter._transaction_threads.give_back(executor))
            raise
        self._tx = AsyncTransactionAdapter(sync_tx, executor)
        task = self._task = asyncio.current_task()
        if task is not None:
            adapter._writing.add(task)
        return self._tx

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: Any
    ) -> bool | None:
        executor, block, tx = self._executor, self._block, self._tx
        assert executor is not None, "not entered"
        assert block is not None
        assert tx is not None
        tx._ended = True
        if self._task is not None:
            self._adapter._writing.discard(self._task)
        ended = executor.submit(block.__exit__, kind, error, tb)
        pool = self._adapter._transaction_threads
        ended.add_done_callback(lambda _: pool.give_back(executor))
        return await _wait_for(ended)


class AsyncTransactionAdapter:
    """A sync store's transaction (:class:`chronik.store.StoreTransaction`) as an asyncio one.

    Each method runs the sync transaction's method on the transaction's own thread
    and returns what it returns. Inside an append hook there is no such thread: the
    append's thread waits while the hook runs, and the methods call the sync
    transaction directly, on the event loop.

    Your own statements: ``await tx.execute(statement, parameters)`` returns what the
    sync transaction's ``execute`` returns (on SQLite the ``sqlite3.Cursor``: use its
    ``rowcount`` and ``lastrowid``; fetching rows from it would run on the event
    loop's thread). To read rows, ``await tx.fetchone(...)`` and ``await
    tx.fetchall(...)`` run the statement and fetch on the transaction's thread.
    ``executemany`` is there when the sync transaction has it. A store without a
    query language (memory) raises ``ConfigurationError`` from all four.
    """

    def __init__(self, sync: Any, executor: ThreadPoolExecutor | None) -> None:
        self.sync = sync
        """The sync transaction; use it only through this object's methods."""
        self._executor = executor
        self._ended = False

    async def _run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if self._ended:
            raise InvalidInputError("this transaction has ended: use it only inside its block")
        if self._executor is None:
            return fn(*args, **kwargs)
        # In the caller's context, as AsyncStoreAdapter's calls are.
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await _wait_for(self._executor.submit(call))

    def _method(self, name: str) -> Callable[..., Any]:
        method = getattr(self.sync, name, None)
        if method is None:
            raise ConfigurationError(f"{type(self.sync).__name__} has no {name}()")
        return method  # type: ignore[no-any-return]

    async def run_sync(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` on the transaction's own thread (where its connection
        lives), for work the methods here do not cover; use :attr:`sync` only in ``fn``."""
        return await self._run(fn, *args, **kwargs)

    # -- your own statements ---------------------------------------------------------------

    async def execute(self, statement: str, parameters: Any = ()) -> Any:
        """Run one of your own statements in the transaction; see the class docstring."""
        return await self._run(self._method("execute"), statement, parameters)

    async def executemany(self, statement: str, parameters: Iterable[Any]) -> Any:
        return await self._run(self._method("executemany"), statement, parameters)

    async def fetchone(self, statement: str, parameters: Any = ()) -> Any:
        """Run a query in the transaction and fetch its first row (None when there is none)."""
        execute = self._method("execute")
        return await self._run(lambda: execute(statement, parameters).fetchone())

    async def fetchall(self, statement: str, parameters: Any = ()) -> list[Any]:
        """Run a query in the transaction and fetch all its rows."""
        execute = self._method("execute")
        rows: list[Any] = await self._run(lambda: list(execute(statement, parameters).fetchall()))
        return rows

    # -- events --------------------------------------------------------------------------

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        result: AppendResult = await self._run(self._method("append"), stream_id, events, expected_version)
        return result

    async def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        results: list[AppendResult] = await self._run(self._method("append_many"), writes)
        return results

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        events: list[RecordedEvent] = await self._run(
            self._method("read_stream"), stream_id, from_version, to_version
        )
        return events

    async def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        page: LogPage = await self._run(self._method("read_page"), after, size, categories, types)
        return page

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._run(self._method("save_snapshot"), snapshot)

    # -- checkpoints and projection state ------------------------------------------------

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        await self._run(self._method("save_checkpoint"), name, checkpoint)

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        checkpoint: Checkpoint | None = await self._run(self._method("load_checkpoint"), name)
        return checkpoint

    async def delete_checkpoint(self, name: str) -> None:
        await self._run(self._method("delete_checkpoint"), name)

    async def save_projection_state(self, state: ProjectionState) -> None:
        await self._run(self._method("save_projection_state"), state)

    async def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        states: list[ProjectionState] = await self._run(self._method("projection_states"), name)
        return states

    async def delete_projection_state(self, name: str, version: int) -> None:
        await self._run(self._method("delete_projection_state"), name, version)

    async def park_event(self, letter: DeadLetter) -> None:
        await self._run(self._method("park_event"), letter)

    async def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        letters: list[DeadLetter] = await self._run(self._method("dead_letters"), projection)
        return letters

    async def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        await self._run(self._method("delete_dead_letter"), projection, version, position)


class _HookShim:
    """A sync :class:`~chronik.store.AppendHook` that runs an asyncio one on ``loop``.

    The sync store calls it on the thread that appends, inside the append's
    transaction; it runs the hook's coroutine on the loop and waits for it, handing
    it that transaction as an :class:`AsyncTransactionAdapter` without a thread of
    its own (the appending thread is blocked meanwhile).
    """

    def __init__(
        self, adapter: AsyncStoreAdapter[Any], hook: AsyncAppendHook, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._adapter = adapter
        self._hook = hook
        self._loop = loop

    @property
    def name(self) -> str:
        return self._hook.name

    def installed(self, tx: HookTransaction) -> None:
        self._run(tx, self._hook.installed)

    def appended(self, tx: HookTransaction, events: Sequence[RecordedEvent]) -> None:
        self._run(tx, lambda atx: self._hook.appended(atx, events))

    def _run(self, tx: HookTransaction, step: Callable[[AsyncHookTransaction], Awaitable[None]]) -> None:
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise InvalidInputError(
                f"the asyncio append hook {self.name!r} runs on this event loop, which this append "
                "blocks: append through the asyncio face (await store.append(...))"
            )
        if loop.is_closed() or not loop.is_running():
            raise ConfigurationError(
                f"the event loop of the asyncio append hook {self.name!r} is not running: "
                "remove the hook before its loop ends"
            )
        atx = AsyncTransactionAdapter(tx, None)
        writing = self._adapter._writing

        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            writing.add(task)
            try:
                await step(atx)
            finally:
                atx._ended = True
                writing.discard(task)

        asyncio.run_coroutine_threadsafe(run(), loop).result()


class AsyncLogReaderAdapter:
    """A sync :class:`~chronik.store.LogReader` as an asyncio one.

    Reads and waits run on a worker thread of the reader's own.
    """

    def __init__(self, reader: LogReader) -> None:
        self.sync = reader
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="chronik-subscription")
        self._closed = False

    async def _run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if self._closed:
            # A closed sync reader answers at once (an empty page, no wait), and the
            # worker is gone: a subscription closed under a task still reading ends
            # quietly, as the sync face's does.
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        return await self._run(self.sync.read_page, after, size, categories, types)

    async def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        return await self._run(self.sync.wait_for_events, after, timeout)

    async def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        return await self._run(self.sync.count_events, after, categories, types)

    async def close(self) -> None:
        # close() wakes a wait in progress on the worker, then waits for it to let go
        # of the connection: run it on the default executor, not on the loop.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.sync.close)
        self._closed = True
        self._executor.shutdown(wait=False)


def _take(iterator: Iterator[Any], n: int) -> list[Any]:
    page = []
    for item in iterator:
        page.append(item)
        if len(page) == n:
            break
    return page
