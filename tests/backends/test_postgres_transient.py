"""PostgreSQL: which errors are transient, and a runner that retries only those.

The errors are real ones from the server: a serialization failure between two
REPEATABLE READ transactions, a row lock not available, a connection terminated
by ``pg_terminate_backend`` (as a restart or failover ends it), a connection
refused, next to a syntax error, a division by zero and a unique violation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import psycopg.errors
import pytest
from psycopg import sql

import chronik
from chronik import NewEvent, RecordedEvent
from chronik.errors import is_transient
from chronik.projections import FailurePolicy, Projection, ProjectionFailedError, ProjectionRunner
from chronik.store import StoreTransaction
from chronik.stores.postgres import PostgresEventStore
from chronik.stores.postgres._common import translate

pytestmark = pytest.mark.postgres

Conn = psycopg.Connection[tuple[Any, ...]]


def _raised(action: Callable[[], object]) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        action()
    return caught.value


@pytest.fixture
def table(postgres_url: str, postgres_schema: str) -> str:
    """``<schema>.stock`` with one row (id 1), in a schema of the test's own."""
    name = f"{postgres_schema}.stock"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(postgres_schema)))
        conn.execute(f"CREATE TABLE {name} (id integer PRIMARY KEY, n integer)")
        conn.execute(f"INSERT INTO {name} VALUES (1, 0)")
    return name


@pytest.fixture
def conns(postgres_url: str) -> Iterator[Callable[..., Conn]]:
    made: list[Conn] = []

    def connect(**options: Any) -> Conn:
        made.append(psycopg.connect(postgres_url, **options))
        return made[-1]

    yield connect
    for conn in made:
        conn.close()


def test_translate_and_is_transient_on_real_server_errors(
    postgres_url: str, table: str, conns: Callable[..., Conn]
) -> None:
    one, two = conns(autocommit=True), conns(autocommit=True)
    errors: dict[str, psycopg.Error] = {
        "syntax": _raised(lambda: one.execute("SELEC 1")),
        "division": _raised(lambda: one.execute("SELECT 1 / 0")),
        "unique": _raised(lambda: one.execute(f"INSERT INTO {table} VALUES (1, 0)")),
    }
    # 40001: both read the row; the other updates and commits; this one's update cannot serialize.
    with one.transaction():
        one.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        one.execute(f"SELECT n FROM {table} WHERE id = 1")
        two.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1")
        errors["serialization"] = _raised(lambda: one.execute(f"UPDATE {table} SET n = n + 1 WHERE id = 1"))
    # 55P03: the row is locked by another transaction and this one will not wait.
    with two.transaction():
        two.execute(f"SELECT n FROM {table} WHERE id = 1 FOR UPDATE")
        errors["lock"] = _raised(lambda: one.execute(f"SELECT n FROM {table} WHERE id = 1 FOR UPDATE NOWAIT"))
    # 57P01 (or no SQLSTATE at all, if the socket closes first): terminated by the server.
    victim = conns(autocommit=True)
    one.execute("SELECT pg_terminate_backend(%s)", (victim.info.backend_pid,))
    errors["terminated"] = _raised(lambda: victim.execute("SELECT 1"))
    errors["refused"] = _raised(lambda: psycopg.connect("postgresql://127.0.0.1:1/test", connect_timeout=5))

    verdicts = {name: (is_transient(err), translate(err, "test").transient) for name, err in errors.items()}
    assert verdicts == {
        "syntax": (False, False),
        "division": (False, False),
        "unique": (False, False),
        "serialization": (True, True),
        "lock": (True, True),
        "terminated": (True, True),
        "refused": (True, True),
    }
    assert (errors["serialization"].sqlstate, errors["lock"].sqlstate) == ("40001", "55P03")
    assert type(translate(errors["lock"], "test")).__name__ == "OperationalError"
    # The codes a server under stress or shutting down answers with, as psycopg raises them.
    for cls in (
        psycopg.errors.DeadlockDetected,
        psycopg.errors.AdminShutdown,
        psycopg.errors.CrashShutdown,
        psycopg.errors.CannotConnectNow,
        psycopg.errors.TooManyConnections,
        psycopg.errors.DiskFull,
        psycopg.errors.ReadOnlySqlTransaction,  # 25006: a failover made this server a standby
        psycopg.errors.QueryCanceled,  # 57014: statement_timeout, pg_cancel_backend
    ):
        assert is_transient(cls("x")) and translate(cls("x"), "test").transient, cls.__name__
    for other in (psycopg.errors.UndefinedTable, psycopg.errors.InvalidTextRepresentation):
        assert not is_transient(other("x")), other.__name__


@pytest.fixture
def store(postgres_store_url: str) -> Iterator[PostgresEventStore]:
    store = chronik.connect(postgres_store_url)
    assert isinstance(store, PostgresEventStore)
    store.append("order-1", [NewEvent("Placed", {})])
    yield store
    store.close()


def test_a_handler_that_finds_a_row_locked_is_retried_and_succeeds(
    store: PostgresEventStore, table: str, conns: Callable[..., Conn]
) -> None:
    blocker = conns()
    blocker.execute(f"SELECT n FROM {table} WHERE id = 1 FOR UPDATE")  # held until it rolls back
    calls: list[int] = []

    def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
        calls.append(event.position)
        try:
            tx.execute(f"UPDATE {table} SET n = n + 1 WHERE id = (SELECT id FROM {table} FOR UPDATE NOWAIT)")
        finally:
            blocker.rollback()  # after the first try: the retry finds the row free

    runner = ProjectionRunner(
        store, Projection("stock", {"Placed": placed}), policy=FailurePolicy(backoff=0.0)
    )
    assert runner.run_until_caught_up() == 1
    assert len(calls) == 2
    with psycopg.connect(blocker.info.dsn) as conn:
        assert conn.execute(f"SELECT n FROM {table}").fetchall() == [(1,)]


def test_a_handler_whose_connection_is_terminated_is_retried_on_another(store: PostgresEventStore) -> None:
    backends: list[int] = []

    def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
        backends.append(tx.execute("SELECT pg_backend_pid()").fetchone()[0])
        if len(backends) == 1:
            tx.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # as a restart would

    runner = ProjectionRunner(
        store, Projection("mail", {"Placed": placed}), policy=FailurePolicy(backoff=0.0)
    )
    assert runner.run_until_caught_up() == 1
    assert len(backends) == 2 and backends[0] != backends[1]
    assert store.load_checkpoint("projection:mail:v1") == store.head()


def test_a_handler_with_an_sql_error_stops_on_its_first_attempt(store: PostgresEventStore) -> None:
    calls: list[int] = []

    def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
        calls.append(event.position)
        tx.execute("INSERT INTO nowhere VALUES (?)", (event.position,))  # SQLite's placeholder

    runner = ProjectionRunner(store, Projection("typo", {"Placed": placed}), policy=FailurePolicy(retries=5))
    with pytest.raises(ProjectionFailedError, match="after 1 attempt") as caught:
        runner.run_until_caught_up()
    assert caught.value.attempts == 1 and calls == [1]
    assert isinstance(caught.value.__cause__, psycopg.Error) and not is_transient(caught.value.__cause__)


def _backend_pid(tx: StoreTransaction) -> int:
    row = tx.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_a_connection_that_refuses_writes_as_a_standby_is_not_given_back_to_the_pool(
    store: PostgresEventStore,
) -> None:
    # A failover leaves the pool with connections to a server that is now read-only
    # (SQLSTATE 25006); reusing them would fail forever. Here one session is made
    # read-only by hand, as a demoted primary's would be.
    pids: list[int] = []
    with pytest.raises(chronik.OperationalError, match="25006") as caught, store.transaction() as tx:
        pids.append(_backend_pid(tx))
        tx.execute("SET TRANSACTION READ ONLY")
        tx.append("order-2", [NewEvent("Placed", {})])
    assert caught.value.transient and is_transient(caught.value)
    with store.transaction() as tx:
        assert _backend_pid(tx) not in pids
        tx.append("order-2", [NewEvent("Placed", {})])
