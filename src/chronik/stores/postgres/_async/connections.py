"""What a PostgreSQL store shares with its transactions and readers: ``Connections``.

One object per store holds the pool and runs operations on it (``run``), with what
every operation needs beside a connection: the configuration, the statements, the
codec, the append hooks, the notifier, whether the store is closed, and the readers
to close with it. The store, its transactions and its readers go through it and
through nothing else of each other.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeAlias, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from chronik.backend import AsyncAppendHook, Codec, unlock_events_async
from chronik.errors import ConfigurationError, StoreClosedError
from chronik.events import RecordedEvent
from chronik.stores.postgres import sql
from chronik.stores.postgres._async.schema import connect, prepare_schema
from chronik.stores.postgres._common import ADAPTERS, connection_lost, on_a_standby, record, translate
from chronik.stores.postgres._config import PostgresConfig
from chronik.stores.postgres._notify import AsyncNotifier
from chronik.stores.postgres._pool import close_when_abandoned

if TYPE_CHECKING:
    from psycopg.abc import Params

    from chronik.stores.postgres._async.reader import AsyncPostgresLogReader
    from chronik.stores.postgres._async.subject_keys import AsyncPostgresSubjectKeys

__all__ = ["Conn", "Connections"]

T = TypeVar("T")
P = ParamSpec("P")
Conn: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]


class Connections:
    """A store's pool and what its operations need; shared with its transactions and readers."""

    def __init__(self, config: PostgresConfig, codec: Codec) -> None:
        self.config = config
        self.where = config.where
        self.codec = codec
        self.statements = sql.statements(config.schema, config.channel)
        self.hooks: dict[str, AsyncAppendHook] = {}  # replaced, never changed in place
        self.readers: set[AsyncPostgresLogReader] = set()
        self.own_keys: AsyncPostgresSubjectKeys | None = None
        """The store's own key store (``subject_keys.py``), once the store has made it."""
        self.closed = False
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._abandoned: weakref.finalize[Any, Any] | None = None
        self._open_lock = asyncio.Lock()
        self._notifier = AsyncNotifier(config.conninfo, config.channel) if config.notify else None

    async def open(self) -> None:
        """Connect, check the server and the schema, migrate if allowed, start the pool."""
        async with self._open_lock:
            self.check_open()
            if self._pool is not None:
                return
            conn = await connect(self.config)
            try:
                await prepare_schema(conn, self.config)
                await _check_read_model_schema(conn, self.config)
            except psycopg.Error as err:
                raise translate(err, self.where) from err
            finally:
                await conn.close()
            pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                self.config.conninfo,
                # Autocommit: each statement is its own transaction, and an append is
                # one statement. transaction() begins READ COMMITTED (_configure).
                kwargs={"autocommit": True, "context": ADAPTERS},
                configure=functools.partial(_configure, search_path=self.config.search_path),
                min_size=self.config.pool_min_size,
                max_size=self.config.pool_max_size,
                timeout=self.config.pool_timeout,
                name=f"chronik-{self.config.schema}",
                open=False,
            )
            await pool.open(wait=False)
            self._pool = pool
            self._abandoned = close_when_abandoned(self, pool, self._notifier)  # see _pool.py

    def check_open(self) -> None:
        if self.closed:
            raise StoreClosedError(f"the PostgreSQL store at {self.where} is closed")

    async def ready(self) -> AsyncConnectionPool[Conn]:
        """The pool, opening the store first if need be."""
        self.check_open()
        if self._pool is None:
            await self.open()
        pool = self._pool
        if pool is None:  # closed meanwhile
            raise StoreClosedError(f"the PostgreSQL store at {self.where} is closed")
        return pool

    async def run(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``op`` on a pooled connection (autocommit: each statement commits).

        A connection that died (server restart, ``pg_terminate_backend``) is dropped
        by the pool and ``op`` goes again on another: every operation here is safe
        to repeat (appends because re-sent event ids are recognised). Other driver
        errors are translated here, at the boundary.
        """
        pool = self._pool if self._pool is not None and not self.closed else await self.ready()
        lost = 0
        while True:
            try:
                async with pool.connection() as conn:
                    try:
                        return await op(conn)
                    except psycopg.Error as err:
                        if on_a_standby(err):
                            await conn.close()  # the pool discards it
                        raise
            except psycopg.Error as err:
                if connection_lost(err) and lost < self.config.pool_max_size and not self.closed:
                    lost += 1
                    continue
                raise translate(err, self.where) from err

    async def on(
        self,
        fn: Callable[Concatenate[Conn, sql.Statements, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``fn(conn, statements, ...)`` on a pooled connection (see ``run``)."""
        statements = self.statements

        async def op(conn: Conn) -> T:
            return await fn(conn, statements, *args, **kwargs)

        return await self.run(op)

    async def records(self, statement: str, params: Params) -> list[RecordedEvent]:
        """The events a statement returns (read in binary: C loaders for every column)."""
        codec = self.codec

        async def op(conn: Conn) -> list[RecordedEvent]:
            cursor = await conn.execute(statement, params, binary=True)
            return [record(row, codec) for row in await cursor.fetchall()]

        events = await self.run(op)
        await unlock_events_async(codec, events)  # on another connection: this one is back
        return events

    def keys_on(self, conn: Conn) -> Any:
        """The key store that a transaction on ``conn`` asks: the store's own on that
        connection, or None for the codec's when another was given to the store."""
        own = self.own_keys
        return own.on(conn) if own is not None and self.codec.subject_keys is own else None

    async def fetch(self, statement: str, params: Params = ()) -> tuple[Any, ...]:
        """The first row of a statement that always returns one."""

        async def op(conn: Conn) -> tuple[Any, ...]:
            cursor = await conn.execute(statement, params)
            row = await cursor.fetchone()
            assert row is not None
            return row

        return await self.run(op)

    async def value(self, statement: str, params: Params) -> Any:
        """The first column of the first row, or None when there is no row."""

        async def op(conn: Conn) -> Any:
            cursor = await conn.execute(statement, params)
            row = await cursor.fetchone()
            return None if row is None else row[0]

        return await self.run(op)

    def poke(self) -> None:
        """Tell listeners (in every process) that events were committed."""
        if self._notifier is not None:
            self._notifier.poke()

    async def close(self) -> None:
        """Close the readers, the notifier and the pool; nothing can run afterwards."""
        self.closed = True
        pool, self._pool = self._pool, None
        for reader in list(self.readers):
            await reader.close()
        if self._notifier is not None:
            await self._notifier.close()
        if pool is not None:
            if self._abandoned is not None:
                self._abandoned.detach()
            await pool.close()


async def _configure(conn: Conn, *, search_path: str) -> None:
    """Each new pooled connection: transactions READ COMMITTED, whatever the server's
    default_transaction_isolation (set on the client: no round trip), and the
    ``search_path`` that puts read models beside the store's tables (one round trip
    per connection, none per transaction: ``PostgresConfig.search_path``)."""
    await conn.set_isolation_level(psycopg.IsolationLevel.READ_COMMITTED)
    await conn.execute(sql.SET_SEARCH_PATH, (search_path,))


async def _check_read_model_schema(conn: Conn, config: PostgresConfig) -> None:
    """Refuse a ``read_model_schema`` that does not exist (tables could not be made there)."""
    name = config.read_model_schema
    if name is None or name == config.schema:
        return
    cursor = await conn.execute(sql.SCHEMA_EXISTS, (name,))
    row = await cursor.fetchone()
    if row is None or not row[0]:
        raise ConfigurationError(
            f"read_model_schema {name!r} does not exist at {config.where}: create it "
            f"(CREATE SCHEMA {name}) or leave the option out to keep read models in the store's schema"
        )
