"""The asyncio projection runner, process managers and consumer groups on asyncio stores.

On the memory store (a checkpointed target: the read model is a dict; and its own
transactions, the default target) and on SQLite with a transactional target; the
PostgreSQL twins are in ``tests/backends/test_postgres_async_projections.py``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import chronik
from chronik import Checkpoint, NewEvent, RecordedEvent
from chronik.consumer_groups import ConsumerGroup
from chronik.process_managers import (
    AsyncProcessContext,
    ProcessContext,
    ProcessManager,
    process_manager_runner,
)
from chronik.projections import (
    AsyncCheckpointedTarget,
    AsyncProjectionRunner,
    AsyncTransactionalTarget,
    CheckpointedTarget,
    FailurePolicy,
    Projection,
    ProjectionFailedError,
    ProjectionRunner,
    projection_lag_async,
)
from chronik.store import AsyncEventStore, AsyncStoreTransaction, AsyncTransactional

Model = dict[str, Any]
FAST = FailurePolicy(retries=2, backoff=0.0)


async def _add(store: AsyncEventStore, stream: str, *amounts: int) -> None:
    await store.append(stream, [NewEvent("Added", {"amount": a}) for a in amounts])


def _totals() -> Projection[Model]:
    """Total per stream, idempotent by position; the handler is a coroutine function."""

    async def added(event: RecordedEvent, model: Model) -> None:
        await asyncio.sleep(0)
        last, total = model.get(event.stream_id, (0, 0))
        if event.position > last:
            model[event.stream_id] = (event.position, total + event.data["amount"])

    def setup(model: Model) -> None:  # a plain function works too
        model["setups"] = model.get("setups", 0) + 1

    async def teardown(model: Model) -> None:
        for key in [k for k in model if k != "setups"]:
            del model[key]

    return Projection("totals", {"Added": added}, setup=setup, teardown=teardown)


def _view(model: Model) -> dict[str, int]:
    return {k: v[1] for k, v in model.items() if k != "setups"}


def test_catch_up_follow_live_lag_and_rebuild_on_memory() -> None:
    async def main() -> None:
        store = chronik.connect_async("memory://")
        await _add(store, "acc-1", 5, 7)
        await _add(store, "acc-2", 1)
        model: Model = {}
        runner = AsyncProjectionRunner(store, _totals(), AsyncCheckpointedTarget(model, store), batch_size=2)
        assert await runner.run_until_caught_up() == 3
        assert _view(model) == {"acc-1": 12, "acc-2": 1}
        assert (await runner.lag()).events == 0
        await _add(store, "acc-2", 10)
        lag = await projection_lag_async(store, _totals(), AsyncCheckpointedTarget(model, store))
        assert (lag.events, lag.head) == (1, await store.head())

        # Live, as a task of this loop.
        assert runner.run_in_background() is runner
        with pytest.raises(chronik.InvalidInputError, match="already running"):
            runner.run_in_background()
        try:
            for i in range(20):
                await _add(store, f"acc-{i % 3}", i)
            assert await runner.wait_for(await store.head(), timeout=30)
        finally:
            await runner.stop(timeout=30)
        assert runner.error is None
        assert sum(_view(model).values()) == 13 + 10 + sum(range(20))
        assert await store.load_checkpoint("projection:totals:v1") == await store.head()

        # Rebuild: teardown (awaited), forget the checkpoint, run again from the start.
        handled = await runner.rebuild()
        assert handled == 24
        assert sum(_view(model).values()) == 13 + 10 + sum(range(20))
        assert model["setups"] == 2
        await store.close()

    asyncio.run(main())


def test_a_transient_failure_is_retried_then_stops_on_the_event() -> None:
    async def main() -> None:
        store = chronik.connect_async("memory://")
        await _add(store, "acc-1", 1)
        await _add(store, "acc-bad", 13)
        calls: list[int] = []

        async def added(event: RecordedEvent, model: Model) -> None:
            calls.append(event.position)
            if event.data["amount"] == 13:
                raise ConnectionError("the read model's server is away")
            model[event.stream_id] = event.data["amount"]

        model: Model = {}
        projection = Projection("fragile", {"Added": added})
        runner = AsyncProjectionRunner(store, projection, AsyncCheckpointedTarget(model, store), policy=FAST)
        with pytest.raises(ProjectionFailedError) as caught:
            await runner.run_until_caught_up()
        assert (caught.value.stream_id, caught.value.attempts) == ("acc-bad", 3)
        assert calls.count(2) == 1 + 2  # in the batch, then alone after each of 2 waits
        assert await store.load_checkpoint(projection.checkpoint_name) == Checkpoint("memory", (1,))
        assert model == {"acc-1": 1}

        # In the background the failure is kept in runner.error, and wait_for gives up.
        runner.run_in_background()
        assert not await runner.wait_for(await store.head(), timeout=30)
        assert isinstance(runner.error, ProjectionFailedError)
        await runner.stop()
        await store.close()

    asyncio.run(main())


def test_stop_interrupts_a_backoff() -> None:
    async def main() -> None:
        store = chronik.connect_async("memory://")
        await _add(store, "acc-1", 1)

        async def broken(event: RecordedEvent, model: Model) -> None:
            raise ConnectionError("down")  # transient: retried after a backoff

        policy = FailurePolicy(retries=5, backoff=30.0)
        runner = AsyncProjectionRunner(
            store, Projection("broken", {"Added": broken}), AsyncCheckpointedTarget({}, store), policy=policy
        )
        runner.run_in_background()
        await asyncio.sleep(0.2)
        started = asyncio.get_running_loop().time()
        await runner.stop(timeout=10)
        assert asyncio.get_running_loop().time() - started < 5
        assert runner.error is None
        await store.close()

    asyncio.run(main())


def test_faces_are_refused_clearly() -> None:
    async def handler(event: RecordedEvent, model: Model) -> None:
        pass

    projection = Projection("coro", {"Added": handler})
    sync = chronik.connect("memory://")
    sync.append("acc-1", [NewEvent("Added", {"amount": 1})])
    runner = ProjectionRunner(sync, projection, CheckpointedTarget({}, sync))
    refused = r"Projection\('coro'.*'Added'.*AsyncProjectionRunner"
    with pytest.raises(chronik.ConfigurationError, match=refused):
        runner.run_until_caught_up()
    with pytest.raises(chronik.ConfigurationError, match="sync store: use ProjectionRunner"):
        AsyncProjectionRunner(sync, projection)  # type: ignore[arg-type]
    sync.close()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_process_manager_on_an_asyncio_store(backend: str, tmp_path: Path) -> None:
    # In the store's transactions: the failed try rolls back (a store without them
    # would re-send the same event ids, written once).
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'events.db'}"

    async def main() -> None:
        store = chronik.connect_async(url)
        await store.append("signup-1", [NewEvent("SignedUp", {"name": "ada"})])
        attempts: list[int] = []

        async def welcome(event: RecordedEvent, ctx: AsyncProcessContext) -> None:
            await ctx.append("mail-1", [NewEvent("WelcomeMailQueued", {"to": event.data["name"]})])
            assert [e.type for e in await ctx.read_stream("mail-1")] == ["WelcomeMailQueued"]
            attempts.append(1)
            if len(attempts) == 1:
                raise ConnectionError("the mailer hiccuped")

        manager = ProcessManager("welcome", {"SignedUp": welcome})
        runner = process_manager_runner(store, manager, policy=FAST)
        assert isinstance(runner, AsyncProjectionRunner)
        await runner.run_until_caught_up()
        assert len(attempts) == 2
        # Rolled back, or re-sent with the same event id: written once.
        mail = await store.read_stream("mail-1")
        assert [e.type for e in mail] == ["WelcomeMailQueued"]
        trigger = (await store.read_stream("signup-1"))[0]
        assert mail[0].metadata == {
            "correlation_id": str(trigger.event_id),
            "causation_id": str(trigger.event_id),
        }
        await store.close()

    asyncio.run(main())


def test_process_contexts_stamp_the_same_ids_on_both_faces() -> None:
    sync = chronik.connect("memory://")
    sync.append("signup-1", [NewEvent("SignedUp", {"name": "ada"})])
    trigger = sync.read_stream("signup-1")[0]

    def reacted(ctx: ProcessContext | AsyncProcessContext) -> NewEvent:
        return ctx._stamp("mail-1", NewEvent("Queued", {}))

    one = reacted(ProcessContext("m", trigger, sync, sync.codec))
    two = reacted(AsyncProcessContext("m", trigger, chronik.connect_async("memory://"), sync.codec))
    assert (one.event_id, one.metadata) == (two.event_id, two.metadata)
    sync.close()


def test_consumer_group_members_on_an_asyncio_store() -> None:
    async def main() -> None:
        store = chronik.connect_async("memory://")
        for i in range(30):
            await _add(store, f"acc-{i}", i)
        group = ConsumerGroup("billing", 3, types=("Added",))
        seen: dict[int, list[str]] = {}
        for member in group.members:
            subscription = await member.subscribe(store)
            batch = await subscription.next_batch(0)
            seen[member.partition.index] = [e.stream_id for e in batch]
            await member.save_checkpoint(store, subscription.checkpoint)
            await subscription.close()
            assert await member.load_checkpoint(store) == subscription.checkpoint
        streams = [s for got in seen.values() for s in got]
        assert sorted(streams) == sorted(f"acc-{i}" for i in range(30))
        assert all(group.member_of(s) == i for i, got in seen.items() for s in got)

        models: list[Model] = [{}, {}, {}]
        runners = [
            m.runner(store, _totals(), AsyncCheckpointedTarget(models[m.partition.index], store))
            for m in group.members
        ]
        assert all(isinstance(r, AsyncProjectionRunner) for r in runners)
        await asyncio.gather(*(r.run_until_caught_up() for r in runners))
        assert sum(sum(_view(m).values()) for m in models) == sum(range(30))
        await store.close()

    asyncio.run(main())


def test_transactional_target_on_asyncio_sqlite(tmp_path: Path) -> None:
    async def main() -> None:
        store = chronik.connect_async(f"sqlite:///{tmp_path / 'events.db'}")
        assert isinstance(store, AsyncTransactional)

        async def setup(tx: AsyncStoreTransaction) -> None:
            await tx.execute("CREATE TABLE totals (stream_id TEXT PRIMARY KEY, total INTEGER)")

        async def added(event: RecordedEvent, tx: AsyncStoreTransaction) -> None:
            await tx.execute(
                "INSERT INTO totals VALUES (?, ?) ON CONFLICT (stream_id) "
                "DO UPDATE SET total = totals.total + excluded.total",
                (event.stream_id, event.data["amount"]),
            )

        projection = Projection("sql_totals", {"Added": added}, setup=setup)
        await _add(store, "acc-1", 1, 2)
        await _add(store, "acc-2", 3)
        runner = AsyncProjectionRunner(store, projection)
        assert isinstance(runner.target, AsyncTransactionalTarget)
        assert await runner.run_until_caught_up() == 3
        state = await runner.state()
        assert state is not None and (state.status, state.active) == ("live", True)
        await store.close()

    asyncio.run(main())
    db = sqlite3.connect(tmp_path / "events.db")
    try:
        rows = db.execute("SELECT stream_id, total FROM totals ORDER BY stream_id").fetchall()
    finally:
        db.close()
    assert rows == [("acc-1", 3), ("acc-2", 3)]


def test_default_target_and_dead_letters_on_the_asyncio_memory_store() -> None:
    async def main() -> None:
        store = chronik.connect_async("memory://")
        await _add(store, "acc-1", 1)
        await _add(store, "acc-bad", 13)
        await _add(store, "acc-2", 2)
        seen: list[str] = []

        async def added(event: RecordedEvent, tx: AsyncStoreTransaction) -> None:
            if event.data["amount"] == 13:
                raise KeyError("no such account")
            seen.append(event.stream_id)

        policy = FailurePolicy(retries=1, backoff=0.0, on_failure="park")
        runner = AsyncProjectionRunner(store, Projection("parking", {"Added": added}), policy=policy)
        assert isinstance(runner.target, AsyncTransactionalTarget)
        await runner.run_until_caught_up()
        assert runner.parked == 1
        [letter] = await store.dead_letters("parking")
        assert (letter.event.stream_id, letter.event.attempts) == ("acc-bad", 1)  # a bug: not retried
        assert runner.checkpoint == await store.head()
        assert "acc-1" in seen and "acc-2" in seen
        await store.close()

    asyncio.run(main())
