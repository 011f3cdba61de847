"""Runners write heartbeats to the store: what they are doing, for other processes to read.

On real SQLite files: a runner's record at start, while it follows, when it stops
(and why); a runner retrying a handler whose own database is locked by another
program says so in its record while the store itself is fine, then records the
episode that ended; a restarted runner replaces its ended predecessor's record but
not a runner still beating beside it; the asyncio runner does the same.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import chronik
from chronik import NewEvent, RecordedEvent
from chronik.consumer_groups import ConsumerGroup
from chronik.events import RunnerHeartbeat
from chronik.process_managers import ProcessContext, ProcessManager, process_manager_runner
from chronik.projections import (
    AsyncProjectionRunner,
    FailurePolicy,
    Projection,
    ProjectionRunner,
    RunnerStatus,
)
from chronik.store import RunnerHeartbeats, StoreTransaction

FAST = FailurePolicy(backoff=0.01, max_backoff=0.1)


def _eventually(check: Callable[[], bool], what: str, patience: float = 30) -> None:
    deadline = time.monotonic() + patience
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def _only(store: RunnerHeartbeats, name: str = "orders") -> RunnerHeartbeat:
    """The one runner's record; a placeholder in state ``none`` before it wrote any."""
    beats = store.heartbeats(name)
    assert len(beats) <= 1, beats
    return beats[0] if beats else _NONE


_NONE = RunnerHeartbeat(
    "none",
    "orders",
    1,
    "projection",
    None,
    "",
    0,
    "idle",
    datetime.now(UTC),
    datetime.now(UTC),
    1.0,
    datetime.now(UTC),
)


def _orders(handle: Callable[[RecordedEvent, StoreTransaction], None] | None = None) -> Projection[Any]:
    def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
        if handle is not None:
            handle(event, tx)
        tx.execute("INSERT INTO orders VALUES (?)", (event.stream_id,))

    return Projection(
        "orders", {"Placed": placed}, setup=lambda tx: tx.execute("CREATE TABLE orders (id TEXT)")
    )


def test_a_runner_says_what_it_does_from_start_to_stop(tmp_path: Path) -> None:
    store = chronik.connect(f"sqlite:///{tmp_path / 'shop.db'}")
    store.append("order-1", [NewEvent("Placed", {})])
    states: list[str] = []
    runner = ProjectionRunner(
        store, _orders(), heartbeat=0.2, on_state_change=lambda s: states.append(s.state)
    )
    runner.run_in_background()
    _eventually(lambda: _only(store).state == "caught_up" and _only(store).lag_events == 0, "caught up")
    beat = _only(store)
    assert (beat.name, beat.version, beat.kind, beat.partition) == ("orders", 1, "projection", None)
    assert (beat.host, beat.pid, beat.interval) == (socket.gethostname(), os.getpid(), 0.2)
    assert beat.checkpoint == store.head() and beat.handled == 1 and not beat.stale()
    first = beat.heard_at
    _eventually(lambda: _only(store).heard_at > first, "a heartbeat between changes of state")
    store.append("order-2", [NewEvent("Placed", {})])
    _eventually(lambda: _only(store).checkpoint == store.head(), "the new checkpoint in its record")
    runner.stop(timeout=10)
    beat = _only(store)
    assert (beat.state, beat.error, beat.retrying) == ("stopped", None, None)  # asked to stop
    assert not beat.stale(), "a stopped runner is not stale: it said goodbye"
    assert states[:2] == ["running", "caught_up"] and states[-1] == "stopped"
    store.close()


def test_a_runner_that_fails_records_why_it_stopped(tmp_path: Path) -> None:
    store = chronik.connect(f"sqlite:///{tmp_path / 'shop.db'}")
    store.append("order-1", [NewEvent("Placed", {})])

    def broken(event: RecordedEvent, tx: StoreTransaction) -> None:
        raise ValueError("no such customer")

    runner = ProjectionRunner(store, _orders(broken), heartbeat=0.2)
    runner.run_in_background()
    _eventually(lambda: runner.error is not None, "the runner failing")
    runner.stop(timeout=10)
    beat = _only(store)
    assert beat.state == "stopped" and beat.error is not None
    assert beat.error.startswith("ProjectionFailedError") and "no such customer" in beat.error
    store.close()


def test_a_runner_retrying_a_handler_says_so_while_the_store_is_fine(tmp_path: Path) -> None:
    """The handler writes to a mailer database of its own, which another program holds
    locked: the handler's real "database is locked" is retried, and meanwhile the
    runner's heartbeats (to the store, which is fine) say it is retrying and why."""
    mail = tmp_path / "mail.db"
    sqlite3.connect(mail).execute("CREATE TABLE sent (id TEXT)").connection.close()

    def send(event: RecordedEvent, tx: StoreTransaction) -> None:
        with sqlite3.connect(mail, timeout=0) as outbox:
            outbox.execute("INSERT INTO sent VALUES (?)", (event.stream_id,))

    store = chronik.connect(f"sqlite:///{tmp_path / 'shop.db'}")
    store.append("order-0", [NewEvent("Placed", {})])
    changes: list[RunnerStatus] = []
    runner = ProjectionRunner(
        store, _orders(send), policy=FAST, heartbeat=0.2, on_state_change=changes.append
    )
    runner.run_in_background()
    _eventually(lambda: _only(store).state == "caught_up", "caught up")
    blocker = sqlite3.connect(mail, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # the mailer's database is busy
    try:
        store.append("order-1", [NewEvent("Placed", {})])
        _eventually(
            lambda: (b := _only(store)).retrying is not None and b.retrying.attempts >= 3,
            "retrying, in its record",
        )
        beat = _only(store)
        assert beat.state == "retrying" and not beat.stale()
        assert beat.retrying is not None and "database is locked" in beat.retrying.error
        assert beat.lag_events in (None, 1)
    finally:
        blocker.rollback()
        blocker.close()
    _eventually(lambda: _only(store).state == "caught_up" and _only(store).recovered is not None, "recovered")
    beat = _only(store)
    assert beat.retrying is None and beat.recovered is not None
    assert beat.recovered.attempts >= 3 and "database is locked" in beat.recovered.error
    assert beat.recovered.since <= beat.recovered.until <= beat.heard_at
    runner.stop(timeout=10)
    seen = [c.state for c in changes]
    assert "retrying" in seen and seen.index("retrying") < len(seen) - 1
    after = changes[seen.index("retrying") + 1]
    assert after.state == "caught_up" and after.recovered == beat.recovered
    store.close()


def test_a_restarted_runner_replaces_the_ended_record_but_not_a_live_one(tmp_path: Path) -> None:
    store = chronik.connect(f"sqlite:///{tmp_path / 'shop.db'}")
    store.append("order-1", [NewEvent("Placed", {})])
    first = ProjectionRunner(store, _orders(), heartbeat=0.2)
    first.run_in_background()
    _eventually(lambda: _only(store).state == "caught_up", "the first runner caught up")
    # A second one beside it (a deploy overlap): both are listed.
    second = ProjectionRunner(store, _orders(), heartbeat=0.2)
    second.run_until_caught_up()
    assert sorted(b.state for b in store.heartbeats("orders")) == ["caught_up", "idle"]
    first.stop(timeout=10)
    third = ProjectionRunner(store, _orders(), heartbeat=0.2)
    third.run_in_background()
    _eventually(
        lambda: [b.state for b in store.heartbeats("orders")] == ["caught_up"], "the ended ones forgotten"
    )
    third.stop(timeout=10)
    store.close()


def test_no_heartbeat_is_written_when_asked_for_none(tmp_path: Path) -> None:
    store = chronik.connect(f"sqlite:///{tmp_path / 'shop.db'}")
    store.append("order-1", [NewEvent("Placed", {})])
    states: list[str] = []
    runner = ProjectionRunner(
        store, _orders(), heartbeat=None, on_state_change=lambda s: states.append(s.state)
    )
    assert runner.run_until_caught_up() == 1
    assert store.heartbeats() == [] and states[-1] == "idle"
    with pytest.raises(chronik.InvalidInputError, match="heartbeat"):
        ProjectionRunner(store, _orders(), heartbeat=0)
    store.close()


def test_the_asyncio_runner_writes_heartbeats_too(tmp_path: Path) -> None:
    async def main() -> None:
        store = chronik.connect_async(f"sqlite:///{tmp_path / 'shop.db'}")
        await store.append("order-1", [NewEvent("Placed", {})])

        async def placed(event: RecordedEvent, tx: Any) -> None:
            await tx.execute("INSERT INTO orders VALUES (?)", (event.stream_id,))

        async def setup(tx: Any) -> None:
            await tx.execute("CREATE TABLE orders (id TEXT)")

        orders = Projection("orders", {"Placed": placed}, setup=setup)
        runner = AsyncProjectionRunner(store, orders, heartbeat=0.2)
        runner.run_in_background()
        deadline = time.monotonic() + 30
        while not [b for b in await store.heartbeats("orders") if b.state == "caught_up"]:
            assert time.monotonic() < deadline, "no caught_up heartbeat"
            await asyncio.sleep(0.02)
        await runner.stop(timeout=10)
        [beat] = await store.heartbeats("orders")
        assert (beat.state, beat.checkpoint, beat.pid) == ("stopped", await store.head(), os.getpid())
        await store.close()

    asyncio.run(main())


def test_consumer_group_members_and_process_managers_beat_as_what_they_are(tmp_path: Path) -> None:
    store = chronik.connect(f"sqlite:///{tmp_path / 'shop.db'}")
    for n in range(6):
        store.append(f"order-{n}", [NewEvent("Placed", {})])
    group = ConsumerGroup("orders", 2)
    members = [member.runner(store, _orders(), heartbeat=0.2) for member in group.members]

    def thank(event: RecordedEvent, ctx: ProcessContext) -> None:
        ctx.append(f"thanks-{event.stream_id}", [NewEvent("Thanked", {})])

    manager = process_manager_runner(store, ProcessManager("thanks", {"Placed": thank}), heartbeat=0.2)
    for runner in [*members, manager]:
        runner.run_until_caught_up()
    beats = {(b.name, b.kind, b.partition, b.state) for b in store.heartbeats()}
    assert beats == {
        ("orders", "projection", "0of2", "idle"),
        ("orders", "projection", "1of2", "idle"),
        ("thanks", "process manager", None, "idle"),
    }
    store.close()
