"""A read model in SQLAlchemy Core tables, on SQLite and PostgreSQL, sync and asyncio.

The tables are declared once; the same projection runs on both backends, and its
writes commit with its checkpoint (the crash tests, ``test_projection_crash.py`` and
``test_postgres_projection_crash.py``, kill such runners at random points).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
    update,
)

import chronik
from chronik import NewEvent, RecordedEvent
from chronik.errors import ConfigurationError, ProjectionConflictError
from chronik.events import Checkpoint
from chronik.projections import (
    AsyncProjectionRunner,
    AsyncSQLAlchemyConnection,
    AsyncSQLAlchemyTarget,
    FailurePolicy,
    Projection,
    ProjectionFailedError,
    ProjectionRunner,
    SQLAlchemyTarget,
)

metadata = MetaData()
totals = Table(
    "sa_totals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("customer", String(40), nullable=False),
    Column("total", Integer, nullable=False),
)


def placed(event: RecordedEvent, conn: Connection) -> None:
    bumped = conn.execute(
        update(totals)
        .where(totals.c.id == event.stream_id)
        .values(total=totals.c.total + event.data["total"])
    )
    if not bumped.rowcount:
        conn.execute(
            insert(totals).values(
                id=event.stream_id, customer=event.data["customer"], total=event.data["total"]
            )
        )


async def placed_async(event: RecordedEvent, conn: AsyncSQLAlchemyConnection) -> None:
    await conn.run_sync(lambda sync: placed(event, sync))


def rows(conn: Connection) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute(select(totals).order_by(totals.c.id))]


projection = Projection(
    "sa_totals", {"OrderPlaced": placed}, setup=metadata.create_all, teardown=metadata.drop_all
)
projection_async = Projection("sa_totals", {"OrderPlaced": placed_async})
EVENTS = [("order-1", "ada", 30), ("order-2", "grace", 12), ("order-1", "ada", 5)]
EXPECTED = [("order-1", "ada", 35), ("order-2", "grace", 12)]
CHECKPOINT = "projection:sa_totals:v1"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    url: str = request.getfixturevalue("postgres_store_url")
    return url


def _append(store: Any, events: list[tuple[str, str, int]] = EVENTS) -> None:
    for stream_id, customer, total in events:
        store.append(stream_id, [NewEvent("OrderPlaced", {"customer": customer, "total": total})])


def _read(target: SQLAlchemyTarget) -> list[tuple[Any, ...]]:
    with target.unit() as unit:
        return rows(unit.context)


def test_the_same_tables_on_both_backends(store_url: str) -> None:
    with chronik.connect(store_url) as store, SQLAlchemyTarget(metadata, store) as target:
        _append(store)
        runner = ProjectionRunner(store, projection, target)
        assert runner.run_until_caught_up() == 3
        assert _read(target) == EXPECTED
        assert target.load_checkpoint(CHECKPOINT) == store.head()
        state = runner.state()
        assert state is not None and state.status == "live"
        # More events: a new runner resumes from the checkpoint, applying nothing twice.
        _append(store, [("order-2", "grace", 1)])
        assert ProjectionRunner(store, projection, target).run_until_caught_up() == 1
        assert _read(target) == [("order-1", "ada", 35), ("order-2", "grace", 13)]
        # Rebuild: teardown drops the tables, setup makes them again.
        assert runner.rebuild() == 4
        assert _read(target) == [("order-1", "ada", 35), ("order-2", "grace", 13)]


def test_the_asyncio_twin(store_url: str) -> None:
    async def run() -> list[tuple[Any, ...]]:
        async with (
            chronik.connect_async(store_url) as store,
            AsyncSQLAlchemyTarget(metadata, store) as target,
        ):
            for stream_id, customer, total in EVENTS:
                event = NewEvent("OrderPlaced", {"customer": customer, "total": total})
                await store.append(stream_id, [event])
            assert await AsyncProjectionRunner(store, projection_async, target).run_until_caught_up() == 3
            assert await target.load_checkpoint(CHECKPOINT) == await store.head()
            async with target.unit() as unit:
                result = await unit.context.execute(select(totals).order_by(totals.c.id))
                assert await unit.context.scalar(select(totals.c.total).where(totals.c.id == "order-2")) == 12
                return [tuple(row) for row in result]

    assert asyncio.run(run()) == EXPECTED


def test_a_failing_batch_leaves_nothing_behind(store_url: str) -> None:
    def picky(event: RecordedEvent, conn: Connection) -> None:
        placed(event, conn)
        if event.data["total"] == 12:
            raise ValueError("no twelves")

    failing = Projection("sa_totals", {"OrderPlaced": picky})
    with chronik.connect(store_url) as store, SQLAlchemyTarget(metadata, store) as target:
        _append(store)
        runner = ProjectionRunner(store, failing, target, policy=FailurePolicy(retries=0))
        with pytest.raises(ProjectionFailedError):
            runner.run_until_caught_up()
        # The first event committed alone; the failing one's write was rolled back.
        assert _read(target) == [("order-1", "ada", 30)]
        assert target.load_checkpoint(CHECKPOINT) == next(iter(store.read_all())).checkpoint


@pytest.mark.postgres
def test_on_postgresql_the_tables_are_in_the_stores_schema(
    postgres_url: str, postgres_store_url: str
) -> None:
    schema = postgres_store_url.rpartition("schema=")[2]
    with chronik.connect(postgres_store_url) as store, SQLAlchemyTarget(metadata, store) as target:
        _append(store)
        ProjectionRunner(store, projection, target).run_until_caught_up()
    with psycopg.connect(postgres_url) as conn:
        # In the store's schema and not in public (other runs' schemas may have theirs).
        found = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_name IN ('sa_totals', 'chronik_checkpoints') AND table_schema IN (%s, 'public') "
            "ORDER BY table_name",
            (schema,),
        ).fetchall()
    assert found == [(schema, "chronik_checkpoints"), (schema, "sa_totals")]


def test_a_read_model_in_another_database(store_url: str, tmp_path: Path) -> None:
    """An Engine or a URL: the checkpoint is kept beside the read model, in its database."""
    url = f"sqlite:///{tmp_path / 'read-model.db'}"
    with chronik.connect(store_url) as store:
        _append(store)
        with SQLAlchemyTarget(metadata, url) as target:
            assert ProjectionRunner(store, projection, target).run_until_caught_up() == 3
        assert store.load_checkpoint(CHECKPOINT) is None  # not in the event store
        engine = create_engine(url)
        try:
            with SQLAlchemyTarget(metadata, engine) as target:
                assert ProjectionRunner(store, projection, target).run_until_caught_up() == 0
                assert _read(target) == EXPECTED
        finally:
            engine.dispose()
    db = sqlite3.connect(tmp_path / "read-model.db")
    try:
        [(name, checkpoint)] = db.execute("SELECT name, checkpoint FROM chronik_checkpoints").fetchall()
    finally:
        db.close()
    assert name == CHECKPOINT and Checkpoint.parse(checkpoint) is not None


@pytest.mark.postgres
def test_two_runners_cannot_both_save_the_first_checkpoint(
    postgres_url: str, postgres_store_url: str
) -> None:
    """The second waits for the first's row, then fails with ProjectionConflictError."""
    with chronik.connect(postgres_store_url) as store, SQLAlchemyTarget(metadata, store) as target:
        _append(store)
        checkpoint = next(iter(store.read_all())).checkpoint
        first_saved, pids, outcome = threading.Event(), [], []

        def second() -> None:
            first_saved.wait()
            try:
                with target.unit() as unit:
                    assert unit.load_checkpoint(CHECKPOINT) is None  # the first has not committed
                    pids.append(unit.context.connection.driver_connection.info.backend_pid)  # type: ignore[union-attr]
                    unit.save_checkpoint(CHECKPOINT, checkpoint)  # waits for it, then conflicts
                outcome.append("saved")
            except ProjectionConflictError:
                outcome.append("conflict")
            except BaseException as err:
                outcome.append(repr(err))

        thread = threading.Thread(target=second)
        thread.start()
        with target.unit() as unit:
            assert unit.load_checkpoint(CHECKPOINT) is None
            unit.save_checkpoint(CHECKPOINT, checkpoint)
            first_saved.set()
            _wait_until_blocked(postgres_url, pids)
        thread.join(60)
        assert outcome == ["conflict"]


def _wait_until_blocked(url: str, pids: list[int]) -> None:
    """Until the backend in ``pids`` waits for a lock (bounded: a stall fails the test)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(6000):
            if pids:
                row = conn.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pids[0],)
                ).fetchone()
                if row is not None and row[0] == "Lock":
                    return
            threading.Event().wait(0.01)
    raise AssertionError("the second runner never waited for the first's checkpoint row")


def test_bad_arguments_are_refused_clearly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with chronik.connect(url) as store:
        with pytest.raises(ConfigurationError, match="sqlalchemy.MetaData"):
            SQLAlchemyTarget(object(), store)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="Engine, a SQLAlchemy URL, or a chronik store"):
            SQLAlchemyTarget(metadata, 42)
        with pytest.raises(ConfigurationError, match="use SQLAlchemyTarget"):
            AsyncSQLAlchemyTarget(metadata, store)
    with pytest.raises(ConfigurationError, match="use AsyncSQLAlchemyTarget"):
        SQLAlchemyTarget(metadata, chronik.connect_async(url))
    with chronik.connect("memory://") as memory, pytest.raises(ConfigurationError, match="chronik store"):
        SQLAlchemyTarget(metadata, memory)
