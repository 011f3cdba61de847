"""Connections that die: nothing partial is written, and the store keeps working.

``pg_terminate_backend`` ends a server process the way a crash or a restart of the
server does, as far as the client can tell; the shared test server itself is never
restarted by these tests.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator

import psycopg
import pytest

import chronik
from chronik import NewEvent, OperationalError, StreamWrite
from chronik.stores.postgres import AsyncPostgresEventStore, PostgresEventStore

pytestmark = pytest.mark.postgres

PATIENCE = 60.0  # seconds to wait for something that must happen; never reached when correct


def _event(n: int = 0) -> NewEvent:
    return NewEvent("Happened", {"n": n}, event_id=chronik.uuid7())


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _backends(url: str, application: str, *, waiting_on_a_lock: bool = False) -> list[int]:
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    if waiting_on_a_lock:
        query += " AND wait_event_type = 'Lock'"
    with psycopg.connect(url, autocommit=True) as conn:
        return [row[0] for row in conn.execute(query, (application,)).fetchall()]


def _poll(check: Iterator[list[int]]) -> list[int]:
    deadline = time.monotonic() + PATIENCE
    for found in check:
        if found:
            return found
        assert time.monotonic() < deadline, "the server never showed what the test waits for"
        time.sleep(0.01)
    raise AssertionError("unreachable")


@pytest.fixture
def application() -> str:
    return f"chronik-test-{uuid.uuid4().hex[:10]}"


def test_writer_killed_mid_transaction_leaves_nothing(postgres_store_url: str, postgres_url: str) -> None:
    with PostgresEventStore(postgres_store_url) as store:
        store.open()
        store.append("order-0", [_event()])
        before = [e.event_id for e in store.read_all()]
        checkpoint = store.head()
        assert checkpoint is not None
        with pytest.raises(OperationalError), store.transaction() as tx:
            tx.append("order-1", [_event(1), _event(2), _event(3)])
            tx.append_many([StreamWrite("order-2", [_event(4)]), StreamWrite("order-3", [_event(5)])])
            tx.save_checkpoint("projection", checkpoint)
            _terminate(postgres_url, tx.connection.info.backend_pid)
            tx.append("order-4", [_event(6)])  # the server process is gone
        for stream in ("order-1", "order-2", "order-3", "order-4"):
            assert store.stream_info(stream).version == 0
        assert [e.event_id for e in store.read_all()] == before
        assert store.load_checkpoint("projection") is None
        # The pool dropped the dead connection: the store keeps working.
        assert store.append("order-1", [_event(7)]).version == 1
        assert len(list(store.read_all())) == 2


def test_async_writer_killed_mid_transaction_leaves_nothing(
    postgres_store_url: str, postgres_url: str
) -> None:
    async def main() -> None:
        async with AsyncPostgresEventStore(postgres_store_url) as store:
            with pytest.raises(OperationalError):
                async with store.transaction() as tx:
                    await tx.append("order-1", [_event(1), _event(2)])
                    await asyncio.to_thread(_terminate, postgres_url, tx.connection.info.backend_pid)
                    await tx.append("order-2", [_event(3)])
            assert (await store.stream_info("order-1")).version == 0
            assert [e async for e in store.read_all()] == []
            assert (await store.append("order-1", [_event(4)])).version == 1

    asyncio.run(main())


def test_append_whose_connection_dies_while_waiting_lands_once(
    postgres_store_url: str, postgres_url: str, application: str
) -> None:
    url = f"{postgres_store_url}&application_name={application}"
    first, batch = _event(0), [_event(1), _event(2)]
    results: list[chronik.AppendResult] = []
    errors: list[BaseException] = []

    def append() -> None:
        try:
            results.append(store.append("hot-1", batch))
        except BaseException as err:
            errors.append(err)

    with PostgresEventStore(url) as store:
        store.open()
        with store.transaction() as tx:
            tx.append("hot-1", [first])  # holds version 1 of hot-1 until commit
            writer = threading.Thread(target=append)
            writer.start()
            # The plain append waits for version 1; kill its connection there.
            [killed] = _poll(iter(lambda: _backends(postgres_url, application, waiting_on_a_lock=True), None))
            _terminate(postgres_url, killed)
            # It goes again on another connection (appends are safe to repeat).
            _poll(
                iter(
                    lambda: [
                        p for p in _backends(postgres_url, application, waiting_on_a_lock=True) if p != killed
                    ],
                    None,
                )
            )
        writer.join(PATIENCE)
        assert errors == []
        assert [r.version for r in results] == [3]
        assert [e.event_id for e in store.read_stream("hot-1")] == [first.event_id] + [
            e.event_id for e in batch
        ]


def test_store_and_readers_recover_when_every_connection_dies(
    postgres_store_url: str, postgres_url: str, application: str
) -> None:
    url = f"{postgres_store_url}&application_name={application}&pool_min_size=3"
    with PostgresEventStore(url) as store, PostgresEventStore(postgres_store_url) as other:
        store.open()
        other.open()
        store.append("order-1", [_event(i) for i in range(5)])
        read = list(store.read_all(limit=2))
        store.save_checkpoint("reader", read[-1].checkpoint)
        with store.subscribe(after=read[-1].checkpoint) as subscription:
            assert len(subscription.next_batch(PATIENCE)) == 3
            assert subscription.next_batch(0.01) == []  # caught up: now listening
            # Every connection of the store dies: the pool's, the notifier's and the
            # subscription's LISTEN connection (as in a server restart).
            for pid in _backends(postgres_url, application):
                _terminate(postgres_url, pid)
            other.append("order-1", [_event(5)])
            live = subscription.next_batch(PATIENCE)
            assert [e.data["n"] for e in live] == [5]
        assert store.append("order-1", [_event(6)]).version == 7
        resumed = store.read_all(after=store.load_checkpoint("reader"))
        assert [e.data["n"] for e in resumed] == [2, 3, 4, 5, 6]


class _CollectGarbage:
    """A task for a pool's worker thread: run the cyclic garbage collector there."""

    def __init__(self) -> None:
        self.done = threading.Event()

    def run(self) -> None:
        gc.collect()
        self.done.set()


def test_a_store_left_unclosed_is_cleaned_up_even_when_collected_on_a_pool_thread(
    postgres_store_url: str, postgres_url: str, application: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pool is in a reference cycle (each pooled connection points back at it), so
    # the cyclic collector frees it on whatever thread it happens to run: here,
    # deliberately, one of the pool's own workers. psycopg_pool's __del__ would then
    # join that very thread ("Exception ignored in ConnectionPool.__del__ ...
    # cannot join current thread") and leave the connections open.
    ignored: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: ignored.append(f"{u.exc_value!r} in {u.object!r}"))
    url = f"{postgres_store_url}&application_name={application}&pool_min_size=2"
    store = PostgresEventStore(url)
    store.append("order-1", [_event()])  # the notifier's connection too
    store.log_reader()  # the store's state and its reader refer to each other
    pool = store._shared._pool
    assert pool is not None
    tasks = pool._tasks  # the workers' queue: psycopg_pool's own, reached only here
    del store, pool
    task = _CollectGarbage()
    gc.disable()  # so that the worker's collection is the one that finds the store
    try:
        tasks.put(task)  # type: ignore[arg-type]  # a worker only calls its run()
        assert task.done.wait(PATIENCE)
    finally:
        gc.enable()
    assert ignored == []
    _poll(iter(lambda: [] if _backends(postgres_url, application) else [1], None))  # all closed


def test_a_forked_child_leaves_the_parents_connections_alone(
    postgres_store_url: str, postgres_url: str, application: str
) -> None:
    # The clean-up of an unclosed store runs at exit too; in a forked child it must
    # not close the pooled connections, whose sockets are the parent's.
    url = f"{postgres_store_url}&application_name={application}&pool_min_size=2"
    with PostgresEventStore(url) as store:
        store.append("order-1", [_event()])
        pool, abandoned = store._shared._pool, store._shared._abandoned
        assert pool is not None and abandoned is not None
        pool.wait(PATIENCE)  # every pooled connection made
        before = _backends(postgres_url, application)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, 3.12+
            child = os.fork()
        if child == 0:  # pragma: no cover - the child
            abandoned()  # what its exit would run
            os._exit(0)
        assert os.waitpid(child, 0)[1] == 0
        assert set(before) <= set(_backends(postgres_url, application))  # none ended
        assert store.append("order-1", [_event(1)]).version == 2
