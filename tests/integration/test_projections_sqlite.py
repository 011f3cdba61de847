"""Projections with their read model in the SQLite file: one transaction per batch."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import chronik
from chronik import Checkpoint, NewEvent, RecordedEvent
from chronik.errors import InvalidCheckpointError
from chronik.projections import (
    FailurePolicy,
    Projection,
    ProjectionFailedError,
    ProjectionRunner,
)
from chronik.store import StoreTransaction, Transactional
from chronik.stores.sqlite import SQLiteEventStore


def _open(path: Path) -> SQLiteEventStore:
    store = chronik.connect(f"sqlite:///{path}")
    assert isinstance(store, SQLiteEventStore)
    return store


def _counter(name: str = "counter") -> Projection[StoreTransaction]:
    """Deliberately not idempotent: only exactly-once delivery keeps it right."""

    def setup(tx: StoreTransaction) -> None:
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {name} (stream_id TEXT PRIMARY KEY, n INTEGER, total INTEGER)"
        )

    def teardown(tx: StoreTransaction) -> None:
        tx.execute(f"DROP TABLE IF EXISTS {name}")

    def added(event: RecordedEvent, tx: StoreTransaction) -> None:
        if event.data["amount"] == 13:
            raise ValueError("thirteen")
        tx.execute(
            f"INSERT INTO {name} VALUES (?, 1, ?) ON CONFLICT (stream_id) DO UPDATE SET n = n + 1, "
            "total = total + excluded.total",
            (event.stream_id, event.data["amount"]),
        )

    return Projection(name, {"Added": added}, setup=setup, teardown=teardown)


def _rows(path: Path, table: str = "counter") -> dict[str, tuple[int, int]]:
    db = sqlite3.connect(path)
    try:
        return {r[0]: (r[1], r[2]) for r in db.execute(f"SELECT stream_id, n, total FROM {table}")}
    finally:
        db.close()


def _add(store: chronik.EventStore, stream: str, *amounts: int) -> None:
    store.append(stream, [NewEvent("Added", {"amount": a}) for a in amounts])


def test_writes_and_checkpoint_commit_together(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = _open(path)
    _add(store, "acc-1", 1, 2, 3)
    _add(store, "acc-2", 10)
    runner = ProjectionRunner(store, _counter(), batch_size=2)
    assert runner.run_until_caught_up() == 4
    assert _rows(path) == {"acc-1": (3, 6), "acc-2": (1, 10)}
    store.close()
    # A new process (store) resumes: nothing twice.
    store = _open(path)
    _add(store, "acc-2", 5)
    assert ProjectionRunner(store, _counter()).run_until_caught_up() == 1
    assert _rows(path) == {"acc-1": (3, 6), "acc-2": (2, 15)}
    [state] = store.projection_states("counter")
    assert (state.status, state.active) == ("live", True)
    store.close()


def test_failed_batch_rolls_back_and_parks_in_the_same_transaction(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = _open(path)
    _add(store, "acc-1", 1, 13, 2)
    policy = FailurePolicy(retries=1, backoff=0.0, on_failure="park")
    ProjectionRunner(store, _counter(), policy=policy).run_until_caught_up()
    assert _rows(path) == {"acc-1": (2, 3)}  # the batch's first try left nothing behind
    store.close()
    store = _open(path)
    [letter] = store.dead_letters()
    assert (letter.projection, letter.event.stream_id, letter.event.version) == ("counter", "acc-1", 2)
    assert letter.event.error == "ValueError: thirteen"
    assert store.load_checkpoint("projection:counter:v1") == store.head()
    store.close()


def test_stop_policy_records_the_failure(tmp_path: Path) -> None:
    store = _open(tmp_path / "events.db")
    _add(store, "acc-1", 1, 13)
    runner = ProjectionRunner(store, _counter(), policy=FailurePolicy(retries=0))
    with pytest.raises(ProjectionFailedError, match="'acc-1' version 2"):
        runner.run_until_caught_up()
    [state] = store.projection_states()
    assert state.status == "failed"
    assert state.failure is not None and state.failure.position == 2
    assert store.load_checkpoint("projection:counter:v1") == Checkpoint("sqlite", (1,))
    store.close()


def test_checkpoint_from_another_sqlite_file_is_refused(tmp_path: Path) -> None:
    big = _open(tmp_path / "big.db")
    _add(big, "acc-1", *range(20, 40))
    ProjectionRunner(big, _counter()).run_until_caught_up()
    checkpoint = big.load_checkpoint("projection:counter:v1")
    big.close()
    small = _open(tmp_path / "small.db")
    _add(small, "acc-1", 1)
    assert checkpoint is not None
    small.save_checkpoint("projection:counter:v1", checkpoint)
    with pytest.raises(InvalidCheckpointError, match="ahead of this store's head"):
        ProjectionRunner(small, _counter()).run_until_caught_up()
    small.close()


def test_reset_rebuilds_one_projection(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = _open(path)
    _add(store, "acc-1", 1, 2)
    runner = ProjectionRunner(store, _counter())
    runner.run_until_caught_up()
    other = ProjectionRunner(store, _counter("other"))
    other.run_until_caught_up()
    with store.transaction() as tx:
        tx.execute("UPDATE counter SET n = 99")
    assert runner.rebuild() == 2
    assert _rows(path) == {"acc-1": (2, 3)}
    assert _rows(path, "other") == {"acc-1": (2, 3)}
    assert other.lag().events == 0
    store.close()


def test_closing_a_subscription_releases_its_connection(tmp_path: Path) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to count open files")
    path = tmp_path / "events.db"

    def open_files() -> int:
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                count += os.readlink(f"/proc/self/fd/{fd}").startswith(str(path))
            except OSError:
                pass
        return count

    store = _open(path)
    _add(store, "acc-1", 1)
    with store.subscribe() as subscription:
        assert len(subscription.next_batch(0)) == 1
        assert len(store._readers) == 1
    assert store._readers == set()
    before = open_files()
    for _ in range(40):
        with store.subscribe() as subscription:
            assert len(subscription.next_batch(0)) == 1
    # SQLite may keep the descriptor of a closed connection to reuse it (POSIX locks
    # are per process), but closed subscriptions must not pile them up.
    assert open_files() <= before + 1
    assert store._readers == set()
    store.close()
    assert open_files() == 0


class _WithoutTransactions:
    """A memory store's powers except transactions (the memory store has them)."""

    def __init__(self) -> None:
        self._store = chronik.connect("memory://")

    def __getattr__(self, name: str) -> Any:
        if name == "transaction":
            raise AttributeError(name)
        return getattr(self._store, name)


def test_transactional_target_needs_transactions() -> None:
    store = _WithoutTransactions()
    assert not isinstance(store, Transactional)
    with pytest.raises(chronik.ConfigurationError, match="pass target="):
        ProjectionRunner(store, _counter())


def test_closing_the_store_stops_a_waiting_subscription_with_an_error(tmp_path: Path) -> None:
    store = _open(tmp_path / "events.db")
    subscription = store.subscribe()
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            next(subscription)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=follow)
    thread.start()
    # Whether the close comes before or during the wait, the subscriber must learn of it.
    time.sleep(0.05)
    store.close()
    thread.join(60)
    assert not thread.is_alive(), "the subscription kept waiting on a closed store"
    assert len(errors) == 1
    assert isinstance(errors[0], chronik.StoreClosedError)
