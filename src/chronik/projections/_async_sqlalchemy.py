"""The asyncio twin of :class:`~chronik.projections.SQLAlchemyTarget`: SQLAlchemy on threads.

SQLAlchemy's own asyncio engine needs asyncio drivers (aiosqlite, asyncpg, ...) and
greenlet; this target needs neither. It runs the same sync engine and connections
as :class:`SQLAlchemyTarget` (``_sqlalchemy.py``, where the design is described),
each unit on a thread lent to it for its whole life, as ``chronik.aio`` runs a sync
store's transactions: begin, every statement, commit or rollback on that thread,
never on the event loop. On a SQLite store the unit is the store's transaction
(``async with store.transaction()``), and its statements run on that
transaction's own thread (``tx.run_sync``).

Handlers get an :class:`AsyncSQLAlchemyConnection`: ``await conn.execute(insert(t)...)``,
``await conn.scalar(...)``, ``await conn.scalars(...)``, and ``await
conn.run_sync(fn)`` for anything else (``fn`` gets the sync ``Connection``), the
same calls as SQLAlchemy's ``AsyncConnection``. Rows come back buffered, so
reading them never touches the database from the event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from chronik.aio import _ThreadPool, _wait_for  # the thread-lending of asyncio faces, shared
from chronik.errors import ConfigurationError
from chronik.events import Checkpoint
from chronik.projections._async_targets import _TransactionUnit
from chronik.projections._sqlalchemy import CHECKPOINT_TABLE, Tables
from chronik.store import AsyncProjectionStateStore, SQLDatabase, is_async

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy import Connection, CursorResult, Engine, MetaData, Result, ScalarResult

__all__ = ["AsyncSQLAlchemyConnection", "AsyncSQLAlchemyTarget"]

P = ParamSpec("P")
R = TypeVar("R")
Run = Callable[..., Awaitable[Any]]


def _buffered(result: CursorResult[Any]) -> Result[Any]:
    """A result whose rows are all fetched (on the unit's thread); one without rows as it
    is, so ``rowcount`` and ``inserted_primary_key`` still answer."""
    return result.freeze()() if result.returns_rows else result


class AsyncSQLAlchemyConnection:
    """What asyncio handlers of an :class:`AsyncSQLAlchemyTarget` get: a SQLAlchemy
    ``Connection`` whose calls run on the unit's thread."""

    def __init__(self, sync_connection: Connection, run: Run) -> None:
        self.sync_connection = sync_connection
        """The sync connection: use it only inside :meth:`run_sync`."""
        self._run = run

    async def execute(self, statement: Any, parameters: Any = None) -> Result[Any]:
        """``Connection.execute``; the rows, if any, fetched before it returns."""
        execute = self.sync_connection.execute
        result: Result[Any] = await self._run(lambda: _buffered(execute(statement, parameters)))
        return result

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return await self._run(self.sync_connection.scalar, statement, parameters)

    async def scalars(self, statement: Any, parameters: Any = None) -> ScalarResult[Any]:
        result = await self.execute(statement, parameters)
        return result.scalars()

    async def run_sync(
        self, fn: Callable[Concatenate[Connection, P], R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """``fn(sync_connection, *args, **kwargs)`` on the unit's thread, e.g.
        ``await conn.run_sync(metadata.create_all)``."""
        result: R = await self._run(fn, self.sync_connection, *args, **kwargs)
        return result


class _AsyncEngineUnit:
    """A unit that is a transaction of the target's engine (see ``_EngineUnit``)."""

    def __init__(self, tables: Tables, conn: AsyncSQLAlchemyConnection) -> None:
        self._tables = tables
        self._conn = conn

    @property
    def context(self) -> AsyncSQLAlchemyConnection:
        return self._conn

    @property
    def states(self) -> AsyncProjectionStateStore | None:
        return None

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        return await self._conn.run_sync(self._tables.load, name, lock=True)

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        await self._conn.run_sync(self._tables.save, name, checkpoint)

    async def delete_checkpoint(self, name: str) -> None:
        await self._conn.run_sync(self._tables.delete, name)


def _on_transaction_thread(tx: object) -> tuple[Run, sqlite3.Connection]:
    """How to run work on an asyncio store transaction's thread, and its DB-API connection."""
    run = getattr(tx, "run_sync", None)
    connection = getattr(getattr(tx, "sync", None), "connection", None)
    if run is None or connection is None:
        raise ConfigurationError(
            f"AsyncSQLAlchemyTarget shares the store's transactions, and {tx!r} offers no "
            "run_sync and sync.connection to run SQLAlchemy on (chronik.aio's transactions do)"
        )
    return run, connection


class AsyncSQLAlchemyTarget:
    """The asyncio twin of :class:`SQLAlchemyTarget`, on threads (see the module's docstring).

    ``database``: the asyncio event store itself, a SQLAlchemy ``Engine`` (sync: yours,
    never disposed here), or a SQLAlchemy URL. Handlers get an
    :class:`AsyncSQLAlchemyConnection`. ``await target.close()`` disposes the engine it
    made and ends its threads.
    """

    exactly_once = True

    def __init__(
        self, metadata: MetaData, database: object, *, checkpoint_table: str = CHECKPOINT_TABLE
    ) -> None:
        if isinstance(database, SQLDatabase) and not is_async(database):
            raise ConfigurationError(
                f"AsyncSQLAlchemyTarget runs on an asyncio store, and {database!r} is a sync store: "
                "use SQLAlchemyTarget"
            )
        self.tables = Tables(
            metadata, database, checkpoint_table, face="AsyncSQLAlchemyTarget", store_ok=True
        )
        self._threads = _ThreadPool()

    @property
    def metadata(self) -> MetaData:
        return self.tables.metadata

    @property
    def engine(self) -> Engine:
        """The (sync) engine of the read model's database."""
        return self.tables.engine

    async def _in_thread(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        executor = self._threads.take()
        done = executor.submit(fn, *args, **kwargs)
        done.add_done_callback(lambda _: self._threads.give_back(executor))
        return await _wait_for(done)

    def _create_shared(self, dbapi_connection: sqlite3.Connection) -> None:
        conn = self.tables.lend(dbapi_connection)
        try:
            self.tables.create_tables(conn)
        finally:
            conn.close()

    def _load(self, name: str) -> Checkpoint | None:
        with self.tables.engine.connect() as conn:
            return self.tables.load(conn, name, lock=False)

    async def _ensure_tables(self) -> None:
        tables = self.tables
        if not tables.needs_tables():
            return
        if tables.shared:
            async with tables.store.transaction() as tx:
                run, connection = _on_transaction_thread(tx)
                await run(self._create_shared, connection)
        else:
            await self._in_thread(tables.create_tables_with_engine)

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        await self._ensure_tables()
        tables = self.tables
        if tables.shared:
            async with tables.store.transaction() as tx:
                checkpoint: Checkpoint | None = await tx.load_checkpoint(name)
                return checkpoint
        return await self._in_thread(self._load, name)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[_TransactionUnit[AsyncSQLAlchemyConnection] | _AsyncEngineUnit]:
        """One transaction of the read model's database, on a thread of its own."""
        await self._ensure_tables()
        tables = self.tables
        if tables.shared:
            async with tables.store.transaction() as tx:
                run, connection = _on_transaction_thread(tx)
                sync_connection = await run(tables.lend, connection)
                try:
                    yield _TransactionUnit(tx, AsyncSQLAlchemyConnection(sync_connection, run))
                finally:
                    await run(sync_connection.close)  # the store's transaction commits or rolls back
            return
        executor = self._threads.take()
        try:
            sync_connection = await _wait_for(executor.submit(tables.engine.connect))
        except BaseException:
            self._threads.give_back(executor)
            raise
        try:
            run = _runner(executor)
            await run(sync_connection.begin)
            yield _AsyncEngineUnit(tables, AsyncSQLAlchemyConnection(sync_connection, run))
            await run(sync_connection.commit)
        finally:
            # Rolls back what was not committed; the thread is lent again once it has.
            closed = executor.submit(sync_connection.close)
            closed.add_done_callback(lambda _: self._threads.give_back(executor))
            await _wait_for(closed)

    async def close(self) -> None:
        """Dispose of the engine the target made (not of one you passed in); end its threads."""
        await self._in_thread(self.tables.close)
        self._threads.close()

    async def __aenter__(self) -> AsyncSQLAlchemyTarget:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncSQLAlchemyTarget({self.tables.describe()})"


def _runner(executor: ThreadPoolExecutor) -> Run:
    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await _wait_for(executor.submit(fn, *args, **kwargs))

    return run
