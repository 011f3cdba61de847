"""What the sync PostgreSQL store shares with its transactions and readers.

GENERATED from ``_async/connections.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeAlias, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from chronik.backend import AppendHook, Codec, unlock_events
from chronik.errors import ConfigurationError, StoreClosedError
from chronik.events import RecordedEvent
from chronik.stores.postgres import sql
from chronik.stores.postgres._common import ADAPTERS, connection_lost, on_a_standby, record, translate
from chronik.stores.postgres._config import PostgresConfig
from chronik.stores.postgres._notify import Notifier
from chronik.stores.postgres._pool import close_when_abandoned
from chronik.stores.postgres._sync.schema import connect, prepare_schema

if TYPE_CHECKING:
    from psycopg.abc import Params

    from chronik.stores.postgres._sync.reader import PostgresLogReader
    from chronik.stores.postgres._sync.subject_keys import PostgresSubjectKeys

__all__ = ["Conn", "Connections"]

T = TypeVar("T")
P = ParamSpec("P")
Conn: TypeAlias = psycopg.Connection[tuple[Any, ...]]


class Connections:
    """A store's pool and what its operations need; shared with its transactions and readers."""

    def __init__(self, config: PostgresConfig, codec: Codec) -> None:
        self.config = config
        self.where = config.where
        self.codec = codec
        self.statements = sql.statements(config.schema, config.channel)
        self.hooks: dict[str, AppendHook] = {}  # replaced, never changed in place
        self.readers: set[PostgresLogReader] = set()
        self.own_keys: PostgresSubjectKeys | None = None
        """The store's own key store (``subject_keys.py``), once the store has made it."""
        self.closed = False
        self._pool: ConnectionPool[Conn] | None = None
        self._abandoned: weakref.finalize[Any, Any] | None = None
        self._open_lock = threading.Lock()
        self._notifier = Notifier(config.conninfo, config.channel) if config.notify else None

    def open(self) -> None:
        """Connect, check the server and the schema, migrate if allowed, start the pool."""
        with self._open_lock:
            self.check_open()
            if self._pool is not None:
                return
            conn = connect(self.config)
            try:
                prepare_schema(conn, self.config)
                _check_read_model_schema(conn, self.config)
            except psycopg.Error as err:
                raise translate(err, self.where) from err
            finally:
                conn.close()
            pool: ConnectionPool[Conn] = ConnectionPool(
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
            pool.open(wait=False)
            self._pool = pool
            self._abandoned = close_when_abandoned(self, pool, self._notifier)  # see _pool.py

    def check_open(self) -> None:
        if self.closed:
            raise StoreClosedError(f"the PostgreSQL store at {self.where} is closed")

    def ready(self) -> ConnectionPool[Conn]:
        """The pool, opening the store first if need be."""
        self.check_open()
        if self._pool is None:
            self.open()
        pool = self._pool
        if pool is None:  # closed meanwhile
            raise StoreClosedError(f"the PostgreSQL store at {self.where} is closed")
        return pool

    def run(self, op: Callable[[Conn], T]) -> T:
        """Run ``op`` on a pooled connection (autocommit: each statement commits).

        A connection that died (server restart, ``pg_terminate_backend``) is dropped
        by the pool and ``op`` goes again on another: every operation here is safe
        to repeat (appends because re-sent event ids are recognised). Other driver
        errors are translated here, at the boundary.
        """
        pool = self._pool if self._pool is not None and not self.closed else self.ready()
        lost = 0
        while True:
            try:
                with pool.connection() as conn:
                    try:
                        return op(conn)
                    except psycopg.Error as err:
                        if on_a_standby(err):
                            conn.close()  # the pool discards it
                        raise
            except psycopg.Error as err:
                if connection_lost(err) and lost < self.config.pool_max_size and not self.closed:
                    lost += 1
                    continue
                raise translate(err, self.where) from err

    def on(
        self,
        fn: Callable[Concatenate[Conn, sql.Statements, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``fn(conn, statements, ...)`` on a pooled connection (see ``run``)."""
        statements = self.statements

        def op(conn: Conn) -> T:
            return fn(conn, statements, *args, **kwargs)

        return self.run(op)

    def records(self, statement: str, params: Params) -> list[RecordedEvent]:
        """The events a statement returns (read in binary: C loaders for every column)."""
        codec = self.codec

        def op(conn: Conn) -> list[RecordedEvent]:
            cursor = conn.execute(statement, params, binary=True)
            return [record(row, codec) for row in cursor.fetchall()]

        events = self.run(op)
        unlock_events(codec, events)  # on another connection: this one is back
        return events

    def keys_on(self, conn: Conn) -> Any:
        """The key store that a transaction on ``conn`` asks: the store's own on that
        connection, or None for the codec's when another was given to the store."""
        own = self.own_keys
        return own.on(conn) if own is not None and self.codec.subject_keys is own else None

    def fetch(self, statement: str, params: Params = ()) -> tuple[Any, ...]:
        """The first row of a statement that always returns one."""

        def op(conn: Conn) -> tuple[Any, ...]:
            cursor = conn.execute(statement, params)
            row = cursor.fetchone()
            assert row is not None
            return row

        return self.run(op)

    def value(self, statement: str, params: Params) -> Any:
        """The first column of the first row, or None when there is no row."""

        def op(conn: Conn) -> Any:
            cursor = conn.execute(statement, params)
            row = cursor.fetchone()
            return None if row is None else row[0]

        return self.run(op)

    def poke(self) -> None:
        """Tell listeners (in every process) that events were committed."""
        if self._notifier is not None:
            self._notifier.poke()

    def close(self) -> None:
        """Close the readers, the notifier and the pool; nothing can run afterwards."""
        self.closed = True
        pool, self._pool = self._pool, None
        for reader in list(self.readers):
            reader.close()
        if self._notifier is not None:
            self._notifier.close()
        if pool is not None:
            if self._abandoned is not None:
                self._abandoned.detach()
            pool.close()


def _configure(conn: Conn, *, search_path: str) -> None:
    """Each new pooled connection: transactions READ COMMITTED, whatever the server's
    default_transaction_isolation (set on the client: no round trip), and the
    ``search_path`` that puts read models beside the store's tables (one round trip
    per connection, none per transaction: ``PostgresConfig.search_path``)."""
    conn.set_isolation_level(psycopg.IsolationLevel.READ_COMMITTED)
    conn.execute(sql.SET_SEARCH_PATH, (search_path,))


def _check_read_model_schema(conn: Conn, config: PostgresConfig) -> None:
    """Refuse a ``read_model_schema`` that does not exist (tables could not be made there)."""
    name = config.read_model_schema
    if name is None or name == config.schema:
        return
    cursor = conn.execute(sql.SCHEMA_EXISTS, (name,))
    row = cursor.fetchone()
    if row is None or not row[0]:
        raise ConfigurationError(
            f"read_model_schema {name!r} does not exist at {config.where}: create it "
            f"(CREATE SCHEMA {name}) or leave the option out to keep read models in the store's schema"
        )
