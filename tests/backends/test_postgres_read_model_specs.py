"""ProjectionSpec on PostgreSQL: a projection is tested on the backend it is written for, in a
fresh schema that is dropped afterwards."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, select, text

from chronik import NewEvent, RecordedEvent
from chronik.projections import Projection, SQLAlchemyTarget
from chronik.store import StoreTransaction
from chronik.testing.projections import ProjectionSpec

pytestmark = pytest.mark.postgres

GIVEN = (
    ("order-1", NewEvent("OrderPlaced", {"total": 30})),
    ("order-2", NewEvent("OrderPlaced", {"total": 12})),
    ("order-1", NewEvent("OrderPlaced", {"total": 5})),
)
EXPECTED = [("order-1", 35), ("order-2", 12)]
seen_schemas: list[str] = []


def _create(tx: StoreTransaction) -> None:
    tx.execute("CREATE TABLE totals (id text PRIMARY KEY, total int NOT NULL, last bigint NOT NULL)")


def _placed(event: RecordedEvent, tx: StoreTransaction) -> None:
    # PostgreSQL's own style (%s, ::casts, GREATEST): this fails on SQLite, where specs used to run.
    tx.execute(
        "INSERT INTO totals AS t VALUES (%s, %s::int, %s) ON CONFLICT (id) DO UPDATE "
        "SET total = t.total + excluded.total, last = excluded.last WHERE t.last < excluded.last",
        (event.stream_id, event.data["total"], event.position),
    )


def _read(tx: StoreTransaction) -> list[tuple[Any, ...]]:
    seen_schemas.append(tx.execute("SELECT current_schema()").fetchall()[0][0])
    return [tuple(row) for row in tx.execute("SELECT id, total FROM totals ORDER BY id").fetchall()]


def _exists(url: str, schema: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None and row[0] == 1


def test_a_postgresql_projection_runs_on_postgresql(postgres_url: str) -> None:
    seen_schemas.clear()
    spec = ProjectionSpec(
        Projection("totals", {"OrderPlaced": _placed}, setup=_create), _read, url=postgres_url
    )
    assert spec.given(*GIVEN).then(EXPECTED) == EXPECTED
    assert seen_schemas and all(s.startswith("chronik_spec_") for s in seen_schemas)
    assert not any(_exists(postgres_url, schema) for schema in set(seen_schemas)), (
        "the schema was left behind"
    )


metadata = MetaData()
totals = Table("sa_totals", metadata, Column("id", String(40), primary_key=True), Column("total", Integer))


def _placed_sa(event: RecordedEvent, conn: Connection) -> None:
    conn.execute(
        text("INSERT INTO sa_totals VALUES (:id, :total) ON CONFLICT (id) DO UPDATE SET total = :total"),
        {"id": event.stream_id, "total": event.data["total"]},
    )


def _rows(conn: Connection) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(select(totals).order_by(totals.c.id))]


def test_a_sqlalchemy_projection_on_postgresql(postgres_url: str) -> None:
    spec = ProjectionSpec(
        Projection("sa_totals", {"OrderPlaced": _placed_sa}),
        _rows,
        url=postgres_url,
        target=lambda store: SQLAlchemyTarget(metadata, store),
    )
    assert spec.given(*GIVEN).then([("order-1", 5), ("order-2", 12)]) == [("order-1", 5), ("order-2", 12)]
