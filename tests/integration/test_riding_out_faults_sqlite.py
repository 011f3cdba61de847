"""SQLite: runners and subscriptions ride out a transient fault outside any handler.

The fault is real: a second connection takes the file's lock in exclusive locking
mode, so every other connection's reads and writes fail with SQLITE_BUSY (the store
is opened with ``busy_timeout=0``, so nothing waits it out inside SQLite) until it
lets go. A runner or subscription keeps trying with backoff, says so in its status,
and carries on exactly where it was once the lock is released.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import chronik
from chronik import NewEvent, RecordedEvent
from chronik.projections import (
    AsyncProjectionRunner,
    FailurePolicy,
    Projection,
    ProjectionRunner,
    RunnerStatus,
)
from chronik.store import AsyncStoreTransaction, StoreTransaction

FAST = FailurePolicy(backoff=0.001, max_backoff=0.02)
SETUP = "CREATE TABLE seen (position INTEGER PRIMARY KEY, stream_id TEXT)"


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def _lock(path: Path) -> sqlite3.Connection:
    """Another connection takes the file's write lock (until it rolls back): every
    transaction of the store fails with SQLITE_BUSY meanwhile; reads still work."""
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def _placed(event: RecordedEvent, tx: StoreTransaction) -> None:
    tx.execute("INSERT INTO seen VALUES (?, ?)", (event.position, event.stream_id))


def _seen(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT position, stream_id FROM seen ORDER BY position").fetchall()


def test_a_runner_rides_out_a_locked_file_says_so_and_carries_on(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = chronik.connect(f"sqlite:///{path}", busy_timeout=0)
    for n in range(3):
        store.append(f"order-{n}", [NewEvent("Placed", {})])
    blockers: list[sqlite3.Connection] = []

    def lock_once(runner: ProjectionRunner[StoreTransaction]) -> None:
        if not blockers:  # after the first event committed: the next unit cannot begin
            blockers.append(_lock(path))

    projection = Projection("seen", {"Placed": _placed}, setup=lambda tx: tx.execute(SETUP))
    runner = ProjectionRunner(store, projection, policy=FAST, batch_size=1, on_progress=lock_once)
    runner.run_in_background()
    try:
        statuses: list[RunnerStatus] = []

        def retrying() -> bool:
            statuses.append(runner.status())
            retrying = statuses[-1].retrying
            return retrying is not None and retrying.attempts >= 3

        _eventually(retrying, "retrying while the file is locked")
        status = statuses[-1]
        assert (status.state, status.error, status.handled) == ("retrying", None, 1)
        assert status.retrying is not None and "locked" in status.retrying.error
        assert status.lag is not None and status.lag.events == 2  # the lag, visible meanwhile
        assert status.since == status.retrying.since
        blockers[0].rollback()
        assert runner.wait_for(store.head(), timeout=60), runner.error
        _eventually(lambda: runner.status(lag=False).state == "caught_up", "caught up")
        after = runner.status()
        assert (after.state, after.retrying, after.error, after.handled) == ("caught_up", None, None, 3)
        assert after.lag is not None and after.lag.events == 0
    finally:
        runner.stop(timeout=60)
        for blocker in blockers:
            blocker.close()
    assert runner.error is None
    assert runner.status(lag=False).state == "stopped"
    assert _seen(path) == [(1, "order-0"), (2, "order-1"), (3, "order-2")]
    store.close()


def test_a_runner_started_while_the_file_is_locked_waits_for_it(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = chronik.connect(f"sqlite:///{path}", busy_timeout=0)
    store.append("order-1", [NewEvent("Placed", {})])
    projection = Projection("seen", {"Placed": _placed}, setup=lambda tx: tx.execute(SETUP))
    runner = ProjectionRunner(store, projection, policy=FAST)
    blocker = _lock(path)
    runner.run_in_background()
    _eventually(
        lambda: (r := runner.status(lag=False).retrying) is not None and r.attempts >= 3,
        "retrying from the start (its setup cannot begin)",
    )
    blocker.rollback()
    _eventually(lambda: runner.status(lag=False).state == "caught_up", "caught up")
    runner.stop(timeout=60)
    blocker.close()
    assert runner.error is None and _seen(path) == [(1, "order-1")]
    store.close()


def test_an_error_retrying_cannot_fix_outside_the_handlers_still_stops_the_runner(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = chronik.connect(f"sqlite:///{path}", busy_timeout=0)
    store.append("order-1", [NewEvent("Placed", {})])
    projection = Projection("seen", {"Placed": _placed}, setup=lambda tx: tx.execute(SETUP))
    ProjectionRunner(store, projection, policy=FAST).run_until_caught_up()
    store.append("order-2", [NewEvent("Placed", {})])
    # The checkpoint's table is gone: no amount of waiting brings it back.
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE chronik_checkpoints")
    runner = ProjectionRunner(store, projection, policy=FAST)
    runner.run_in_background()
    _eventually(lambda: runner.status(lag=False).state == "stopped", "stopped")
    status = runner.status(lag=False)
    assert status.error is not None and "no such table" in status.error
    assert runner.error is not None and status.retrying is None
    store.close()


def test_the_asyncio_runner_rides_it_out_too(tmp_path: Path) -> None:
    path = tmp_path / "events.db"

    async def placed(event: RecordedEvent, tx: AsyncStoreTransaction) -> None:
        await tx.execute("INSERT INTO seen VALUES (?, ?)", (event.position, event.stream_id))

    async def setup(tx: AsyncStoreTransaction) -> None:
        await tx.execute(SETUP)

    async def main() -> None:
        store = chronik.connect_async(f"sqlite:///{path}", busy_timeout=0)
        for n in range(3):
            await store.append(f"order-{n}", [NewEvent("Placed", {})])
        projection = Projection("seen", {"Placed": placed}, setup=setup)
        runner = AsyncProjectionRunner(store, projection, policy=FAST)
        blocker = _lock(path)
        runner.run_in_background()
        while (r := (await runner.status(lag=False)).retrying) is None or r.attempts < 3:
            await asyncio.sleep(0.01)
        status = await runner.status()
        # Not started yet: even its checkpoint cannot be read (SQLite reads it in a write
        # transaction), so there is no lag to show, but the state says why.
        assert status.state == "retrying" and status.retrying is not None
        assert "locked" in status.retrying.error
        blocker.rollback()
        blocker.close()
        assert await runner.wait_for(await store.head(), timeout=60)
        while (await runner.status(lag=False)).state != "caught_up":
            await asyncio.sleep(0.01)
        await runner.stop(timeout=60)
        assert runner.error is None
        await store.close()

    asyncio.run(main())
    assert _seen(path) == [(1, "order-0"), (2, "order-1"), (3, "order-2")]


def test_a_transient_handler_error_is_retried_for_as_long_as_it_lasts_by_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = 6
    store = chronik.connect("memory://")
    store.append("order-1", [NewEvent("Placed", {})])
    calls: list[int] = []

    def placed(event: RecordedEvent, model: object) -> None:
        calls.append(event.position)
        if len(calls) <= failures:
            raise ConnectionError("the mail server is restarting")

    from chronik.projections import CheckpointedTarget

    assert isinstance(store, chronik.store.CheckpointStore)
    runner = ProjectionRunner(
        store,
        Projection("mailer", {"Placed": placed}),
        CheckpointedTarget(None, store),
        policy=FailurePolicy(backoff=0.0),  # no retries= given: no limit
    )
    with caplog.at_level("WARNING", logger="chronik.projections"):
        assert runner.run_until_caught_up() == 1
    assert len(calls) == failures + 1
    # Logged at the 1st, 2nd and 4th failure (then the 8th, 16th, ...), and the recovery.
    lines = [r.getMessage() for r in caplog.records]
    logged = [line.split("attempt ")[1].split(" ")[0] for line in lines if "retrying" in line]
    assert logged == ["1", "2", "4"]
    assert any("recovered after 6 failed attempts" in line for line in lines)
    # With the runner's and the event's fields, as every record of chronik.projections.
    retried = next(r for r in caplog.records if "retrying" in r.getMessage())
    fields = {k: retried.__dict__[k] for k in ("projection", "kind", "stream_id", "version", "position")}
    assert fields == {
        "projection": "mailer",
        "kind": "projection",
        "stream_id": "order-1",
        "version": 1,
        "position": 1,
    }
    assert all(r.__dict__["projection"] == "mailer" for r in caplog.records)
