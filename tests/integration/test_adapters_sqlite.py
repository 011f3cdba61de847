"""SQLite's asyncio face (``AsyncStoreAdapter``) as a full ``AsyncStore``: transactions
with your own SQL, append hooks, projection state, and tasks writing while a
transaction is open."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import chronik
from chronik import NewEvent
from chronik.aio import AsyncStoreAdapter, AsyncTransactionAdapter
from chronik.backend import BlockingStore
from chronik.errors import InvalidInputError
from chronik.events import Checkpoint, ProjectionState, RecordedEvent
from chronik.store import AsyncHookTransaction, AsyncStore, Store, StoreTransaction

PATIENCE = 60.0  # only turns a deadlock into a failure


def _run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(main(), PATIENCE)

    asyncio.run(bounded())


def _open(path: Path) -> AsyncStoreAdapter[Any]:
    store = chronik.connect_async(f"sqlite:///{path}")
    assert isinstance(store, AsyncStoreAdapter)
    return store


def _events(n: int, start: int = 0) -> list[NewEvent]:
    return [NewEvent("Counted", {"n": i}) for i in range(start, start + n)]


async def _rows(store: AsyncStoreAdapter[Any]) -> list[Any]:
    async with store.transaction() as tx:
        await tx.execute("CREATE TABLE IF NOT EXISTS seen (n INTEGER)")
        return await tx.fetchall("SELECT n FROM seen ORDER BY n")


def test_the_asyncio_face_is_a_full_store(tmp_path: Path) -> None:
    async def main() -> None:
        async with _open(tmp_path / "e.db") as store:
            assert isinstance(store, AsyncStore)
            assert not isinstance(store, Store)

    _run(main)


def test_a_transaction_commits_events_checkpoints_and_your_rows(tmp_path: Path) -> None:
    async def main() -> None:
        async with _open(tmp_path / "e.db") as store:
            async with store.transaction() as tx:
                assert isinstance(tx, AsyncTransactionAdapter)
                await tx.execute("CREATE TABLE seen (n INTEGER)")
                result = await tx.append("count-1", _events(2))
                assert [e.version for e in await tx.read_stream("count-1")] == [1, 2]
                cursor = await tx.execute("INSERT INTO seen (n) VALUES (?)", (7,))
                assert cursor.rowcount == 1
                await tx.executemany("INSERT INTO seen (n) VALUES (?)", [(8,), (9,)])
                await tx.save_checkpoint("reader", result.checkpoint)
                assert await tx.fetchone("SELECT count(*) FROM seen") == (3,)
            assert len(await store.read_stream("count-1")) == 2
            assert await store.load_checkpoint("reader") == result.checkpoint
            assert await _rows(store) == [(7,), (8,), (9,)]

    _run(main)


def test_a_transaction_that_raises_writes_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with _open(tmp_path / "e.db") as store:
            await _rows(store)
            with pytest.raises(RuntimeError, match="changed my mind"):
                async with store.transaction() as tx:
                    await tx.append("count-1", _events(1))
                    await tx.execute("INSERT INTO seen (n) VALUES (1)")
                    await tx.save_checkpoint("reader", Checkpoint("sqlite", (1,)))
                    raise RuntimeError("changed my mind")
            assert await store.read_stream("count-1") == []
            assert await store.load_checkpoint("reader") is None
            assert await _rows(store) == []
            with pytest.raises(InvalidInputError, match="ended"):
                await tx.append("count-1", _events(1))

    _run(main)


def test_a_cancelled_transaction_rolls_back_and_frees_the_store(tmp_path: Path) -> None:
    async def main() -> None:
        async with _open(tmp_path / "e.db") as store:
            inside = asyncio.Event()

            async def writer() -> None:
                async with store.transaction() as tx:
                    await tx.append("count-1", _events(1))
                    inside.set()
                    await asyncio.sleep(PATIENCE)

            task = asyncio.create_task(writer())
            await inside.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await store.read_stream("count-1") == []
            await store.append("count-1", _events(1))  # the write lock was released
            assert len(await store.read_stream("count-1")) == 1

    _run(main)


def test_writing_through_the_store_inside_its_own_transaction_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with _open(tmp_path / "e.db") as store:
            async with store.transaction() as tx:
                with pytest.raises(InvalidInputError, match="already open"):
                    await store.append("count-1", _events(1))
                with pytest.raises(InvalidInputError, match="already open"):
                    async with store.transaction():
                        pass
                await tx.append("count-1", _events(1))
                # Reads through the store run elsewhere: they see what is committed.
                assert await store.read_stream("count-1") == []
            assert len(await store.read_stream("count-1")) == 1

    _run(main)


def test_tasks_append_while_a_transaction_is_open(tmp_path: Path) -> None:
    async def main() -> None:
        async with _open(tmp_path / "e.db") as store:
            opened = asyncio.Event()

            async def transaction() -> None:
                async with store.transaction() as tx:
                    await tx.append("tx-1", _events(3))
                    opened.set()
                    await asyncio.sleep(0.1)  # the others queue for the write lock meanwhile
                    # A read through the store does not queue behind their appends.
                    assert await store.stream_info("tx-1") is not None
                    await tx.append("tx-1", _events(2, 3))

            async def appender(i: int) -> None:
                await opened.wait()
                for k in range(5):
                    await store.append(f"task-{i}", _events(1, k))

            await asyncio.gather(transaction(), *(appender(i) for i in range(8)))
            assert [e.data["n"] for e in await store.read_stream("tx-1")] == [0, 1, 2, 3, 4]
            for i in range(8):
                assert len(await store.read_stream(f"task-{i}")) == 5
            assert len([e async for e in store.read_all()]) == 45

    _run(main)


def test_concurrent_transactions_all_commit_on_reused_threads(tmp_path: Path) -> None:
    async def main() -> None:
        async with _open(tmp_path / "e.db") as store:

            async def one(i: int) -> None:
                async with store.transaction() as tx:
                    await tx.append(f"t-{i}", _events(1))
                    await asyncio.sleep(0)

            await asyncio.gather(*(one(i) for i in range(20)))
            threads = {t.name for t in threading.enumerate() if "chronik-aio-transaction" in t.name}
            for round_ in range(5):
                await one(100 + round_)
            later = {t.name for t in threading.enumerate() if "chronik-aio-transaction" in t.name}
            assert later <= threads, "sequential transactions started new threads"
            assert len([e async for e in store.read_all()]) == 25

    _run(main)


class _Counter:
    """An asyncio append hook keeping a count of events in a table of the same file."""

    def __init__(self, name: str = "counter", *, fail_on: int | None = None) -> None:
        self.name = name
        self.fail_on = fail_on
        self.loop_threads: set[int] = set()

    async def installed(self, tx: AsyncHookTransaction) -> None:
        assert isinstance(tx, AsyncTransactionAdapter)
        await tx.execute("CREATE TABLE IF NOT EXISTS seen (n INTEGER)")
        page = await tx.read_page(None, 1000, None, None)
        await self._count(tx, page.events)

    async def appended(self, tx: AsyncHookTransaction, events: Sequence[RecordedEvent]) -> None:
        await self._count(tx, events)

    async def _count(self, tx: AsyncHookTransaction, events: Sequence[RecordedEvent]) -> None:
        assert isinstance(tx, AsyncTransactionAdapter)
        self.loop_threads.add(threading.get_ident())
        for event in events:
            if event.data["n"] == self.fail_on:
                raise ValueError(f"cannot count {self.fail_on}")
            await tx.execute("INSERT INTO seen (n) VALUES (?)", (event.data["n"],))
        if events:
            await tx.save_checkpoint(self.name, events[-1].checkpoint)


def test_an_asyncio_append_hook_runs_in_the_append_transaction(tmp_path: Path) -> None:
    async def main() -> None:
        async with _open(tmp_path / "e.db") as store:
            await store.append("count-1", _events(2))
            hook = _Counter(fail_on=99)
            await store.add_append_hook(hook)  # catches up on the two stored events
            assert await _rows(store) == [(0,), (1,)]
            result = await store.append("count-1", _events(2, 2))
            assert await _rows(store) == [(0,), (1,), (2,), (3,)]
            assert await store.load_checkpoint("counter") == result.checkpoint
            assert hook.loop_threads == {threading.get_ident()}, "the hook ran off the event loop"
            # A hook that raises fails the append, and nothing of it is written.
            with pytest.raises(ValueError, match="cannot count 99"):
                await store.append("count-1", [*_events(1, 4), *_events(1, 99)])
            assert len(await store.read_stream("count-1")) == 4
            assert await _rows(store) == [(0,), (1,), (2,), (3,)]
            # Appends in a transaction run it too, and tasks append meanwhile.
            async with store.transaction() as tx:
                await tx.append("count-2", _events(1, 10))
            await asyncio.gather(*(store.append(f"many-{i}", _events(1, 20 + i)) for i in range(5)))
            assert len(await _rows(store)) == 10
            store.remove_append_hook("counter")
            await store.append("count-1", _events(1, 99))
            assert len(await _rows(store)) == 10

    _run(main)


def test_a_hook_may_not_write_through_the_store(tmp_path: Path) -> None:
    class Recursive(_Counter):
        def __init__(self, store: AsyncStoreAdapter[Any]) -> None:
            super().__init__("recursive")
            self.store = store

        async def appended(self, tx: AsyncHookTransaction, events: Sequence[RecordedEvent]) -> None:
            await self.store.append("other-1", _events(1))

    async def main() -> None:
        async with _open(tmp_path / "e.db") as store:
            await store.add_append_hook(Recursive(store))
            with pytest.raises(InvalidInputError, match="already open"):
                await store.append("count-1", _events(1))
            assert await store.read_stream("count-1") == []

    _run(main)


def test_projection_state_through_the_asyncio_face(tmp_path: Path) -> None:
    async def main() -> None:
        async with _open(tmp_path / "e.db") as store:
            state = ProjectionState("totals", 1, "live")
            await store.save_projection_state(state)
            [saved] = await store.projection_states("totals")
            assert (saved.name, saved.version, saved.status) == ("totals", 1, "live")
            async with store.transaction() as tx:
                assert len(await tx.projection_states()) == 1
                await tx.delete_projection_state("totals", 1)
            assert await store.projection_states() == []
            assert await store.dead_letters() == []
            await store.save_checkpoint("c", Checkpoint("sqlite", (1,)))
            await store.delete_checkpoint("c")
            assert await store.load_checkpoint("c") is None

    _run(main)


def test_the_sync_face_over_the_asyncio_one(tmp_path: Path) -> None:
    """BlockingStore over SQLite's asyncio face: transactions, sync hooks, subscriptions."""
    store = BlockingStore(_open(tmp_path / "e.db"))
    try:
        assert isinstance(store, Store)
        with store.transaction() as tx:
            assert isinstance(tx, StoreTransaction)
            tx.execute("CREATE TABLE seen (n INTEGER)")
            tx.append("count-1", _events(1))
            with pytest.raises(InvalidInputError, match="already open"):
                store.append("count-1", _events(1))
        with pytest.raises(KeyError), store.transaction() as tx:
            tx.append("count-1", _events(1, 1))
            raise KeyError("no")
        assert len(store.read_stream("count-1")) == 1

        class SyncCounter:
            name = "sync-counter"

            def installed(self, tx: Any) -> None:
                tx.execute("DELETE FROM seen")

            def appended(self, tx: Any, events: Sequence[RecordedEvent]) -> None:
                for event in events:
                    if event.data["n"] < 0:
                        raise ValueError("negative")
                    tx.execute("INSERT INTO seen (n) VALUES (?)", (event.data["n"],))

        store.add_append_hook(SyncCounter())
        store.append("count-1", _events(2, 5))
        with pytest.raises(ValueError, match="negative"):
            store.append("count-1", [NewEvent("Counted", {"n": -1})])
        with store.transaction() as tx:
            assert tx.execute("SELECT n FROM seen ORDER BY n").fetchall() == [(5,), (6,)]
        store.remove_append_hook("sync-counter")
        with store.subscribe() as subscription:
            assert [e.data["n"] for e in subscription.next_batch(5.0)] == [0, 5, 6]
    finally:
        store.close()
