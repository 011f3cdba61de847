"""The asyncio projection runner, inline projections and process managers on PostgreSQL.

A transactional target over the asyncio store (``async with store.transaction()``):
the handlers' SQL and the checkpoint commit together. Handlers are coroutine
functions; tables are in the test's own schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

import chronik
from chronik import NewEvent, RecordedEvent
from chronik.process_managers import AsyncProcessContext, ProcessManager, process_manager_runner
from chronik.projections import (
    AsyncProjectionRunner,
    AsyncTransactionalTarget,
    FailurePolicy,
    Projection,
    ProjectionFailedError,
    active_version_async,
    add_inline_projection,
    add_inline_projection_async,
    blue_green_async,
    remove_inline_projection,
)
from chronik.store import AsyncEventStore, AsyncStoreTransaction

pytestmark = pytest.mark.postgres

T = TypeVar("T")


def _run(url: str, test: Callable[[Any], Awaitable[T]]) -> T:
    async def main() -> T:
        async with chronik.connect_async(url) as store:
            return await test(store)

    return asyncio.run(main())


def _counter(schema: str, name: str = "counter", version: int = 1) -> Projection[AsyncStoreTransaction]:
    """Deliberately not idempotent: only exactly-once delivery keeps it right."""
    table = f"{schema}.{name}_v{version}"

    async def setup(tx: AsyncStoreTransaction) -> None:
        await tx.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (stream_id text PRIMARY KEY, n integer, total integer)"
        )
        await tx.execute(f"CREATE TABLE IF NOT EXISTS {table}_applied (position bigint PRIMARY KEY)")

    async def teardown(tx: AsyncStoreTransaction) -> None:
        await tx.execute(f"DROP TABLE IF EXISTS {table}, {table}_applied")

    async def added(event: RecordedEvent, tx: AsyncStoreTransaction) -> None:
        if event.data["amount"] == 13:
            raise ValueError("thirteen")
        await tx.execute(f"INSERT INTO {table}_applied VALUES (%s)", (event.position,))
        await tx.execute(
            f"INSERT INTO {table} AS t VALUES (%s, 1, %s) ON CONFLICT (stream_id) DO UPDATE "
            "SET n = t.n + 1, total = t.total + excluded.total",
            (event.stream_id, event.data["amount"]),
        )

    return Projection(name, {"Added": added}, version=version, setup=setup, teardown=teardown)


async def _rows(store: Any, table: str) -> dict[str, tuple[int, int]]:
    async with store.transaction() as tx:
        cursor = await tx.execute(f"SELECT stream_id, n, total FROM {table}")
        return {r[0]: (r[1], r[2]) for r in await cursor.fetchall()}


async def _add(store: AsyncEventStore, stream: str, *amounts: int) -> None:
    await store.append(stream, [NewEvent("Added", {"amount": a}) for a in amounts])


def test_runner_commits_sql_and_checkpoint_together(postgres_store_url: str, postgres_schema: str) -> None:
    async def test(store: Any) -> None:
        await _add(store, "acc-1", 1, 2)
        await _add(store, "acc-2", 5)
        runner = AsyncProjectionRunner(store, _counter(postgres_schema), batch_size=2)
        assert isinstance(runner.target, AsyncTransactionalTarget)
        assert await runner.run_until_caught_up() == 3
        table = f"{postgres_schema}.counter_v1"
        assert await _rows(store, table) == {"acc-1": (2, 3), "acc-2": (1, 5)}
        assert await store.load_checkpoint("projection:counter:v1") == await store.head()
        state = await runner.state()
        assert state is not None and (state.status, state.active) == ("live", True)

        runner.run_in_background()
        try:
            for i in range(10):
                await _add(store, f"acc-{i % 2 + 1}", 10)
            assert await runner.wait_for(await store.head(), timeout=30)
        finally:
            await runner.stop(timeout=30)
        assert runner.error is None
        assert await _rows(store, table) == {"acc-1": (7, 53), "acc-2": (6, 55)}
        assert (await runner.lag()).events == 0

    _run(postgres_store_url, test)


def test_two_runners_never_apply_an_event_twice(postgres_store_url: str, postgres_schema: str) -> None:
    async def test(store: Any) -> None:
        for i in range(40):
            await _add(store, f"acc-{i % 5}", 1, 1)
        runners = [AsyncProjectionRunner(store, _counter(postgres_schema), batch_size=3) for _ in range(2)]
        await runners[0].run_until_caught_up()  # the read model exists before they race
        for i in range(40):
            await _add(store, f"acc-{i % 5}", 1)
        await asyncio.gather(*(r.run_until_caught_up() for r in runners))
        rows = await _rows(store, f"{postgres_schema}.counter_v1")
        assert rows == {f"acc-{i}": (24, 24) for i in range(5)}

    _run(postgres_store_url, test)


def test_park_records_dead_letters_in_the_unit(postgres_store_url: str, postgres_schema: str) -> None:
    async def test(store: Any) -> None:
        await _add(store, "acc-1", 1)
        await _add(store, "acc-bad", 13)
        await _add(store, "acc-2", 2)
        policy = FailurePolicy(retries=1, backoff=0.0, on_failure="park")
        runner = AsyncProjectionRunner(store, _counter(postgres_schema), policy=policy)
        await runner.run_until_caught_up()
        assert runner.parked == 1
        [letter] = await store.dead_letters("counter")
        assert (letter.event.stream_id, letter.event.attempts) == ("acc-bad", 1)  # a bug: not retried
        assert await _rows(store, f"{postgres_schema}.counter_v1") == {"acc-1": (1, 1), "acc-2": (1, 2)}

        stopping = AsyncProjectionRunner(
            store, _counter(postgres_schema, "stopping"), policy=FailurePolicy(retries=0)
        )
        with pytest.raises(ProjectionFailedError, match="acc-bad"):
            await stopping.run_until_caught_up()
        state = await stopping.state()
        assert state is not None and state.status == "failed"

    _run(postgres_store_url, test)


def test_blue_green_switches_versions(postgres_store_url: str, postgres_schema: str) -> None:
    async def test(store: Any) -> None:
        await _add(store, "acc-1", 1, 2)
        old = _counter(postgres_schema, version=1)
        await AsyncProjectionRunner(store, old).run_until_caught_up()
        assert await active_version_async(store, "counter") == 1
        await _add(store, "acc-1", 3)
        runner = await blue_green_async(store, old, _counter(postgres_schema, version=2))
        assert await active_version_async(store, "counter") == 2
        assert await _rows(store, f"{postgres_schema}.counter_v2") == {"acc-1": (3, 6)}
        assert await store.load_checkpoint(old.checkpoint_name) is None  # torn down
        assert runner.checkpoint == await store.head()

    _run(postgres_store_url, test)


def test_inline_projection_on_the_asyncio_store(postgres_store_url: str, postgres_schema: str) -> None:
    async def test(store: Any) -> None:
        projection = _counter(postgres_schema, "inline")
        await _add(store, "acc-1", 4)  # before it is installed: caught up on install
        with pytest.raises(chronik.ConfigurationError, match="add_inline_projection_async"):
            add_inline_projection(store, projection)
        await add_inline_projection_async(store, projection)
        table = f"{postgres_schema}.inline_v1"
        assert await _rows(store, table) == {"acc-1": (1, 4)}
        await _add(store, "acc-1", 5)
        assert await _rows(store, table) == {"acc-1": (2, 9)}  # never behind
        with pytest.raises(ProjectionFailedError, match="thirteen"):
            await _add(store, "acc-2", 13)
        assert (await store.stream_info("acc-2")).version == 0  # the append failed whole
        remove_inline_projection(store, projection)
        await _add(store, "acc-2", 13)  # no longer run

    _run(postgres_store_url, test)


def test_sync_inline_projection_refuses_coroutine_handlers(postgres_store_url: str) -> None:
    async def handler(event: RecordedEvent, tx: Any) -> None:
        pass

    projection = Projection("coro", {"Added": handler})
    with chronik.connect(postgres_store_url) as store:
        store.append("acc-1", [NewEvent("Added", {"amount": 1})])
        with pytest.raises(chronik.ConfigurationError, match=r"'coro'.*'Added'.*add_inline_projection_async"):
            add_inline_projection(store, projection)  # caught up on install: refused there
        store.append("acc-1", [NewEvent("Added", {"amount": 1})])  # and not installed


def test_process_manager_reacts_in_the_transaction(postgres_store_url: str) -> None:
    async def test(store: Any) -> None:
        await store.append("signup-1", [NewEvent("SignedUp", {"name": "ada"})])
        attempts: list[int] = []

        async def welcome(event: RecordedEvent, ctx: AsyncProcessContext) -> None:
            await ctx.append("mail-1", [NewEvent("WelcomeMailQueued", {"to": event.data["name"]})])
            attempts.append(1)
            if len(attempts) == 1:
                raise ConnectionError("the CRM hiccuped")  # the append above rolls back

        manager = ProcessManager("welcome", {"SignedUp": welcome})
        runner = process_manager_runner(store, manager, policy=FailurePolicy(retries=2, backoff=0.0))
        assert isinstance(runner.target, AsyncTransactionalTarget)
        await runner.run_until_caught_up()
        assert len(attempts) == 2
        mail = await store.read_stream("mail-1")
        assert [e.type for e in mail] == ["WelcomeMailQueued"]
        trigger = (await store.read_stream("signup-1"))[0]
        assert mail[0].metadata == {
            "correlation_id": str(trigger.event_id),
            "causation_id": str(trigger.event_id),
        }
        assert await process_manager_runner(store, manager).run_until_caught_up() == 0

    _run(postgres_store_url, test)
