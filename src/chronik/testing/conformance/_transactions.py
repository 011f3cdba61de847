"""Conformance: transactions (``Transactional`` / ``AsyncTransactional``).

Appends, checkpoints, snapshots, projection state and (on SQL stores) your own
statements commit together or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from chronik import NO_STREAM, NewEvent, WrongExpectedVersionError
from chronik.errors import ChronikError, ConfigurationError, InvalidInputError
from chronik.events import DeadLetter, FailedEvent, ProjectionState, RecordedEvent, Snapshot
from chronik.store import AsyncTransactional, EventStore, Transactional
from chronik.testing.bridge import BlockingStore
from chronik.testing.conformance._base import (
    Blocking,
    ConformanceBase,
    capabilities,
    event,
    face_of,
    needs,
    new_stream,
    run,
)

__all__ = ["TransactionTests", "letter", "transaction"]

PATIENCE = 30.0  # seconds before a stuck call is called a deadlock


@contextlib.contextmanager
def transaction(store: EventStore) -> Iterator[Any]:
    """``store.transaction()`` on the face under test, as a sync transaction.

    On the asyncio face the transaction is entered and left on the bridge's event
    loop, and each of its methods is awaited there.
    """
    if not isinstance(store, BlockingStore):
        assert isinstance(store, Transactional)
        with store.transaction() as sync_tx:
            yield sync_tx
        return
    inner = store.async_store
    assert isinstance(inner, AsyncTransactional)
    manager = inner.transaction()
    tx = run(store, manager.__aenter__())
    try:
        yield Blocking(tx, store)
    except BaseException as err:
        if not run(store, manager.__aexit__(type(err), err, err.__traceback__)):
            raise
    else:
        run(store, manager.__aexit__(None, None, None))


def letter(event: RecordedEvent, projection: str = "p", version: int = 1) -> DeadLetter:
    """A dead letter for ``event``, parked by ``projection``."""
    failure = FailedEvent.of(event, ValueError("no"), 3)
    return DeadLetter(projection, version, failure, datetime(2030, 1, 2, tzinfo=UTC))


def _paramstyle(store: EventStore) -> str | None:
    """How the store's transactions take SQL parameters: "qmark", "format", or None
    when they run no SQL (``execute`` refuses with ``ConfigurationError``).

    A transaction may say (``paramstyle``); otherwise it is probed in transactions
    that are rolled back.
    """

    class Probe(Exception):
        pass

    style: list[str | None] = []
    with contextlib.suppress(Probe), transaction(store) as tx:
        declared = getattr(tx, "paramstyle", None)
        if isinstance(declared, str):
            style.append(declared)
            raise Probe
        try:
            tx.execute("SELECT 1")
        except ConfigurationError:
            style.append(None)
        raise Probe
    if style:
        return style[0]
    with contextlib.suppress(Exception), transaction(store) as tx:
        tx.execute("SELECT ?", (1,))
        style.append("qmark")
        raise Probe
    return style[0] if style else "format"


@needs("transactions")
class TransactionTests(ConformanceBase):
    """``store.transaction()``: everything in it commits together or not at all."""

    def test_everything_commits_together(self, store: EventStore) -> None:
        a, b = new_stream("txa"), new_stream("txb")
        store.append(a, [event(n=0)])
        [first] = store.read_stream(a)
        with transaction(store) as tx:
            tx.append(a, [event(n=1)], 1)
            result = tx.append(b, [event(n=2), event(n=3)], NO_STREAM)
            tx.save_checkpoint("tx-reader", result.checkpoint)
            tx.save_snapshot(Snapshot(a, 2, "State", 1, b'{"n":1}'))
            tx.save_projection_state(ProjectionState("txp", 1, "live", active=True))
            tx.park_event(letter(first, "txp"))
        assert [e.data["n"] for e in store.read_all()] == [0, 1, 2, 3]
        assert store.head() == result.checkpoint
        face, declared = face_of(store), capabilities(store)
        if "checkpoints" in declared:
            assert face.load_checkpoint("tx-reader") == result.checkpoint
        if "snapshots" in declared:
            snapshot = face.load_snapshot(a)
            assert snapshot is not None
            assert (snapshot.version, snapshot.data) == (2, b'{"n":1}')
        if "projection_state" in declared:
            assert [(s.name, s.status, s.active) for s in face.projection_states()] == [("txp", "live", True)]
            assert face.dead_letters("txp") == [letter(first, "txp")]

    def test_an_exception_rolls_everything_back(self, store: EventStore) -> None:
        a, b = new_stream("txa"), new_stream("txb")
        store.append(a, [event(n=0)])
        [first] = store.read_stream(a)
        head = store.head()
        with pytest.raises(RuntimeError, match="handler crashed"), transaction(store) as tx:  # noqa: PT012
            tx.append(a, [event(n=1)])
            result = tx.append(b, [event(n=2)])
            tx.save_checkpoint("tx-reader", result.checkpoint)
            tx.save_snapshot(Snapshot(a, 2, "State", 1, b"{}"))
            tx.save_projection_state(ProjectionState("txp", 1, "building"))
            tx.park_event(letter(first, "txp"))
            raise RuntimeError("handler crashed")
        assert store.head() == head
        assert (store.stream_info(a).version, store.stream_info(b).version) == (1, 0)
        face, declared = face_of(store), capabilities(store)
        if "checkpoints" in declared:
            assert face.load_checkpoint("tx-reader") is None
        if "snapshots" in declared:
            assert face.load_snapshot(a) is None
        if "projection_state" in declared:
            assert face.projection_states() == []
            assert face.dead_letters() == []
        # The store is fine afterwards.
        store.append(b, [event()], NO_STREAM)

    def test_a_transaction_reads_its_own_writes(self, store: EventStore) -> None:
        stream = new_stream("txr")
        store.append(stream, [event(n=0)])
        with transaction(store) as tx:
            tx.append(stream, [event(n=1), event(n=2)], 1)
            assert [e.data["n"] for e in tx.read_stream(stream)] == [0, 1, 2]
            assert [e.version for e in tx.read_stream(stream, 2, 2)] == [2]
            [last] = tx.read_stream(stream, 3)
            tx.save_checkpoint("tx-own", last.checkpoint)
            assert tx.load_checkpoint("tx-own") == last.checkpoint
            tx.delete_checkpoint("tx-own")
            assert tx.load_checkpoint("tx-own") is None
            tx.save_projection_state(ProjectionState("own", 1, "building"))
            assert [s.name for s in tx.projection_states("own")] == ["own"]
            tx.park_event(letter(last, "own"))
            assert [d.projection for d in tx.dead_letters("own")] == ["own"]
            tx.delete_dead_letter("own", 1, last.position)
            assert tx.dead_letters("own") == []
            tx.park_event(letter(last, "own"))
        assert store.stream_info(stream).version == 3

    def test_a_conflict_inside_fails_the_transaction(self, store: EventStore) -> None:
        taken, other = new_stream("txc"), new_stream("txc")
        store.append(taken, [event()])
        with pytest.raises(WrongExpectedVersionError) as caught, transaction(store) as tx:  # noqa: PT012
            tx.append(other, [event()], NO_STREAM)
            tx.save_checkpoint("tx-conflict", tx.read_stream(other)[0].checkpoint)
            tx.append(taken, [event()], NO_STREAM)
        assert caught.value.actual == 1
        assert store.stream_info(other).version == 0
        assert store.stream_info(taken).version == 1
        if "checkpoints" in capabilities(store):
            assert face_of(store).load_checkpoint("tx-conflict") is None

    def test_store_append_beside_its_own_transaction_never_deadlocks(self, store: EventStore) -> None:
        """``store.append`` while the same thread (or task) has a transaction open either
        is refused with a clear error (SQLite, memory: one writer, which the transaction
        holds) or commits on its own, apart from the transaction (PostgreSQL: another
        connection). It never waits for itself."""
        stream = new_stream("txn")
        if isinstance(store, BlockingStore):
            outcome = run(store, _append_inside_async(store.async_store, stream))
        else:
            outcome = _append_inside_sync(store, stream)
        assert outcome == self.append_beside_own_transaction, outcome
        assert store.stream_info(stream).version == (0 if outcome == "refused" else 1)

    def test_execute_runs_sql_in_the_transaction(self, store: EventStore) -> None:
        style = _paramstyle(store)
        if style is None:
            pytest.skip("this store's transactions run no SQL")
        mark = "?" if style == "qmark" else "%s"
        table = f"chronik_conformance_{uuid.uuid4().hex[:10]}"
        stream = new_stream("sql")
        with transaction(store) as tx:
            tx.execute(f"CREATE TABLE {table} (k VARCHAR(40) PRIMARY KEY, n INTEGER)")
        try:
            with pytest.raises(RuntimeError), transaction(store) as tx:  # noqa: PT012
                tx.execute(f"INSERT INTO {table} (k, n) VALUES ({mark}, {mark})", ("a", 1))
                tx.append(stream, [event()])
                raise RuntimeError("rolled back")
            with transaction(store) as tx:
                assert tx.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] == 0
                tx.execute(f"INSERT INTO {table} (k, n) VALUES ({mark}, {mark})", ("b", 2))
                tx.append(stream, [event()])
                rows = tx.execute(f"SELECT k, n FROM {table} WHERE n = {mark}", (2,)).fetchall()
                assert [tuple(r) for r in rows] == [("b", 2)]
            with transaction(store) as tx:
                rows = tx.execute(f"SELECT k, n FROM {table}").fetchall()
                assert [tuple(r) for r in rows] == [("b", 2)]
            assert store.stream_info(stream).version == 1
        finally:
            with transaction(store) as tx:
                tx.execute(f"DROP TABLE {table}")

    def test_execute_takes_named_parameters(self, store: EventStore) -> None:
        """``:name`` with a dict is the portable style: the same statement on every SQL store,
        with quoted text, ``%`` signs and a missing parameter handled alike."""
        if _paramstyle(store) is None:
            pytest.skip("this store's transactions run no SQL")
        table = f"chronik_conformance_{uuid.uuid4().hex[:10]}"
        with transaction(store) as tx:
            tx.execute(f"CREATE TABLE {table} (k VARCHAR(40) PRIMARY KEY, n INTEGER, note VARCHAR(40))")
        try:
            with transaction(store) as tx:
                tx.execute(f"INSERT INTO {table} VALUES (:k, :n, '100% :kept')", {"k": "a", "n": 1})
                with pytest.raises(InvalidInputError, match=":n"):
                    tx.execute(f"INSERT INTO {table} VALUES (:k, :n, NULL)", {"k": "b"})
            with transaction(store) as tx:
                rows = tx.execute(f"SELECT k, n, note FROM {table} WHERE n = :n", {"n": 1}).fetchall()
                assert [tuple(r) for r in rows] == [("a", 1, "100% :kept")]
        finally:
            with transaction(store) as tx:
                tx.execute(f"DROP TABLE {table}")


def _append_inside_sync(store: EventStore, stream: str) -> str:
    """Append with the store while this thread's transaction is open, in a thread of
    its own so that a deadlock fails the test instead of hanging it."""
    outcome: list[str] = []

    def attempt() -> None:
        try:
            with transaction(store):
                try:
                    store.append(stream, [NewEvent("Inside", {})])
                    outcome.append("accepted")
                except InvalidInputError:
                    outcome.append("refused")
                except ChronikError as err:
                    outcome.append(f"failed otherwise: {err!r}")
        except BaseException as err:
            outcome.append(f"the transaction failed: {err!r}")

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(PATIENCE)
    if thread.is_alive():
        return "deadlock: store.append inside the transaction never returned"
    return outcome[0]


async def _append_inside_async(store: Any, stream: str) -> str:
    """The asyncio face: the same task appends while its transaction is open."""

    async def attempt() -> str:
        async with store.transaction():
            try:
                await store.append(stream, [NewEvent("Inside", {})])
            except InvalidInputError:
                return "refused"
            except ChronikError as err:
                return f"failed otherwise: {err!r}"
            return "accepted"

    try:
        return await asyncio.wait_for(attempt(), PATIENCE)
    except TimeoutError:
        return "deadlock: store.append inside the transaction never returned"
