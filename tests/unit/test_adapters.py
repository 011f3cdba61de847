"""Every face of the memory store is complete: the sync store with transactions, its
asyncio face (``AsyncStoreAdapter``) and the sync face over that (``BlockingStore``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Final

import pytest

import chronik
from chronik import NewEvent
from chronik.aio import AsyncStoreAdapter
from chronik.backend import BlockingStore
from chronik.errors import (
    ConfigurationError,
    InvalidInputError,
    StoreClosedError,
    WrongExpectedVersionError,
)
from chronik.events import (
    NO_STREAM,
    AppendResult,
    Checkpoint,
    DeadLetter,
    FailedEvent,
    ProjectionState,
    RecordedEvent,
    Snapshot,
    StreamInfo,
    StreamWrite,
)
from chronik.store import (
    AsyncHookTransaction,
    AsyncStore,
    AsyncStoreTransaction,
    AsyncTransactional,
    CheckpointStore,
    HookTransaction,
    ProjectionStateStore,
    Store,
    StoreTransaction,
    Subscribable,
    Transactional,
)
from chronik.stores.memory import MemoryEventStore, MemoryTransaction

PATIENCE: Final = 60.0  # only turns a deadlock into a failure


def _memory() -> MemoryEventStore:
    store = chronik.connect("memory://")
    assert isinstance(store, MemoryEventStore)
    return store


def _async_memory() -> AsyncStoreAdapter[MemoryEventStore]:
    store = chronik.connect_async("memory://")
    assert isinstance(store, AsyncStoreAdapter)
    return store


def _blocking() -> Store:
    store = BlockingStore(_async_memory())
    assert isinstance(store, Store)
    return store


def _events(n: int, start: int = 0) -> list[NewEvent]:
    return [NewEvent("Counted", {"n": i}) for i in range(start, start + n)]


def _run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(main(), PATIENCE)

    asyncio.run(bounded())


def _letter(event: RecordedEvent, projection: str = "totals") -> DeadLetter:
    return DeadLetter(projection, 1, FailedEvent.of(event, ValueError("bad"), 1))


# -- the memory store's transactions ------------------------------------------------------------


def test_the_memory_store_is_a_full_store() -> None:
    with _memory() as store:
        assert isinstance(store, Store)
        with store.transaction() as tx:
            assert isinstance(tx, StoreTransaction)


def test_a_memory_transaction_commits_everything_at_the_end() -> None:
    with _memory() as store:
        first = store.append("count-1", _events(1))
        seen_outside: list[int] = []
        with store.transaction() as tx:
            result = tx.append("count-1", _events(2, 1), expected_version=1)
            tx.append("count-2", _events(1), NO_STREAM)
            assert [e.data["n"] for e in tx.read_stream("count-1")] == [0, 1, 2]
            assert [e.version for e in tx.read_stream("count-1", 2, 2)] == [2]
            tx.save_checkpoint("reader", result.checkpoint)
            assert tx.load_checkpoint("reader") == result.checkpoint
            tx.save_snapshot(Snapshot("count-1", 3, "Count", 1, b"{}"))
            tx.save_projection_state(ProjectionState("totals", 1, "live"))
            tx.park_event(_letter(tx.read_stream("count-1")[0]))
            assert len(tx.dead_letters()) == 1
            assert [s.name for s in tx.projection_states()] == ["totals"]
            # Nothing is visible outside until the block ends (read on another thread,
            # as reads on this one would be too).
            reader = threading.Thread(
                target=lambda: seen_outside.append(store.stream_info("count-1").version)
            )
            reader.start()
            reader.join()
            assert store.load_checkpoint("reader") is None
            assert store.projection_states() == []
        assert seen_outside == [1]
        assert [e.data["n"] for e in store.read_stream("count-1")] == [0, 1, 2]
        assert store.stream_info("count-2").version == 1
        assert store.load_checkpoint("reader") == result.checkpoint
        snapshot = store.load_snapshot("count-1")
        assert snapshot is not None
        assert snapshot.recorded_at is not None
        assert [s.status for s in store.projection_states("totals")] == ["live"]
        assert [d.event.position for d in store.dead_letters("totals")] == [first.position]
        assert [e.position for e in store.read_all()] == [1, 2, 3, 4]


def test_a_memory_transaction_that_raises_writes_nothing() -> None:
    with _memory() as store:
        store.save_checkpoint("kept", Checkpoint("memory", (0,)))
        with pytest.raises(RuntimeError, match="no"), store.transaction() as tx:
            tx.append("count-1", _events(3))
            tx.delete_checkpoint("kept")
            tx.save_checkpoint("new", Checkpoint("memory", (1,)))
            tx.save_projection_state(ProjectionState("totals", 1, "live"))
            raise RuntimeError("no")
        assert store.read_stream("count-1") == []
        assert store.head() is None
        assert store.load_checkpoint("kept") == Checkpoint("memory", (0,))
        assert store.load_checkpoint("new") is None
        assert store.projection_states() == []
        with pytest.raises(InvalidInputError, match="ended"):
            tx.append("count-1", _events(1))


def test_a_failed_append_in_a_transaction_leaves_it_as_it_was() -> None:
    with _memory() as store:
        with store.transaction() as tx:
            tx.append("count-1", _events(1))
            with pytest.raises(WrongExpectedVersionError):
                tx.append_many(
                    [StreamWrite("count-2", _events(1)), StreamWrite("count-1", _events(1), NO_STREAM)]
                )
            assert tx.read_stream("count-2") == []
            tx.append("count-2", _events(1, 5))
        assert [e.position for e in store.read_all()] == [1, 2]
        assert store.read_stream("count-2")[0].data == {"n": 5}


def test_idempotent_resend_inside_and_across_transactions() -> None:
    with _memory() as store:
        batch = [NewEvent("Counted", {"n": i}, event_id=chronik.uuid7()) for i in range(2)]
        with store.transaction() as tx:
            first = tx.append("count-1", batch, NO_STREAM)
            assert tx.append("count-1", batch, NO_STREAM) == first
        with store.transaction() as tx:
            assert tx.append("count-1", batch, NO_STREAM) == first
        assert store.append("count-1", batch, NO_STREAM) == first
        assert len(store.read_stream("count-1")) == 2


def test_memory_transactions_run_no_statements() -> None:
    with (
        _memory() as store,
        store.transaction() as tx,
        pytest.raises(ConfigurationError, match="runs no statements.*CheckpointedTarget"),
    ):
        tx.execute("SELECT 1")


def test_writing_through_the_store_inside_its_own_transaction_fails_clearly() -> None:
    with _memory() as store, store.transaction() as tx:
        for write in (
            lambda: store.append("count-1", _events(1)),
            lambda: store.save_checkpoint("c", Checkpoint("memory", (1,))),
            lambda: store.add_append_hook(_SyncCounter()),
            store.transaction().__enter__,
        ):
            with pytest.raises(InvalidInputError, match="already open on this thread"):
                write()
        tx.append("count-1", _events(1))


def test_other_threads_wait_for_an_open_transaction() -> None:
    with _memory() as store:
        results: list[AppendResult] = []
        with store.transaction() as tx:
            tx.append("count-1", _events(1))
            writer = threading.Thread(target=lambda: results.append(store.append("count-1", _events(1, 1))))
            writer.start()
            time.sleep(0.05)
            assert results == []  # waiting for the write lock
        writer.join(PATIENCE)
        assert [r.version for r in results] == [2]


class _SyncCounter:
    """A sync append hook counting events into a dict, with its checkpoint in the store."""

    def __init__(self, name: str = "counter", *, fail_on: int | None = None) -> None:
        self.name = name
        self.fail_on = fail_on
        self.seen: list[int] = []

    def installed(self, tx: HookTransaction) -> None:
        page = tx.read_page(tx.load_checkpoint(self.name), 1000, None, None)
        self._count(tx, page.events)

    def appended(self, tx: HookTransaction, events: Sequence[RecordedEvent]) -> None:
        self._count(tx, events)

    def _count(self, tx: HookTransaction, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if event.data["n"] == self.fail_on:
                raise ValueError(f"cannot count {self.fail_on}")
        self.seen.extend(e.data["n"] for e in events)
        if events:
            tx.save_checkpoint(self.name, events[-1].checkpoint)


def test_memory_append_hooks_run_in_the_transaction_and_fail_it() -> None:
    with _memory() as store:
        store.append("count-1", _events(2))
        hook = _SyncCounter(fail_on=99)
        store.add_append_hook(hook)
        assert hook.seen == [0, 1]
        with store.transaction() as tx:
            result = tx.append("count-1", _events(1, 2))
            assert tx.load_checkpoint("counter") == result.checkpoint
            with pytest.raises(ValueError, match="99"):
                tx.append("count-2", _events(1, 99))
        assert store.load_checkpoint("counter") == result.checkpoint
        with pytest.raises(ValueError, match="99"):
            store.append("count-1", [*_events(1, 3), *_events(1, 99)])
        assert store.stream_info("count-1") == StreamInfo("count-1", 3)
        assert store.stream_info("count-2") == StreamInfo("count-2", 0)
        assert store.load_checkpoint("counter") == result.checkpoint


# -- the asyncio face of the memory store -------------------------------------------------------


class _AsyncCounter:
    """An asyncio append hook; checks that it runs on the event loop's thread."""

    def __init__(self, name: str = "counter", *, fail_on: int | None = None) -> None:
        self.name = name
        self.fail_on = fail_on
        self.seen: list[int] = []
        self.threads: set[int] = set()

    async def installed(self, tx: AsyncHookTransaction) -> None:
        page = await tx.read_page(await tx.load_checkpoint(self.name), 1000, None, None)
        await self.appended(tx, page.events)

    async def appended(self, tx: AsyncHookTransaction, events: Sequence[RecordedEvent]) -> None:
        self.threads.add(threading.get_ident())
        await asyncio.sleep(0)  # the loop is free while the append waits for the hook
        if any(e.data["n"] == self.fail_on for e in events):
            raise ValueError(f"cannot count {self.fail_on}")
        self.seen.extend(e.data["n"] for e in events)
        if events:
            await tx.save_checkpoint(self.name, events[-1].checkpoint)


def test_the_asyncio_memory_face_is_a_full_asyncio_store() -> None:
    async def main() -> None:
        async with _async_memory() as store:
            assert isinstance(store, AsyncStore)
            assert not isinstance(store, Store)
            async with store.transaction() as tx:
                assert isinstance(tx, AsyncStoreTransaction)

    _run(main)


def test_asyncio_transactions_on_memory_commit_or_roll_back() -> None:
    async def main() -> None:
        async with _async_memory() as store:
            async with store.transaction() as tx:
                result = await tx.append("count-1", _events(2))
                await tx.save_checkpoint("reader", result.checkpoint)
                await tx.save_snapshot(Snapshot("count-1", 2, "Count", 1, b"{}"))
                assert len(await tx.read_stream("count-1")) == 2
                with pytest.raises(ConfigurationError, match="runs no statements"):
                    await tx.execute("SELECT 1")
                with pytest.raises(ConfigurationError, match="runs no statements"):
                    await tx.fetchall("SELECT 1")
            assert await store.load_checkpoint("reader") == result.checkpoint
            assert await store.load_snapshot("count-1") is not None
            with pytest.raises(KeyError):
                async with store.transaction() as tx:
                    await tx.append("count-1", _events(1, 2))
                    raise KeyError("no")
            assert len(await store.read_stream("count-1")) == 2
            async with store.transaction() as tx:
                with pytest.raises(InvalidInputError, match="already open"):
                    await store.append("count-1", _events(1))

    _run(main)


def test_asyncio_hooks_on_memory_run_on_the_loop_inside_the_append() -> None:
    async def main() -> None:
        async with _async_memory() as store:
            await store.append("count-1", _events(1))
            hook = _AsyncCounter(fail_on=99)
            await store.add_append_hook(hook)
            result = await store.append("count-1", _events(1, 1))
            assert hook.seen == [0, 1]
            assert hook.threads == {threading.get_ident()}
            assert await store.load_checkpoint("counter") == result.checkpoint
            with pytest.raises(ValueError, match="99"):
                await store.append("count-1", _events(1, 99))
            assert (await store.stream_info("count-1")).version == 2
            async with store.transaction() as tx:
                await tx.append("count-2", _events(1, 2))
            assert hook.seen == [0, 1, 2]
            store.remove_append_hook("counter")
            await store.append("count-1", _events(1, 99))
            assert hook.seen == [0, 1, 2]

    _run(main)


def test_tasks_append_to_memory_while_a_transaction_is_open() -> None:
    async def main() -> None:
        async with _async_memory() as store:
            await store.add_append_hook(_AsyncCounter())
            opened = asyncio.Event()

            async def transaction() -> None:
                async with store.transaction() as tx:
                    await tx.append("tx-1", _events(3))
                    opened.set()
                    await asyncio.sleep(0.05)
                    assert (await store.stream_info("tx-1")).version == 0  # reads see commits only
                    await tx.append("tx-1", _events(2, 3))

            async def appender(i: int) -> None:
                await opened.wait()
                for k in range(5):
                    await store.append(f"task-{i}", _events(1, k))

            await asyncio.gather(transaction(), *(appender(i) for i in range(8)))
            assert [e.data["n"] for e in await store.read_stream("tx-1")] == [0, 1, 2, 3, 4]
            assert len([e async for e in store.read_all()]) == 45
            assert await store.load_checkpoint("counter") == await store.head()

    _run(main)


def test_closing_the_asyncio_face_does_not_wait_for_an_open_transaction() -> None:
    async def main() -> None:
        store = _async_memory()
        opened, closed = asyncio.Event(), asyncio.Event()

        async def transaction() -> None:
            async with store.transaction() as tx:
                await tx.append("tx-1", _events(1))
                opened.set()
                await closed.wait()

        holder = asyncio.create_task(transaction())
        await opened.wait()
        waiter = asyncio.create_task(store.append("other-1", _events(1)))
        await asyncio.sleep(0.05)  # the append waits for the write lock
        await store.close()
        closed.set()
        for task in (holder, waiter):
            with pytest.raises(StoreClosedError):
                await task

    _run(main)


def test_projection_state_through_the_asyncio_face() -> None:
    async def main() -> None:
        async with _async_memory() as store:
            event = (await store.read_stream("x-1")) or None
            assert event is None
            appended = await store.append("x-1", _events(1))
            [recorded] = await store.read_stream("x-1")
            await store.save_projection_state(ProjectionState("totals", 1, "building"))
            await store.park_event(_letter(recorded))
            await store.park_event(_letter(recorded))  # the same event again: nothing changes
            assert [d.event.position for d in await store.dead_letters()] == [appended.position]
            assert [s.status for s in await store.projection_states()] == ["building"]
            await store.delete_projection_state("totals", 1)
            assert await store.projection_states() == []
            assert await store.dead_letters("totals") == []

    _run(main)


# -- the sync face over an asyncio store ---------------------------------------------------------


def test_blocking_store_over_memory_is_a_full_store() -> None:
    with _blocking() as store:
        assert isinstance(store, Store)
        with store.transaction() as tx:
            assert isinstance(tx, StoreTransaction)
            tx.append("count-1", _events(1))
            tx.save_checkpoint("reader", Checkpoint("memory", (1,)))
            with pytest.raises(InvalidInputError, match="already open on this thread"):
                store.append("count-1", _events(1))
        with pytest.raises(KeyError), store.transaction() as tx:
            tx.append("count-1", _events(1, 1))
            raise KeyError("no")
        assert [e.data["n"] for e in store.read_stream("count-1")] == [0]
        assert store.load_checkpoint("reader") == Checkpoint("memory", (1,))
        store.save_projection_state(ProjectionState("totals", 1, "live"))
        assert [s.name for s in store.projection_states()] == ["totals"]
        store.delete_checkpoint("reader")
        assert store.load_checkpoint("reader") is None


def test_sync_hooks_through_the_blocking_store() -> None:
    with _blocking() as store:
        store.append("count-1", _events(2))
        hook = _SyncCounter(fail_on=99)
        store.add_append_hook(hook)
        assert hook.seen == [0, 1]
        result = store.append("count-1", _events(1, 2))
        assert hook.seen == [0, 1, 2]
        assert store.load_checkpoint("counter") == result.checkpoint
        with pytest.raises(ValueError, match="99"):
            store.append("count-1", _events(1, 99))
        assert store.stream_info("count-1").version == 3

        class Rude(_SyncCounter):
            def appended(self, tx: HookTransaction, events: Sequence[RecordedEvent]) -> None:
                store.append("other-1", _events(1))

        store.remove_append_hook("counter")
        store.add_append_hook(Rude("rude"))
        with pytest.raises(InvalidInputError, match="already open"):
            store.append("count-1", _events(1, 3))
        store.remove_append_hook("rude")
        assert store.stream_info("other-1").version == 0


def test_subscriptions_through_the_blocking_store() -> None:
    with _blocking() as store:
        store.append("count-1", _events(1200))
        assert len(list(store.read_all())) == 1200  # paged
        partial = store.read_all()
        assert next(partial).data == {"n": 0}
        del partial  # abandoned half-way: its pages are closed
        with store.subscribe(batch_size=500) as subscription:
            got: list[int] = []
            while len(got) < 1200:
                got.extend(e.data["n"] for e in subscription.next_batch(5.0))
            assert got == list(range(1200))
            threading.Timer(0.05, lambda: store.append("count-1", _events(1, 1200))).start()
            [live] = subscription.next_batch(PATIENCE)
            assert live.data == {"n": 1200}
            # Closing from another thread wakes a wait in progress.
            threading.Timer(0.05, subscription.close).start()
            started = time.monotonic()
            assert subscription.next_batch(PATIENCE) == []
            assert time.monotonic() - started < PATIENCE / 2


def test_closing_the_blocking_store_ends_a_waiting_subscription_and_later_calls() -> None:
    store = _blocking()
    subscription = store.subscribe()
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            subscription.next_batch(PATIENCE)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.05)
    store.close()
    thread.join(PATIENCE)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [StoreClosedError]
    with pytest.raises(StoreClosedError):
        store.append("count-1", _events(1))
    subscription.close()
    store.close()  # twice is fine


class _Minimal:
    """An asyncio store with the contract only, no optional powers."""

    is_async: Final = True

    def __init__(self) -> None:
        self._store = _async_memory()
        self.codec = self._store.codec

    async def append(self, stream_id: str, events: Sequence[object], expected_version: Any = None) -> Any:
        return await self._store.append(stream_id, events)

    async def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        return await self._store.append_many(writes)

    async def read_stream(self, stream_id: str, *args: Any, **kwargs: Any) -> list[RecordedEvent]:
        return await self._store.read_stream(stream_id, *args, **kwargs)

    def read_all(self, *args: Any, **kwargs: Any) -> AsyncIterator[RecordedEvent]:
        return self._store.read_all(*args, **kwargs)

    async def stream_info(self, stream_id: str) -> StreamInfo:
        return await self._store.stream_info(stream_id)

    async def list_streams(self, **kwargs: Any) -> list[StreamInfo]:
        return await self._store.list_streams(**kwargs)

    async def head(self) -> Checkpoint | None:
        return await self._store.head()

    async def close(self) -> None:
        await self._store.close()

    async def __aenter__(self) -> _Minimal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def test_blocking_store_shows_only_the_powers_the_asyncio_store_has() -> None:
    minimal = _Minimal()
    assert not isinstance(minimal, AsyncTransactional)
    with BlockingStore(minimal) as store:
        missing: Iterable[type] = (Transactional, Subscribable, CheckpointStore, ProjectionStateStore)
        assert not any(isinstance(store, power) for power in missing)
        assert not hasattr(store, "transaction")
        assert isinstance(store, BlockingStore)
        store.append("count-1", _events(1))
        assert store.stream_info("count-1").version == 1
    with BlockingStore(_async_memory()) as full, BlockingStore(_async_memory()) as other:
        assert type(full) is not BlockingStore
        assert type(full) is type(other), "a face is made once for each set of powers"


def test_a_subclass_of_blocking_store_keeps_its_own_methods_first() -> None:
    class Sub(BlockingStore):
        def head(self) -> Checkpoint | None:
            return Checkpoint("memory", (42,))

        def extra(self) -> str:
            return "extra"

    with Sub(_async_memory()) as store:
        assert isinstance(store, Sub)
        assert isinstance(store, Store)
        assert store.head() == Checkpoint("memory", (42,))
        assert store.extra() == "extra"
        assert type(store).__name__ == "Sub"


def test_memory_transaction_type_is_exported() -> None:
    with _memory() as store, store.transaction() as tx:
        assert isinstance(tx, MemoryTransaction)
