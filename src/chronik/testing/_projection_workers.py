"""A projection runner to kill: ``python -m chronik.testing._projection_workers URL FACE BATCH``.

Used by the crash tests (SQLite and PostgreSQL, sync and asyncio runners), which
start it, let it run for a random while and kill it with SIGKILL, again and again
(:func:`check_killed_runner`). Its read model is deliberately not idempotent
(counters incremented per event), and it records each position it applies under a
unique key, so an event applied twice either shows in the counts or fails the
worker outright; only a checkpoint committed with the writes keeps it exact.

``FACE`` is ``sync`` (:class:`ProjectionRunner` on ``chronik.connect``) or ``async``
(:class:`AsyncProjectionRunner` on ``chronik.connect_async``, coroutine handlers);
``sqlalchemy`` and ``sqlalchemy-async`` are the same read model in SQLAlchemy Core
tables, kept by a :class:`SQLAlchemyTarget` (or its asyncio twin) in the store's
own database.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import chronik
from chronik.events import Checkpoint, NewEvent, RecordedEvent
from chronik.projections import (
    AsyncProjectionRunner,
    AsyncSQLAlchemyConnection,
    AsyncSQLAlchemyTarget,
    Projection,
    ProjectionRunner,
    SQLAlchemyTarget,
)
from chronik.store import AsyncStoreTransaction, StoreTransaction

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData

__all__ = [
    "CHECKPOINT",
    "async_counter_projection",
    "check_killed_runner",
    "counter_projection",
    "main",
    "sqlalchemy_counter_projections",
]

CHECKPOINT = "projection:crash_totals:v1"
_TABLES = (
    "CREATE TABLE IF NOT EXISTS {s}crash_totals (stream_id TEXT PRIMARY KEY, n INTEGER NOT NULL, "
    "total INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}crash_applied (position BIGINT PRIMARY KEY)",
)
_APPLIED = "INSERT INTO {s}crash_applied (position) VALUES (?)"
_TOTALS = (
    "INSERT INTO {s}crash_totals VALUES (?, 1, ?) ON CONFLICT (stream_id) DO UPDATE "
    "SET n = crash_totals.n + 1, total = crash_totals.total + excluded.total"
)
_READ_TOTALS = "SELECT stream_id, n, total FROM {s}crash_totals"
_READ_APPLIED = "SELECT position FROM {s}crash_applied ORDER BY position"


def _sql(statement: str, url: str) -> str:
    """The statement for the store at ``url``: PostgreSQL's tables in the store's schema
    (``?schema=``), with ``%s`` placeholders."""
    if not url.startswith("postgres"):
        return statement.format(s="")
    schema = dict(parse_qsl(urlsplit(url).query)).get("schema", "public")
    return statement.format(s=f'"{schema}".').replace("?", "%s")


def counter_projection(url: str = "sqlite://") -> Projection[StoreTransaction]:
    """The read model as a sync projection on the store at ``url``."""
    applied, totals = _sql(_APPLIED, url), _sql(_TOTALS, url)
    tables = [_sql(statement, url) for statement in _TABLES]

    def setup(tx: StoreTransaction) -> None:
        for statement in tables:
            tx.execute(statement)

    def added(event: RecordedEvent, tx: StoreTransaction) -> None:
        tx.execute(applied, (event.position,))
        tx.execute(totals, (event.stream_id, event.data["amount"]))
        time.sleep(0.0002)  # widen the window in which a kill lands mid-batch

    return Projection("crash_totals", {"Added": added}, setup=setup)


def async_counter_projection(url: str) -> Projection[AsyncStoreTransaction]:
    """The same read model with coroutine handlers, for an asyncio runner."""
    applied, totals = _sql(_APPLIED, url), _sql(_TOTALS, url)
    tables = [_sql(statement, url) for statement in _TABLES]

    async def setup(tx: AsyncStoreTransaction) -> None:
        for statement in tables:
            await tx.execute(statement)

    async def added(event: RecordedEvent, tx: AsyncStoreTransaction) -> None:
        await tx.execute(applied, (event.position,))
        await tx.execute(totals, (event.stream_id, event.data["amount"]))
        await asyncio.sleep(0.0002)

    return Projection("crash_totals", {"Added": added}, setup=setup)


def sqlalchemy_counter_projections() -> tuple[
    MetaData, Projection[Connection], Projection[AsyncSQLAlchemyConnection]
]:
    """The same read model in SQLAlchemy Core tables, written portably (no upsert):
    the tables, the sync projection and its asyncio twin."""
    import sqlalchemy as sa

    metadata = sa.MetaData()
    totals = sa.Table(
        "crash_totals",
        metadata,
        sa.Column("stream_id", sa.String(40), primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
    )
    applied = sa.Table(
        "crash_applied", metadata, sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False)
    )

    def statements(event: RecordedEvent) -> tuple[Any, Any, Any]:
        amount = event.data["amount"]
        return (
            sa.insert(applied).values(position=event.position),
            sa.update(totals)
            .where(totals.c.stream_id == event.stream_id)
            .values(n=totals.c.n + 1, total=totals.c.total + amount),
            sa.insert(totals).values(stream_id=event.stream_id, n=1, total=amount),
        )

    def added(event: RecordedEvent, conn: Connection) -> None:
        mark, bump, first = statements(event)
        conn.execute(mark)
        if not conn.execute(bump).rowcount:
            conn.execute(first)
        time.sleep(0.0002)

    async def added_async(event: RecordedEvent, conn: AsyncSQLAlchemyConnection) -> None:
        mark, bump, first = statements(event)
        await conn.execute(mark)
        bumped: Any = await conn.execute(bump)  # no rows: SQLAlchemy's CursorResult, with rowcount
        if not bumped.rowcount:
            await conn.execute(first)
        await asyncio.sleep(0.0002)

    return (
        metadata,
        Projection("crash_totals", {"Added": added}),
        Projection("crash_totals", {"Added": added_async}),
    )


async def _run_async(url: str, face: str, batch_size: int) -> None:
    store = chronik.connect_async(url)
    if face == "sqlalchemy-async":
        metadata, _, projection = sqlalchemy_counter_projections()
        target = AsyncSQLAlchemyTarget(metadata, store)
        runner: Any = AsyncProjectionRunner(
            store, projection, target, batch_size=batch_size, idle_timeout=0.1
        )
    else:
        runner = AsyncProjectionRunner(
            store, async_counter_projection(url), batch_size=batch_size, idle_timeout=0.1
        )
    print("ready", flush=True)
    await runner.run()


def main(url: str, face: str, batch_size: int) -> None:
    if face in ("async", "sqlalchemy-async"):
        asyncio.run(_run_async(url, face, batch_size))
        return
    store = chronik.connect(url)
    if face == "sqlalchemy":
        metadata, projection, _ = sqlalchemy_counter_projections()
        target = SQLAlchemyTarget(metadata, store)
        runner: Any = ProjectionRunner(store, projection, target, batch_size=batch_size, idle_timeout=0.1)
    else:
        runner = ProjectionRunner(store, counter_projection(url), batch_size=batch_size, idle_timeout=0.1)
    print("ready", flush=True)
    runner.run()


def _append(store: chronik.EventStore, rng: random.Random, count: int) -> None:
    for _ in range(count // 10):
        stream = f"acc-{rng.randrange(40)}"
        store.append(stream, [NewEvent("Added", {"amount": rng.randint(1, 100)}) for _ in range(10)])


def check_killed_runner(url: str, face: str, *, kills: int = 12, seed: int = 20261127) -> None:
    """Kill a worker on ``url`` at random moments ``kills`` times, then check the read model:
    exactly what the log says, every position applied once, checkpoints never backwards."""
    rng = random.Random(seed)
    store = chronik.connect(url)
    projection: Any = counter_projection(url)
    target: Any = None
    if face.startswith("sqlalchemy"):
        metadata, projection, _ = sqlalchemy_counter_projections()
        target = SQLAlchemyTarget(metadata, store)
    checkpoints_of: Any = target or store
    try:
        _append(store, rng, 3000)
        interrupted = 0
        checkpoints: list[Checkpoint | None] = []
        env = {**os.environ, "PYTHONWARNINGS": "error"}
        for _ in range(kills):
            batch = str(rng.choice([1, 1, 7, 50]))
            worker = subprocess.Popen(
                [sys.executable, "-m", "chronik.testing._projection_workers", url, face, batch],
                stdout=subprocess.PIPE,
                env=env,
            )
            try:
                assert worker.stdout is not None
                assert worker.stdout.readline().strip() == b"ready"
                # More events arrive while it runs; then it dies at a random moment.
                _append(store, rng, 200)
                try:
                    worker.wait(rng.uniform(0.05, 0.6))
                except subprocess.TimeoutExpired:
                    pass
                assert worker.poll() is None, f"the runner died on its own (exit {worker.returncode})"
                os.kill(worker.pid, signal.SIGKILL)
            finally:
                worker.wait()
                if worker.stdout is not None:
                    worker.stdout.close()
            assert worker.returncode == -signal.SIGKILL
            checkpoint = checkpoints_of.load_checkpoint(CHECKPOINT)
            head = store.head()
            if checkpoint is not None and head is not None and checkpoint < head:
                interrupted += 1
            checkpoints.append(checkpoint)
        assert interrupted, "no kill landed before the runner had caught up: nothing was tested"
        known = [c for c in checkpoints if c is not None]
        assert known == sorted(known), "a checkpoint went backwards"

        # Finish the job, then compare with what the log says it must be.
        ProjectionRunner(store, projection, target).run_until_caught_up()
        expected: dict[str, tuple[int, int]] = {}
        positions: list[int] = []
        for event in store.read_all():
            n, total = expected.get(event.stream_id, (0, 0))
            expected[event.stream_id] = (n + 1, total + event.data["amount"])
            positions.append(event.position)
        with store.transaction() as tx:
            rows: list[Any] = tx.execute(_sql(_READ_TOTALS, url)).fetchall()
            actual = {r[0]: (r[1], r[2]) for r in rows}
            applied = [r[0] for r in tx.execute(_sql(_READ_APPLIED, url)).fetchall()]
        assert applied == positions, "an event was lost or applied twice"
        assert actual == expected
    finally:
        if target is not None:
            target.close()
        store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
