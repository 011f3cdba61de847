"""SQLite: which errors are transient, and a runner that retries only those.

Every error here is a real one from SQLite: a second connection holding the write
lock, a statement that does not parse, a constraint, a file at its size limit.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import chronik
from chronik import NewEvent, OperationalError, RecordedEvent
from chronik.errors import PersistenceError, is_transient
from chronik.projections import (
    CheckpointedTarget,
    FailurePolicy,
    Projection,
    ProjectionFailedError,
    ProjectionRunner,
)
from chronik.store import StoreTransaction
from chronik.stores.sqlite.schema import translate
from chronik.testing import ProjectionSpec


def _raised(action: Callable[[], object]) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as caught:
        action()
    return caught.value


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "model.db", timeout=0, isolation_level=None)
    conn.execute("CREATE TABLE seen (position INTEGER PRIMARY KEY)")
    yield conn
    conn.close()


def _lock(path: Path) -> sqlite3.Connection:
    """A second connection that holds the write lock of ``path`` until it rolls back."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def test_translate_tells_a_busy_file_from_an_sql_error(db: sqlite3.Connection, tmp_path: Path) -> None:
    path = str(tmp_path / "model.db")
    blocker = _lock(tmp_path / "model.db")
    locked = _raised(lambda: db.execute("INSERT INTO seen VALUES (1)"))
    blocker.rollback()
    blocker.close()
    assert "database is locked" in str(locked)
    syntax = _raised(lambda: db.execute("INSERT INTO seen VALUES (%s)"))
    missing = _raised(lambda: db.execute("SELECT * FROM nowhere"))
    db.execute("INSERT INTO seen VALUES (1)")
    duplicate = _raised(lambda: db.execute("INSERT INTO seen VALUES (1)"))
    # A file at its size limit: "database or disk is full", as on a full disk.
    db.execute("CREATE TABLE big (blob BLOB)")
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    full = _raised(lambda: db.execute("INSERT INTO big VALUES (zeroblob(1000000))"))

    verdicts = {
        name: (type(translate(err, path)).__name__, translate(err, path).transient, is_transient(err))
        for name, err in [
            ("locked", locked),
            ("syntax", syntax),
            ("missing", missing),
            ("duplicate", duplicate),
            ("full", full),
        ]
    }
    assert verdicts == {
        "locked": ("OperationalError", True, True),
        "syntax": ("OperationalError", False, False),  # SQLite calls SQL errors operational too
        "missing": ("OperationalError", False, False),
        "duplicate": ("IntegrityError", False, False),
        "full": ("OperationalError", True, True),
    }
    # Translated with ``from``: the verdict is the same on the chronik error.
    try:
        raise translate(locked, path) from locked
    except PersistenceError as err:
        assert is_transient(err)


def test_a_store_whose_file_another_connection_locks_fails_transiently(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = chronik.connect(f"sqlite:///{path}", busy_timeout=0)
    store.append("order-1", [NewEvent("Placed", {})])
    blocker = _lock(path)
    try:
        with pytest.raises(OperationalError, match="database is locked") as caught:
            store.append("order-1", [NewEvent("Placed", {})])
    finally:
        blocker.rollback()
        blocker.close()
    assert caught.value.transient and is_transient(caught.value)
    store.close()


def test_the_write_lock_timing_out_is_transient(tmp_path: Path) -> None:
    store = chronik.connect(f"sqlite:///{tmp_path / 'events.db'}", busy_timeout=0.05)
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction():
            holding.set()
            done.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(60)
        with pytest.raises(OperationalError, match="timed out waiting for the write lock") as caught:
            store.append("order-1", [NewEvent("Placed", {})])
    finally:
        done.set()
        holder.join(60)
    assert is_transient(caught.value)
    store.close()


def _model_projection(
    db: sqlite3.Connection, calls: list[int], before: Callable[[], None]
) -> Projection[Any]:
    def placed(event: RecordedEvent, context: Any) -> None:
        calls.append(event.position)
        try:
            db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (event.position,))
        finally:
            before()

    return Projection("seen", {"Placed": placed})


def test_a_handler_whose_database_is_locked_is_retried_and_succeeds(
    db: sqlite3.Connection, tmp_path: Path
) -> None:
    store = chronik.connect("memory://")
    store.append("order-1", [NewEvent("Placed", {})])
    blocker = _lock(tmp_path / "model.db")
    calls: list[int] = []

    def release() -> None:  # after the first try failed: the retry finds the file free
        if blocker.in_transaction:
            blocker.rollback()

    projection = _model_projection(db, calls, release)
    assert isinstance(store, chronik.store.CheckpointStore)
    runner = ProjectionRunner(
        store, projection, CheckpointedTarget(None, store), policy=FailurePolicy(retries=3, backoff=0.0)
    )
    assert runner.run_until_caught_up() == 1
    assert len(calls) == 2
    assert db.execute("SELECT position FROM seen").fetchall() == [(1,)]
    blocker.close()
    store.close()


def test_a_handler_with_an_sql_error_stops_on_its_first_attempt(tmp_path: Path) -> None:
    store = chronik.connect(f"sqlite:///{tmp_path / 'events.db'}")
    store.append("order-1", [NewEvent("Placed", {})])
    calls: list[int] = []

    def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
        calls.append(event.position)
        tx.execute("INSERT INTO sen VALUES (?)", (event.position,))  # a typo

    runner = ProjectionRunner(
        store,
        Projection("seen", {"Placed": placed}, setup=lambda tx: tx.execute("CREATE TABLE seen (p INTEGER)")),
        policy=FailurePolicy(retries=5, backoff=0.0),
    )
    with pytest.raises(ProjectionFailedError, match="after 1 attempt: .*no such table: sen") as caught:
        runner.run_until_caught_up()
    assert caught.value.attempts == 1 and calls == [1]
    assert caught.value.__cause__ is not None and not is_transient(caught.value.__cause__)
    store.close()


def test_a_projection_spec_with_an_sql_error_fails_on_its_first_attempt() -> None:
    def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
        tx.execute("INSERT INTO seen (position) VALUES (?)", (event.position,))  # no such column

    projection = Projection(
        "seen", {"Placed": placed}, setup=lambda tx: tx.execute("CREATE TABLE seen (p INTEGER)")
    )
    spec = ProjectionSpec(projection, read=lambda tx: tx.execute("SELECT p FROM seen").fetchall())
    with pytest.raises(ProjectionFailedError) as caught:
        spec.given(("order-1", NewEvent("Placed", {}))).then([(1,)])
    assert caught.value.attempts == 1
