"""ProjectionSpec with SQL read models: the replay check names itself when it fails, and a
SQLAlchemy-target projection is tested like any other (PostgreSQL: ``tests/backends``)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, insert, select

from chronik import NewEvent, RecordedEvent
from chronik.errors import ConfigurationError
from chronik.projections import Projection, SQLAlchemyTarget
from chronik.store import StoreTransaction
from chronik.testing.projections import ProjectionSpec

GIVEN = (
    ("order-1", NewEvent("OrderPlaced", {"total": 30})),
    ("order-2", NewEvent("OrderPlaced", {"total": 12})),
)


def _create(tx: StoreTransaction) -> None:
    tx.execute("CREATE TABLE totals (id TEXT PRIMARY KEY, total INTEGER)")


def _insert(event: RecordedEvent, tx: StoreTransaction) -> None:  # not idempotent: a second insert fails
    tx.execute(
        "INSERT INTO totals VALUES (:id, :total)", {"id": event.stream_id, "total": event.data["total"]}
    )


def _read(tx: StoreTransaction) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in tx.execute("SELECT id, total FROM totals ORDER BY id").fetchall()]


def test_a_replay_that_raises_says_it_was_the_replay() -> None:
    spec = ProjectionSpec(Projection("totals", {"OrderPlaced": _insert}, setup=_create), _read)
    with pytest.raises(AssertionError, match="replaying the same events failed") as caught:
        spec.given(*GIVEN).then([("order-1", 30), ("order-2", 12)])
    message = str(caught.value)
    assert "'OrderPlaced' at 'order-1' v1" in message and "idempotent" in message
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    # The same handlers pass where they are declared not idempotent.
    lenient = ProjectionSpec(
        Projection("totals", {"OrderPlaced": _insert}, setup=_create), _read, idempotent=False
    )
    assert lenient.given(*GIVEN).then([("order-1", 30), ("order-2", 12)]) == [
        ("order-1", 30),
        ("order-2", 12),
    ]


metadata = MetaData()
totals = Table("sa_totals", metadata, Column("id", String(40), primary_key=True), Column("total", Integer))


def _placed(event: RecordedEvent, conn: Connection) -> None:
    conn.execute(insert(totals).values(id=event.stream_id, total=event.data["total"]))


def _rows(conn: Connection) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(select(totals).order_by(totals.c.id))]


def test_a_sqlalchemy_target_projection() -> None:
    projection = Projection("sa_totals", {"OrderPlaced": _placed})
    spec = ProjectionSpec(
        projection, _rows, target=lambda store: SQLAlchemyTarget(metadata, store), idempotent=False
    )
    assert spec.given(*GIVEN).then([("order-1", 30), ("order-2", 12)]) == [("order-1", 30), ("order-2", 12)]
    strict = ProjectionSpec(projection, _rows, target=lambda store: SQLAlchemyTarget(metadata, store))
    with pytest.raises(AssertionError, match="replaying the same events failed"):
        strict.given(*GIVEN).then([("order-1", 30), ("order-2", 12)])


def test_what_a_spec_cannot_run_on_is_refused() -> None:
    projection = Projection("totals", {"OrderPlaced": _insert})
    with pytest.raises(ConfigurationError, match=r"SQLite file \(url=None\) or .*PostgreSQL"):
        ProjectionSpec(projection, _read, url="mysql://localhost/db")
    with pytest.raises(ConfigurationError, match="a context or a target"):
        both: Any = {"context": dict, "target": lambda store: SQLAlchemyTarget(metadata, store)}
        ProjectionSpec(projection, _read, **both)
