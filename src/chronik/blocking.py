"""The sync face of an asyncio store: :class:`BlockingStore`.

The asyncio store runs on an event loop of the face's own, in a private thread; each
call is submitted there and waited for, so calls from many threads at once are fine.
It is how the conformance suite runs its sync tests against asyncio faces, and how a
store that is asyncio by nature (NATS) gets its sync face.

Capabilities are forwarded only when the asyncio store has them: ``BlockingStore(s)``
is an instance of a subclass that has exactly the sync twins of ``s``'s powers, so
``isinstance(face, chronik.store.Transactional)`` and the like answer truthfully and
code that checks a capability before using it takes the right path. Over a store with
every power (each of chronik's own) it is a full :class:`chronik.store.Store`.

- ``transaction()`` is a sync context manager over the asyncio one;
- ``log_reader()`` is a sync reader over the asyncio one, so the inherited
  ``subscribe()`` works; closing it from another thread wakes a waiting
  ``wait_for_events``;
- a sync append hook is wrapped in an asyncio one that runs it in a worker thread, with
  a sync transaction over the asyncio one: the loop stays free while the hook blocks,
  and serves the hook's own calls.

A thread inside one of this face's transactions (or running an append hook) may not
write through the store itself, which would wait for the lock its transaction holds:
it gets ``InvalidInputError``, as with the sync stores.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Final, TypeVar, cast

from chronik.codec import Codec
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
    AppendHook,
    AsyncAppendHooks,
    AsyncCheckpointStore,
    AsyncDCBStore,
    AsyncEventRepair,
    AsyncEventStore,
    AsyncHookTransaction,
    AsyncLogReader,
    AsyncProjectionStateStore,
    AsyncRunnerHeartbeats,
    AsyncSnapshotStore,
    AsyncStreamDeletion,
    AsyncStreamRetention,
    AsyncSubjectKeyStore,
    AsyncSubscribable,
    AsyncTransactional,
    LogPage,
)
from chronik.subscriptions import Subscribes

__all__ = ["BlockingStore", "BlockingTransaction"]

T = TypeVar("T")
PAGE: Final = 1000
_IN_OWN_TRANSACTION: Final = (
    "a transaction is already open on this thread (or an append hook is running on it): "
    "use that transaction's own methods inside `with store.transaction()`"
)


class BlockingStore:
    """Presents an :class:`~chronik.store.AsyncEventStore` as a sync
    :class:`~chronik.store.EventStore`, with the sync twin of each power it has.

    ``close()`` closes the asyncio store and stops the private loop; afterwards every
    call raises ``StoreClosedError``.
    """

    is_async: Final = False
    _composed: ClassVar[bool] = False  # True on the classes _face_for makes

    def __new__(cls, store: AsyncEventStore) -> BlockingStore:
        if not cls._composed:
            cls = _face_for(cls, store)
        return super().__new__(cls)

    def __init__(self, store: AsyncEventStore) -> None:
        self.async_store = store
        self.codec: Codec = store.codec
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chronik-blocking", daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._closed = False
        self._local = threading.local()  # .writing: this thread holds the write lock

    # -- running calls on the loop ---------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop and wait for its result."""
        if threading.get_ident() == self._thread.ident:
            coro.close()
            raise InvalidInputError(f"{self!r} was called from its own event loop, which it would block")
        with self._lock:
            if self._closed:
                coro.close()
                raise StoreClosedError(f"{self!r} is closed")
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
            self._pending.add(future)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            if not self._closed:
                raise
            # The face was closed while the call waited: its loop cancelled it.
            raise StoreClosedError(f"{self!r} is closed") from None
        finally:
            with self._lock:
                self._pending.discard(future)

    def _on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Call a plain (not async) method of the asyncio store on its loop."""

        async def call() -> T:
            return fn(*args)

        return self._call(call())

    def _writing(self) -> bool:
        return getattr(self._local, "writing", 0) > 0

    def _check_not_writing(self) -> None:
        if self._writing():
            raise InvalidInputError(_IN_OWN_TRANSACTION)

    # -- the contract ----------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        self._check_not_writing()
        return self._call(self.async_store.append(stream_id, events, expected_version))

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        self._check_not_writing()
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
        pages = self.async_store.read_all(after, categories=categories, types=types, limit=limit)
        # The first page now, so bad arguments raise at the call, as in a sync store.
        first = self._call(_take(pages, PAGE))
        return self._iter_all(pages, first)

    def _iter_all(
        self, pages: AsyncIterator[RecordedEvent], page: list[RecordedEvent]
    ) -> Iterator[RecordedEvent]:
        finished = False
        try:
            while True:
                yield from page
                if len(page) < PAGE:
                    finished = True
                    return
                page = self._call(_take(pages, PAGE))
        finally:
            if not finished:
                self._close_pages(pages)

    def _close_pages(self, pages: AsyncIterator[RecordedEvent]) -> None:
        """Close an asyncio read_all left part-way (it may be collected on any thread)."""
        aclose = getattr(pages, "aclose", None)
        if aclose is None or self._closed or threading.get_ident() == self._thread.ident:
            return
        try:
            self._call(aclose())
        except StoreClosedError:
            pass

    def stream_info(self, stream_id: str) -> StreamInfo:
        return self._call(self.async_store.stream_info(stream_id))

    def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        return self._call(self.async_store.list_streams(category=category, after=after, limit=limit))

    def head(self) -> Checkpoint | None:
        return self._call(self.async_store.head())

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the asyncio store, then stop the private loop and its thread."""
        if self._closed:
            return
        try:
            self._call(self.async_store.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        loop = self._loop

        async def drain() -> None:
            # Whatever still runs (a subscription's wait, a call from another thread)
            # is cancelled; its caller gets StoreClosedError.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_asyncgens()

        if threading.get_ident() != self._thread.ident:
            asyncio.run_coroutine_threadsafe(drain(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join()
            loop.close()
        with self._lock:
            pending, self._pending = self._pending, set()
        for future in pending:
            future.cancel()

    def shutdown(self) -> None:
        """The same as :meth:`close` (kept for callers of the testing bridge)."""
        self.close()

    def __enter__(self) -> BlockingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BlockingStore({self.async_store!r})"


# -- the powers, each forwarded only when the asyncio store has it ----------------------------


class _Snapshots(BlockingStore):
    def save_snapshot(self, snapshot: Snapshot) -> None:
        self._check_not_writing()
        self._call(cast(AsyncSnapshotStore, self.async_store).save_snapshot(snapshot))

    def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return self._call(cast(AsyncSnapshotStore, self.async_store).load_snapshot(stream_id))


class _Checkpoints(BlockingStore):
    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        self._check_not_writing()
        self._call(cast(AsyncCheckpointStore, self.async_store).save_checkpoint(name, checkpoint))

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        return self._call(cast(AsyncCheckpointStore, self.async_store).load_checkpoint(name))

    def delete_checkpoint(self, name: str) -> None:
        self._check_not_writing()
        self._call(cast(AsyncCheckpointStore, self.async_store).delete_checkpoint(name))


class _ProjectionState(BlockingStore):
    def save_projection_state(self, state: ProjectionState) -> None:
        self._check_not_writing()
        self._call(cast(AsyncProjectionStateStore, self.async_store).save_projection_state(state))

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        return self._call(cast(AsyncProjectionStateStore, self.async_store).projection_states(name))

    def delete_projection_state(self, name: str, version: int) -> None:
        self._check_not_writing()
        store = cast(AsyncProjectionStateStore, self.async_store)
        self._call(store.delete_projection_state(name, version))

    def park_event(self, letter: DeadLetter) -> None:
        self._check_not_writing()
        self._call(cast(AsyncProjectionStateStore, self.async_store).park_event(letter))

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        return self._call(cast(AsyncProjectionStateStore, self.async_store).dead_letters(projection))

    def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        self._check_not_writing()
        store = cast(AsyncProjectionStateStore, self.async_store)
        self._call(store.delete_dead_letter(projection, version, position))


class _Heartbeats(BlockingStore):
    def save_heartbeat(self, heartbeat: RunnerHeartbeat) -> None:
        self._call(cast(AsyncRunnerHeartbeats, self.async_store).save_heartbeat(heartbeat))

    def heartbeats(self, name: str | None = None) -> list[RunnerHeartbeat]:
        return self._call(cast(AsyncRunnerHeartbeats, self.async_store).heartbeats(name))

    def delete_heartbeat(self, runner_id: str) -> None:
        self._call(cast(AsyncRunnerHeartbeats, self.async_store).delete_heartbeat(runner_id))


class _Subscriptions(Subscribes, BlockingStore):
    def log_reader(self) -> BlockingLogReader:
        """A sync reader (``chronik.store.LogReader``) over the asyncio store's."""
        store = cast(AsyncSubscribable, self.async_store)
        return BlockingLogReader(self, self._on_loop(store.log_reader))


class _Transactions(BlockingStore):
    @contextmanager
    def transaction(self) -> Iterator[BlockingTransaction]:
        """A write transaction; commits when the block ends, rolls back if it raises."""
        self._check_not_writing()
        block = self._on_loop(cast(AsyncTransactional, self.async_store).transaction)
        tx = self._call(block.__aenter__())
        self._local.writing = 1
        try:
            yield BlockingTransaction(self, tx)
        except BaseException as error:
            self._local.writing = 0
            if not self._call(block.__aexit__(type(error), error, error.__traceback__)):
                raise
        else:
            self._local.writing = 0
            self._call(block.__aexit__(None, None, None))
        finally:
            self._local.writing = 0


class _Hooks(BlockingStore):
    def add_append_hook(self, hook: AppendHook) -> None:
        """Run the sync ``hook`` inside every append (in a worker thread; see the module)."""
        self._check_not_writing()
        self._call(cast(AsyncAppendHooks, self.async_store).add_append_hook(_AsyncHook(self, hook)))

    def remove_append_hook(self, name: str) -> None:
        self._on_loop(cast(AsyncAppendHooks, self.async_store).remove_append_hook, name)


class _DCB(BlockingStore):
    def read_query(
        self, query: Query, *, after: int | None = None, limit: int | None = None, backwards: bool = False
    ) -> ReadResult:
        store = cast(AsyncDCBStore, self.async_store)
        return self._call(store.read_query(query, after=after, limit=limit, backwards=backwards))

    def append_if(
        self, events: Sequence[object], condition: AppendCondition | None, *, stream_id: str | None = None
    ) -> AppendResult:
        self._check_not_writing()
        store = cast(AsyncDCBStore, self.async_store)
        return self._call(store.append_if(events, condition, stream_id=stream_id))


class _Deletion(BlockingStore):
    def delete_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, hard: bool = False
    ) -> DeleteResult:
        self._check_not_writing()
        store = cast(AsyncStreamDeletion, self.async_store)
        return self._call(store.delete_stream(stream_id, expected_version, hard=hard))


class _Retention(BlockingStore):
    def set_stream_metadata(self, stream_id: str, metadata: StreamMetadata) -> None:
        self._check_not_writing()
        self._call(cast(AsyncStreamRetention, self.async_store).set_stream_metadata(stream_id, metadata))

    def get_stream_metadata(self, stream_id: str) -> StreamMetadata:
        return self._call(cast(AsyncStreamRetention, self.async_store).get_stream_metadata(stream_id))

    def scavenge(self) -> ScavengeResult:
        self._check_not_writing()
        return self._call(cast(AsyncStreamRetention, self.async_store).scavenge())


class _Repair(BlockingStore):
    def repair_event(
        self, stream_id: str, version: int, event: object, *, reason: str, operator: str
    ) -> RepairRecord:
        self._check_not_writing()
        store = cast(AsyncEventRepair, self.async_store)
        return self._call(store.repair_event(stream_id, version, event, reason=reason, operator=operator))

    def archive_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, reason: str, operator: str
    ) -> RepairRecord:
        self._check_not_writing()
        store = cast(AsyncEventRepair, self.async_store)
        return self._call(store.archive_stream(stream_id, expected_version, reason=reason, operator=operator))


class _SubjectKeys(BlockingStore):
    def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        store = cast(AsyncSubjectKeyStore, self.async_store)
        return self._call(store.subject_keys(subjects, create=create))

    def forget(self, subject: str) -> None:
        self._call(cast(AsyncSubjectKeyStore, self.async_store).forget(subject))


_POWERS: Final[tuple[tuple[type, type[BlockingStore]], ...]] = (
    (AsyncSnapshotStore, _Snapshots),
    (AsyncCheckpointStore, _Checkpoints),
    (AsyncSubscribable, _Subscriptions),
    (AsyncTransactional, _Transactions),
    (AsyncProjectionStateStore, _ProjectionState),
    (AsyncRunnerHeartbeats, _Heartbeats),
    (AsyncAppendHooks, _Hooks),
    (AsyncDCBStore, _DCB),
    (AsyncStreamDeletion, _Deletion),
    (AsyncStreamRetention, _Retention),
    (AsyncEventRepair, _Repair),
    (AsyncSubjectKeyStore, _SubjectKeys),
)
_FACES: dict[tuple[type[BlockingStore], ...], type[BlockingStore]] = {}
_FACES_LOCK: Final = threading.Lock()


def _face_for(cls: type[BlockingStore], store: AsyncEventStore) -> type[BlockingStore]:
    """``cls`` (BlockingStore or a subclass) with the sync twins of ``store``'s powers.

    A subclass's own methods come first; one class is made for each set of powers.
    """
    powers = tuple(face for power, face in _POWERS if isinstance(store, power))
    if not powers:
        return cls
    key = (cls, *powers)
    with _FACES_LOCK:
        face = _FACES.get(key)
        if face is None:
            bases = powers if cls is BlockingStore else key
            namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "_composed": True}
            face = _FACES[key] = cast(type[BlockingStore], type(cls.__name__, bases, namespace))
        return face


# -- what a face hands out ----------------------------------------------------------------------


class BlockingTransaction:
    """An asyncio store's transaction as a sync one (:class:`chronik.store.StoreTransaction`).

    Each method waits for the asyncio transaction's method and returns what it
    returns; ``execute`` returns what the asyncio ``execute`` returns (over SQLite's
    asyncio face, the ``sqlite3.Cursor``). Also what a sync append hook gets.
    """

    def __init__(self, store: BlockingStore, tx: Any) -> None:
        self.store = store
        self.async_transaction = tx

    def _do(self, name: str, *args: Any) -> Any:
        method = getattr(self.async_transaction, name, None)
        if method is None:
            raise ConfigurationError(f"{type(self.async_transaction).__name__} has no {name}()")
        return self.store._call(method(*args))

    def execute(self, statement: str, parameters: Any = ()) -> Any:
        """Run one of your own statements in the transaction."""
        return self._do("execute", statement, parameters)

    def executemany(self, statement: str, parameters: Iterable[Any]) -> Any:
        return self._do("executemany", statement, parameters)

    def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        result: AppendResult = self._do("append", stream_id, events, expected_version)
        return result

    def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        results: list[AppendResult] = self._do("append_many", writes)
        return results

    def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        events: list[RecordedEvent] = self._do("read_stream", stream_id, from_version, to_version)
        return events

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        page: LogPage = self._do("read_page", after, size, categories, types)
        return page

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self._do("save_snapshot", snapshot)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        self._do("save_checkpoint", name, checkpoint)

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        checkpoint: Checkpoint | None = self._do("load_checkpoint", name)
        return checkpoint

    def delete_checkpoint(self, name: str) -> None:
        self._do("delete_checkpoint", name)

    def save_projection_state(self, state: ProjectionState) -> None:
        self._do("save_projection_state", state)

    def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        states: list[ProjectionState] = self._do("projection_states", name)
        return states

    def delete_projection_state(self, name: str, version: int) -> None:
        self._do("delete_projection_state", name, version)

    def park_event(self, letter: DeadLetter) -> None:
        self._do("park_event", letter)

    def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        letters: list[DeadLetter] = self._do("dead_letters", projection)
        return letters

    def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        self._do("delete_dead_letter", projection, version, position)


class _AsyncHook:
    """A sync :class:`~chronik.store.AppendHook` as an asyncio one.

    The sync hook runs in a worker thread (the loop's default executor), with a
    :class:`BlockingTransaction` over the append's asyncio transaction: its calls go
    back to the loop, which is free because the append only awaits the thread.
    """

    def __init__(self, store: BlockingStore, hook: AppendHook) -> None:
        self._store = store
        self._hook = hook

    @property
    def name(self) -> str:
        return self._hook.name

    async def installed(self, tx: AsyncHookTransaction) -> None:
        await asyncio.to_thread(self._run, self._hook.installed, tx)

    async def appended(self, tx: AsyncHookTransaction, events: Sequence[RecordedEvent]) -> None:
        await asyncio.to_thread(self._run, self._hook.appended, tx, events)

    def _run(self, step: Callable[..., None], tx: AsyncHookTransaction, *args: Any) -> None:
        local = self._store._local
        local.writing = getattr(local, "writing", 0) + 1
        try:
            step(BlockingTransaction(self._store, tx), *args)
        finally:
            local.writing -= 1


class BlockingLogReader:
    """An asyncio store's :class:`~chronik.store.AsyncLogReader` as a sync
    :class:`~chronik.store.LogReader`; ``close`` may come from any thread."""

    def __init__(self, store: BlockingStore, reader: AsyncLogReader) -> None:
        self._store = store
        self.async_reader = reader
        self._closed = False

    def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        return self._store._call(self.async_reader.read_page(after, size, categories, types))

    def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        # Blocks this thread only; a close() from another runs on the loop meanwhile
        # and wakes the asyncio wait.
        return self._store._call(self.async_reader.wait_for_events(after, timeout))

    def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        return self._store._call(self.async_reader.count_events(after, categories, types))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._store._call(self.async_reader.close())
        except StoreClosedError:
            pass  # closing the store closed its readers


async def _take(pages: AsyncIterator[T], n: int) -> list[T]:
    page: list[T] = []
    async for item in pages:
        page.append(item)
        if len(page) == n:
            break
    return page
