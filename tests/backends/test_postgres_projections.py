"""Projections on PostgreSQL: read models committed with their checkpoint, failure policies
and dead letters, blue/green rebuilds, inline projections in step with concurrent writers
(threads and processes, with and without the projection), and process managers.

The PostgreSQL twins of ``tests/integration/test_projections_sqlite.py``, ``test_saga.py``
and ``test_read_model_examples.py``, where they apply; projection state, dead letters,
append hooks and inline projections as every store has them are in the conformance
suite (``test_postgres_conformance.py``). Each test has a schema of its own;
read models live in it, and handlers use ``%s`` placeholders.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

import chronik
from chronik import Checkpoint, ConcurrencyError, NewEvent, OperationalError, RecordedEvent
from chronik.errors import InvalidCheckpointError, PendingMigrationsError
from chronik.examples import registry
from chronik.examples.orders import AddItem, CreateOrder, SubmitOrder, order_decider
from chronik.examples.saga import WAREHOUSE, AddStock, checkout_saga, warehouse_decider
from chronik.handling import CommandHandler
from chronik.process_managers import ProcessContext, ProcessManager, process_manager_runner
from chronik.projections import (
    FailedEvent,
    FailurePolicy,
    Projection,
    ProjectionFailedError,
    ProjectionRunner,
    ProjectionState,
    ProjectionVersionError,
    active_version,
    add_inline_projection,
    blue_green,
    projection_lag,
)
from chronik.store import ProjectionStateStore, StoreTransaction
from chronik.stores.postgres import (
    PostgresEventStore,
    check_schema,
)

pytestmark = pytest.mark.postgres

PATIENCE = 120.0  # seconds before a stalled part fails the test; never reached when correct
WRITERS = Path(__file__).with_name("_inline_writers.py")


def _writers() -> ModuleType:
    """``_inline_writers.py``, which also runs as the writer processes."""
    spec = importlib.util.spec_from_file_location("_inline_writers", WRITERS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_inline_writers", module)
    spec.loader.exec_module(module)
    return module


def _open(url: str, **options: Any) -> PostgresEventStore:
    # Appends running inline projections wait for every older write transaction of
    # the server, which other test runs may hold open for a while.
    options.setdefault("visibility_timeout", PATIENCE)
    store = chronik.connect(url, registry=registry, **options)
    assert isinstance(store, PostgresEventStore)
    return store


@pytest.fixture
def store(postgres_store_url: str) -> Iterator[PostgresEventStore]:
    store = _open(postgres_store_url)
    yield store
    store.close()


def _query(url: str, statement: str) -> list[tuple[Any, ...]]:
    """Run ``statement`` on a connection of its own to the server of the store at ``url``."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "schema"])
    with psycopg.connect(urlunsplit(parts._replace(query=query)), autocommit=True) as conn:
        cursor = conn.execute(statement.encode())
        return cursor.fetchall() if cursor.description else []


def _counter(schema: str, name: str = "counter") -> Projection[StoreTransaction]:
    """Deliberately not idempotent: only exactly-once delivery keeps it right."""
    table = f"{schema}.{name}"

    def setup(tx: StoreTransaction) -> None:
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (stream_id text PRIMARY KEY, n integer, total integer)"
        )

    def teardown(tx: StoreTransaction) -> None:
        tx.execute(f"DROP TABLE IF EXISTS {table}")

    def added(event: RecordedEvent, tx: StoreTransaction) -> None:
        if event.data["amount"] == 13:
            raise ValueError("thirteen")
        tx.execute(
            f"INSERT INTO {table} AS t VALUES (%s, 1, %s) ON CONFLICT (stream_id) DO UPDATE "
            "SET n = t.n + 1, total = t.total + excluded.total",
            (event.stream_id, event.data["amount"]),
        )

    return Projection(name, {"Added": added}, setup=setup, teardown=teardown)


def _rows(url: str, table: str) -> dict[str, tuple[int, int]]:
    return {r[0]: (r[1], r[2]) for r in _query(url, f"SELECT stream_id, n, total FROM {table}")}


def _add(store: chronik.EventStore, stream: str, *amounts: int) -> None:
    store.append(stream, [NewEvent("Added", {"amount": a}) for a in amounts])


# -- a runner with its read model in the database -------------------------------------


def test_writes_and_checkpoint_commit_together(postgres_store_url: str, postgres_schema: str) -> None:
    assert isinstance(_open(postgres_store_url), ProjectionStateStore)
    store = _open(postgres_store_url)
    _add(store, "acc-1", 1, 2, 3)
    _add(store, "acc-2", 10)
    runner = ProjectionRunner(store, _counter(postgres_schema), batch_size=2)
    assert runner.lag().events == 4
    assert runner.run_until_caught_up() == 4
    assert _rows(postgres_store_url, f"{postgres_schema}.counter") == {"acc-1": (3, 6), "acc-2": (1, 10)}
    assert runner.lag().events == 0
    store.close()
    # A new process (store) resumes: nothing twice.
    store = _open(postgres_store_url)
    _add(store, "acc-2", 5)
    assert projection_lag(store, _counter(postgres_schema)).events == 1
    assert ProjectionRunner(store, _counter(postgres_schema)).run_until_caught_up() == 1
    assert _rows(postgres_store_url, f"{postgres_schema}.counter") == {"acc-1": (3, 6), "acc-2": (2, 15)}
    [state] = store.projection_states("counter")
    assert (state.status, state.active) == ("live", True)
    assert store.load_checkpoint("projection:counter:v1") == store.head()
    store.close()


def test_failed_batch_rolls_back_and_parks_in_the_same_transaction(
    postgres_store_url: str, postgres_schema: str
) -> None:
    store = _open(postgres_store_url)
    _add(store, "acc-1", 1, 13, 2)
    policy = FailurePolicy(retries=1, backoff=0.0, on_failure="park")
    runner = ProjectionRunner(store, _counter(postgres_schema), policy=policy)
    runner.run_until_caught_up()
    assert runner.parked == 1
    # The batch's first try left nothing behind; the event parked, the others applied once.
    assert _rows(postgres_store_url, f"{postgres_schema}.counter") == {"acc-1": (2, 3)}
    store.close()
    store = _open(postgres_store_url)
    [letter] = store.dead_letters()
    failing = store.read_stream("acc-1")[1]
    assert (letter.projection, letter.projection_version) == ("counter", 1)
    assert letter.event == FailedEvent(
        "acc-1", 2, failing.position, failing.checkpoint, failing.event_id, "Added", "ValueError: thirteen", 1
    )
    assert store.load_checkpoint("projection:counter:v1") == store.head()
    store.park_event(letter)  # a runner that crashed between parking and its checkpoint
    assert store.dead_letters("counter") == [letter]
    store.close()


def test_stop_policy_records_the_failure(store: PostgresEventStore, postgres_schema: str) -> None:
    _add(store, "acc-1", 1, 13)
    first, failing = store.read_stream("acc-1")
    runner = ProjectionRunner(store, _counter(postgres_schema), policy=FailurePolicy(retries=0))
    with pytest.raises(ProjectionFailedError, match="'acc-1' version 2"):
        runner.run_until_caught_up()
    [state] = store.projection_states()
    assert state.status == "failed"
    assert state.failure is not None
    assert (state.failure.position, state.failure.checkpoint) == (failing.position, failing.checkpoint)
    assert store.load_checkpoint("projection:counter:v1") == first.checkpoint
    assert store.dead_letters() == []


def test_checkpoint_from_another_schema_is_refused(
    postgres_url: str, new_postgres_schema: Callable[[], str], postgres_schema: str
) -> None:
    # Checkpoints of one server compare across schemas; one ahead of the head is refused.
    small = _open(postgres_url, schema=new_postgres_schema())
    _add(small, "acc-1", 1)
    big = _open(postgres_url, schema=postgres_schema)
    _add(big, "acc-1", *range(20, 40))
    ProjectionRunner(big, _counter(postgres_schema)).run_until_caught_up()
    checkpoint = big.load_checkpoint("projection:counter:v1")
    big.close()
    assert checkpoint is not None
    small.save_checkpoint("projection:counter:v1", checkpoint)
    with pytest.raises(InvalidCheckpointError, match="ahead of this store's head"):
        ProjectionRunner(small, _counter(postgres_schema)).run_until_caught_up()
    # And one of another kind of store is refused wherever it is given.
    with pytest.raises(InvalidCheckpointError):
        small.save_checkpoint("projection:counter:v1", Checkpoint("sqlite", (3,)))
    small.close()


def test_reset_rebuilds_one_projection(
    store: PostgresEventStore, postgres_store_url: str, postgres_schema: str
) -> None:
    _add(store, "acc-1", 1, 2)
    runner = ProjectionRunner(store, _counter(postgres_schema))
    runner.run_until_caught_up()
    other = ProjectionRunner(store, _counter(postgres_schema, "other"))
    other.run_until_caught_up()
    with store.transaction() as tx:
        tx.execute(f"UPDATE {postgres_schema}.counter SET n = 99")
    assert runner.rebuild() == 2
    assert _rows(postgres_store_url, f"{postgres_schema}.counter") == {"acc-1": (2, 3)}
    assert _rows(postgres_store_url, f"{postgres_schema}.other") == {"acc-1": (2, 3)}
    assert other.lag().events == 0


def _totals(schema: str, version: int) -> Projection[StoreTransaction]:
    """Totals per stream in a table per version, served through a view."""
    table = f"{schema}.totals_v{version}"

    def setup(tx: StoreTransaction) -> None:
        columns = "stream_id text PRIMARY KEY, total integer" + (", events integer" if version > 1 else "")
        tx.execute(f"CREATE TABLE {table} ({columns})")

    def teardown(tx: StoreTransaction) -> None:
        tx.execute(f"DROP TABLE IF EXISTS {table}")

    def activate(tx: StoreTransaction) -> None:
        tx.execute(f"DROP VIEW IF EXISTS {schema}.totals")
        tx.execute(f"CREATE VIEW {schema}.totals AS SELECT * FROM {table}")

    def added(event: RecordedEvent, tx: StoreTransaction) -> None:
        if version == 1:
            tx.execute(
                f"INSERT INTO {table} AS t VALUES (%s, %s) ON CONFLICT (stream_id) "
                "DO UPDATE SET total = t.total + excluded.total",
                (event.stream_id, event.data["amount"]),
            )
        else:
            tx.execute(
                f"INSERT INTO {table} AS t VALUES (%s, %s, 1) ON CONFLICT (stream_id) "
                "DO UPDATE SET total = t.total + excluded.total, events = t.events + 1",
                (event.stream_id, event.data["amount"]),
            )

    return Projection(
        "totals", {"Added": added}, version=version, setup=setup, teardown=teardown, activate=activate
    )


def test_blue_green_rebuild(store: PostgresEventStore, postgres_store_url: str, postgres_schema: str) -> None:
    view = f"SELECT * FROM {postgres_schema}.totals ORDER BY stream_id"
    _add(store, "acc-1", 1, 2)
    _add(store, "acc-2", 5)
    v1, v2 = _totals(postgres_schema, 1), _totals(postgres_schema, 2)
    old = ProjectionRunner(store, v1)
    old.run_until_caught_up()
    assert active_version(store, "totals") == 1
    assert _query(postgres_store_url, view) == [("acc-1", 3), ("acc-2", 5)]

    # v2 builds beside v1, which keeps serving until v2 is switched in.
    _add(store, "acc-1", 10)
    new = ProjectionRunner(store, v2)
    assert new.run_until_caught_up() == 4
    assert active_version(store, "totals") == 1
    assert _query(postgres_store_url, view) == [("acc-1", 3), ("acc-2", 5)]
    assert blue_green(store, v1, v2).checkpoint == store.head()
    assert active_version(store, "totals") == 2
    assert _query(postgres_store_url, view) == [("acc-1", 13, 3), ("acc-2", 5, 1)]
    tables = _query(
        postgres_store_url, f"SELECT tablename FROM pg_tables WHERE schemaname = '{postgres_schema}'"
    )
    assert ("totals_v1",) not in tables
    assert {(s.version, s.status, s.active) for s in store.projection_states("totals")} == {
        (1, "retired", False),
        (2, "live", True),
    }
    assert store.load_checkpoint("projection:totals:v1") is None
    with pytest.raises(ProjectionVersionError, match="replaced by v2"):
        old.run_until_caught_up()


# -- projection state and dead letters ----------------------------------------------------


def test_a_schema_of_the_previous_migration_is_upgraded(postgres_url: str, postgres_schema: str) -> None:
    _open(postgres_url, schema=postgres_schema).close()
    s = postgres_schema
    _query(
        postgres_url,
        f"DROP TABLE {s}.projections, {s}.dead_letters; "
        f"DELETE FROM {s}.migrations WHERE name = '0002_projections'",
    )
    assert check_schema(postgres_url, schema=s) == ["0002_projections"]
    with pytest.raises(PendingMigrationsError, match="0002_projections"):
        _open(postgres_url, schema=s, migrate=False)
    with contextlib.closing(_open(postgres_url, schema=s)) as store:
        store.save_projection_state(ProjectionState("a", 1, "live"))
        assert [p.name for p in store.projection_states()] == ["a"]
    assert check_schema(postgres_url, schema=s) == []


# -- inline projections -------------------------------------------------------------------


def _applied(url: str, schema: str) -> list[int]:
    return [r[0] for r in _query(url, f"SELECT position FROM {schema}.tally_applied ORDER BY position")]


def _in_step(store: PostgresEventStore, url: str, schema: str) -> list[RecordedEvent]:
    """Check that the tally projection handled every event of the log once; return the log."""
    log = list(store.read_all())
    assert _applied(url, schema) == sorted(e.position for e in log)
    versions = dict(_query(url, f"SELECT stream_id, version FROM {schema}.tally_streams"))
    assert versions == {e.stream_id: store.stream_info(e.stream_id).version for e in log}
    assert store.load_checkpoint("projection:tally:v1") == store.head() == log[-1].checkpoint
    return log


def _added(n: int = 1) -> list[NewEvent]:
    return [NewEvent("Added", {"n": i}) for i in range(n)]


def test_a_hooked_append_waits_for_an_older_writer_without_the_hook(
    postgres_store_url: str, postgres_schema: str
) -> None:
    hooked, plain = _open(postgres_store_url), _open(postgres_store_url)
    add_inline_projection(hooked, _writers().tally(postgres_schema))
    errors: list[BaseException] = []

    def append() -> None:
        try:
            hooked.append("tally-young", _added())
        except BaseException as err:
            errors.append(err)

    with plain.transaction() as older:
        older.append("tally-old", _added(2))  # it has its transaction id; it commits below
        young = threading.Thread(target=append)
        young.start()
        # Never finished while `older` runs: its events come first in the log, so the
        # young append would otherwise move the checkpoint past them before they exist.
        young.join(0.3)
        assert young.is_alive()
    young.join(PATIENCE)
    assert errors == []
    log = _in_step(hooked, postgres_store_url, postgres_schema)
    assert [e.stream_id for e in log] == ["tally-old", "tally-old", "tally-young"]
    hooked.close()
    plain.close()


def test_a_hooked_append_gives_up_on_an_older_writer_after_visibility_timeout(
    postgres_store_url: str, postgres_schema: str
) -> None:
    hooked, plain = _open(postgres_store_url), _open(postgres_store_url)
    add_inline_projection(hooked, _writers().tally(postgres_schema))
    patient = hooked.config
    with plain.transaction() as older:
        older.append("tally-old", _added())
        # Impatient only now, whatever other writers of the server were doing before.
        hooked.config = dataclasses.replace(patient, visibility_timeout=0.2)
        with pytest.raises(OperationalError, match="older than this append"):
            hooked.append("tally-young", _added())
    hooked.config = patient
    assert hooked.stream_info("tally-young").version == 0  # nothing was written
    hooked.append("tally-young", _added())
    assert [e.stream_id for e in _in_step(hooked, postgres_store_url, postgres_schema)] == [
        "tally-old",
        "tally-young",
    ]
    hooked.close()
    plain.close()


def test_a_transaction_that_wrote_before_appending(postgres_store_url: str, postgres_schema: str) -> None:
    hooked, plain = _open(postgres_store_url), _open(postgres_store_url)
    add_inline_projection(hooked, _writers().tally(postgres_schema))
    audit = f"{postgres_schema}.audit"
    with hooked.transaction() as tx:
        tx.execute(f"CREATE TABLE {audit} (note text)")  # it has a transaction id now
        tx.append("tally-a", _added())
    _in_step(hooked, postgres_store_url, postgres_schema)

    # Younger events committed meanwhile: its own would land behind them.
    with pytest.raises(ConcurrencyError, match="younger"), hooked.transaction() as tx:
        tx.execute(f"INSERT INTO {audit} VALUES ('refused')")
        plain.append("tally-b", _added())
        tx.append("tally-a", _added())

    # Another append running the projection holds the lock: it does not wait for it
    # with an id (the holder might be waiting for it), it fails.
    with hooked.transaction() as holder:
        holder.append("tally-c", _added())
        with pytest.raises(ConcurrencyError, match="in progress"), hooked.transaction() as tx:
            tx.execute(f"INSERT INTO {audit} VALUES ('refused')")
            tx.append("tally-a", _added())
    assert _query(postgres_store_url, f"SELECT * FROM {audit}") == []
    hooked.append("tally-a", _added())
    log = _in_step(hooked, postgres_store_url, postgres_schema)
    assert [e.stream_id for e in log] == ["tally-a", "tally-b", "tally-c", "tally-a"]
    hooked.close()
    plain.close()


def test_inline_projection_stays_in_step_with_concurrent_writers(
    postgres_store_url: str, postgres_schema: str
) -> None:
    """Threads and processes run the projection; other threads write without it."""
    writers = _writers()
    hooked, plain = _open(postgres_store_url), _open(postgres_store_url)
    add_inline_projection(hooked, writers.tally(postgres_schema))
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(WRITERS),
                f"{postgres_store_url}&visibility_timeout={PATIENCE}",
                f"p{i}",
                "30",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    done = threading.Event()
    outcomes: dict[str, Any] = {}

    def write(store: PostgresEventStore, tag: str, linger: float = 0.0) -> None:
        # Until the processes are done, so that everyone writes at once.
        outcomes[tag] = writers.write(store, tag, batches=15, until=done, most=300, linger=linger)

    threads = [threading.Thread(target=write, args=(hooked, f"t{i}")) for i in range(4)]
    # Without the projection: one quick, one slow to commit (the events a hooked append
    # must not move its checkpoint past before they exist).
    threads += [threading.Thread(target=write, args=(plain, f"u{i}", 0.005 * i)) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        finished = [p.communicate(timeout=PATIENCE) for p in processes]
    finally:
        done.set()
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
        for thread in threads:
            thread.join(PATIENCE)
    for process, (out, err) in zip(processes, finished, strict=True):
        assert process.returncode == 0, err
        result = json.loads(out)
        outcomes[f"process {process.pid}"] = writers.Outcome(result["committed"], result["errors"])
    assert {tag: o.errors for tag, o in outcomes.items() if o.errors} == {}

    # The last writers may have been without the projection: one more append with it
    # catches up on their events, then the read model matches the log exactly.
    hooked.append("tally-last", _added())
    log = _in_step(hooked, postgres_store_url, postgres_schema)
    committed = {i for o in outcomes.values() for i in o.committed}
    assert {str(e.event_id) for e in log[:-1]} == committed
    assert len(log) == len(committed) + 1
    hooked.close()
    plain.close()


# -- process managers ------------------------------------------------------------------------


def _order(store: chronik.EventStore, n: int, customer: str, sku: str, quantity: int, price: int) -> None:
    orders = CommandHandler(store, order_decider)
    meta = {"correlation_id": f"checkout-{n}"}
    orders.handle(f"order-{n}", CreateOrder(customer), metadata=meta)
    orders.handle(f"order-{n}", AddItem(sku, quantity, price), metadata=meta)
    orders.handle(f"order-{n}", SubmitOrder(), metadata=meta)


def test_checkout_saga_commits_its_checkpoint_with_what_it_appends(store: PostgresEventStore) -> None:
    stock = CommandHandler(store, warehouse_decider)
    stock.handle(WAREHOUSE, AddStock("book", 10))
    _order(store, 1, "ada", "book", 2, 1250)  # confirmed
    _order(store, 2, "grace", "lamp", 1, 4200)  # nothing in stock: cancelled
    _order(store, 3, "linus", "book", 1, 600_00)  # over the credit limit: declined, stock given back
    runner = process_manager_runner(store, checkout_saga)
    # Each run handles the log up to its head as of the call; the reactions append
    # the next steps after it (SQLite happens to show them to the same run, PostgreSQL
    # may hold them back while another transaction of the server runs).
    while runner.run_until_caught_up():
        pass
    outcome = {s: [e.type for e in store.read_stream(s)] for s in ("checkout-1", "checkout-2", "checkout-3")}
    assert outcome == {
        "checkout-1": ["OrderConfirmed"],
        "checkout-2": ["OrderCancelled"],
        "checkout-3": ["OrderCancelled"],
    }
    on_hand = warehouse_decider.fold(e.data for e in store.read_stream(WAREHOUSE)).on_hand
    assert dict(on_hand) == {"book": 8}
    chain = [e.type for e in store.read_all() if e.metadata.get("correlation_id") == "checkout-3"]
    assert chain[3:] == ["StockReserved", "PaymentDeclined", "StockReleased", "OrderCancelled"]
    assert store.load_checkpoint("projection:checkout:v1") == store.head()
    # Running again changes nothing: every reaction happened exactly once.
    before = [e.event_id for e in store.read_all()]
    assert process_manager_runner(store, checkout_saga).run_until_caught_up() == 0
    assert [e.event_id for e in store.read_all()] == before


def test_a_reaction_that_fails_halfway_is_rolled_back_whole(store: PostgresEventStore) -> None:
    store.append("signup-1", [NewEvent("SignedUp", {"name": "ada"})])
    attempts: list[int] = []

    def welcome(event: RecordedEvent, ctx: ProcessContext) -> None:
        ctx.append("mail-1", [NewEvent("WelcomeMailQueued", {"to": event.data["name"]})])
        # Not re-sent on the retry: only the rollback keeps it from being written twice.
        ctx.append("audit-1", [NewEvent("Noted", {"attempt": len(attempts)}, event_id=chronik.uuid7())])
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("the CRM hiccuped")

    manager = ProcessManager("welcome", {"SignedUp": welcome})
    runner = process_manager_runner(store, manager, policy=FailurePolicy(retries=2, backoff=0.0))
    runner.run_until_caught_up()
    assert len(attempts) == 2
    assert [e.type for e in store.read_stream("mail-1")] == ["WelcomeMailQueued"]
    assert [e.data["attempt"] for e in store.read_stream("audit-1")] == [1]
    assert store.load_checkpoint("projection:welcome:v1") == store.head()
