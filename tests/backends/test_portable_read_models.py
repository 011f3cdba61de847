"""One read model in SQL, written once, on SQLite and on PostgreSQL, sync and asyncio.

Handlers use named parameters (``:name`` with a dict), which both backends take; on
PostgreSQL the tables a projection creates without naming a schema land in the
store's own schema (or in ``read_model_schema``), never in ``public``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest

import chronik
from chronik import NewEvent, RecordedEvent
from chronik.errors import ConfigurationError, InvalidInputError
from chronik.projections import AsyncProjectionRunner, Projection, ProjectionRunner
from chronik.store import AsyncStoreTransaction, StoreTransaction, Transactional

CREATE = (
    "CREATE TABLE IF NOT EXISTS order_totals "
    "(id VARCHAR(40) PRIMARY KEY, customer VARCHAR(40), total INTEGER, note VARCHAR(40))"
)
UPSERT = (
    "INSERT INTO order_totals (id, customer, total, note) VALUES (:id, :customer, :total, '100% :kept') "
    "ON CONFLICT (id) DO UPDATE SET total = order_totals.total + excluded.total"
)


def _params(event: RecordedEvent) -> dict[str, Any]:
    return {"id": event.stream_id, "customer": event.data["customer"], "total": event.data["total"]}


def setup(tx: StoreTransaction) -> None:
    tx.execute(CREATE)


def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
    tx.execute(UPSERT, _params(event))


async def setup_async(tx: AsyncStoreTransaction) -> None:
    await tx.execute(CREATE)


async def placed_async(event: RecordedEvent, tx: AsyncStoreTransaction) -> None:
    await tx.execute(UPSERT, _params(event))


totals = Projection("order_totals", {"OrderPlaced": placed}, setup=setup)
totals_async = Projection("order_totals", {"OrderPlaced": placed_async}, setup=setup_async)
EVENTS = [("order-1", "ada", 30), ("order-2", "grace", 12), ("order-1", "ada", 5)]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    url: str = request.getfixturevalue("postgres_store_url")
    return url


def _append(store: Any) -> None:
    for stream_id, customer, total in EVENTS:
        store.append(stream_id, [NewEvent("OrderPlaced", {"customer": customer, "total": total})])


def _read(store: Any) -> list[tuple[Any, ...]]:
    assert isinstance(store, Transactional)
    with store.transaction() as tx:
        query = "SELECT id, total, note FROM order_totals WHERE total >= :least ORDER BY id"
        rows = tx.execute(query, {"least": 0})
        return [tuple(row) for row in rows.fetchall()]


EXPECTED = [("order-1", 35, "100% :kept"), ("order-2", 12, "100% :kept")]


def test_one_projection_runs_unchanged_on_both_backends(store_url: str) -> None:
    with chronik.connect(store_url) as store:
        _append(store)
        assert ProjectionRunner(store, totals).run_until_caught_up() == 3
        assert _read(store) == EXPECTED


def test_its_asyncio_twin_too(store_url: str) -> None:
    async def run() -> None:
        async with chronik.connect_async(store_url) as store:
            for stream_id, customer, total in EVENTS:
                event = NewEvent("OrderPlaced", {"customer": customer, "total": total})
                await store.append(stream_id, [event])
            assert await AsyncProjectionRunner(store, totals_async).run_until_caught_up() == 3

    asyncio.run(run())
    with chronik.connect(store_url) as store:
        assert _read(store) == EXPECTED


def test_a_missing_parameter_is_named_and_nothing_is_written(store_url: str) -> None:
    with chronik.connect(store_url) as store:
        assert isinstance(store, Transactional)
        with store.transaction() as tx:
            tx.execute(CREATE)
        with pytest.raises(InvalidInputError, match=":customer"), store.transaction() as tx:
            tx.execute(UPSERT, {"id": "order-9", "total": 1})
        with store.transaction() as tx_:
            sql: Any = tx_  # executemany: both SQL stores have it (not the Protocol)
            sql.executemany(UPSERT, [{"id": "order-8", "customer": "ada", "total": 1}])
            with pytest.raises(InvalidInputError, match=":total"):
                sql.executemany(UPSERT, [{"id": "order-9", "customer": "ada"}])
        assert _read(store) == [("order-8", 1, "100% :kept")]


# -- PostgreSQL: where the tables go --------------------------------------------------------


def _schemas_of(url: str, table: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = %s", (table,)
        ).fetchall()
    return sorted(row[0] for row in rows)


@pytest.mark.postgres
def test_read_model_tables_land_in_the_stores_schema(postgres_url: str, postgres_store_url: str) -> None:
    schema = postgres_store_url.rpartition("schema=")[2]
    table = f"totals_{uuid.uuid4().hex[:10]}"
    with chronik.connect(postgres_store_url) as store:
        assert isinstance(store, Transactional)
        with store.transaction() as tx:
            tx.execute(f"CREATE TABLE {table} (id text PRIMARY KEY)")
            tx.execute(f"INSERT INTO {table} VALUES (:id)", {"id": "a"})
        with store.transaction() as tx:  # another transaction, maybe another connection
            assert tx.execute(f"SELECT id FROM {table}").fetchall() == [("a",)]
    assert _schemas_of(postgres_url, table) == [schema]


@pytest.mark.postgres
def test_read_model_schema_puts_them_elsewhere(
    postgres_url: str, postgres_store_url: str, new_postgres_schema: Any
) -> None:
    elsewhere = new_postgres_schema()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {elsewhere}")
    table = f"totals_{uuid.uuid4().hex[:10]}"
    with chronik.connect(f"{postgres_store_url}&read_model_schema={elsewhere}") as store:
        assert isinstance(store, Transactional)
        with store.transaction() as tx:
            tx.execute(f"CREATE TABLE {table} (id text PRIMARY KEY)")
    assert _schemas_of(postgres_url, table) == [elsewhere]


@pytest.mark.postgres
def test_a_read_model_schema_that_does_not_exist_is_refused(postgres_store_url: str) -> None:
    missing = f"chronik_test_missing_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConfigurationError, match=f"read_model_schema '{missing}' does not exist"):
        chronik.connect(postgres_store_url, read_model_schema=missing)
    with pytest.raises(ConfigurationError, match="read_model_schema"):
        chronik.connect(postgres_store_url, read_model_schema="Not A Name")


@pytest.mark.postgres
def test_asyncio_tables_land_in_the_stores_schema_too(postgres_url: str, postgres_store_url: str) -> None:
    schema = postgres_store_url.rpartition("schema=")[2]
    table = f"totals_{uuid.uuid4().hex[:10]}"

    async def run() -> None:
        async with chronik.connect_async(postgres_store_url) as store, store.transaction() as tx:
            await tx.execute(f"CREATE TABLE {table} (id text PRIMARY KEY)")

    asyncio.run(run())
    assert _schemas_of(postgres_url, table) == [schema]
