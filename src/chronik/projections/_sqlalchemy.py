"""A read model in SQLAlchemy Core: tables declared once, committed with the checkpoint.

Declare the tables once (a ``sqlalchemy.MetaData``); handlers get a SQLAlchemy
``Connection`` and write with ``insert(table).values(...)``, ``text(...)``, and so
on; the same projection runs on SQLite, on PostgreSQL, and on any database
SQLAlchemy supports::

    metadata = MetaData()
    totals = Table("order_totals", metadata, Column("id", String(40), primary_key=True), ...)

    def placed(event, conn):
        conn.execute(insert(totals).values(id=event.stream_id, total=event.data["total"]))

    target = SQLAlchemyTarget(metadata, store)          # the store's own database
    ProjectionRunner(store, Projection("totals", {"OrderPlaced": placed}), target).run()

Each unit (a batch of events) is one transaction of the read model's database, and
the projection's checkpoint is written in it: exactly once, whichever database.
Where that transaction comes from depends on ``database``:

- **an Engine or a URL**: the target's own engine; the checkpoint is a row of a
  small table of the target's (``chronik_checkpoints``) in that database, read
  ``FOR UPDATE`` at the start of each unit, so a second runner of the projection
  waits and then finds the checkpoint moved (``ProjectionConflictError``) instead
  of applying the batch twice. (Not an engine on a SQLite store's own file: pass
  the store, for the reason below.)
- **the event store** (a :class:`chronik.store.SQLDatabase`): the read model lives
  beside the events. On PostgreSQL the target makes an engine on the store's
  database (``store.connect_dbapi``), so tables land in the store's schema (or its
  ``read_model_schema``), and keeps its checkpoint table there, as above. SQLite
  has one writer at a time, and the runner records a projection's state through
  the store while a unit is open: a second connection would wait for the runner's
  own writes. So on SQLite each unit *is* a store transaction and SQLAlchemy works
  on that transaction's connection; the checkpoint and the projection's state are
  the store's, committed with the read model.

``metadata.create_all`` runs once, when the target is first used (it skips tables
that exist). A handler must neither commit nor roll back: the unit's transaction is
the runner's (``conn.begin_nested()`` keeps a part that may fail apart). SQLAlchemy
is imported when a target is made, so chronik imports without it; a missing extra
is a :class:`ConfigurationError` that says ``pip install 'chronik[sqlalchemy]'``.

The asyncio twin is ``_async_sqlalchemy.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from chronik.errors import ConfigurationError
from chronik.events import Checkpoint
from chronik.projections._targets import _TransactionUnit
from chronik.projections.errors import ProjectionConflictError
from chronik.store import ProjectionStateStore, SQLDatabase

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy import URL, Connection, Engine, MetaData, Table

__all__ = ["CHECKPOINT_TABLE", "SQLAlchemyTarget", "Tables"]

CHECKPOINT_TABLE: Final = "chronik_checkpoints"
_INSTALL: Final = "pip install 'chronik[sqlalchemy]'"


def sqlalchemy_module() -> Any:
    """``sqlalchemy``, or a ConfigurationError saying how to install it."""
    try:
        import sqlalchemy
    except ModuleNotFoundError as err:
        raise ConfigurationError(f"SQLAlchemy targets need SQLAlchemy 2: {_INSTALL} ({err})") from err
    return sqlalchemy


def shares_store_transactions(database: SQLDatabase) -> bool:
    """Whether a read model in ``database`` must be written in the store's own
    transactions: SQLite has one writer at a time (see the module's docstring)."""
    return database.sql_dialect.partition("+")[0] == "sqlite"


class _Lent:
    """A store transaction's DB-API connection, lent to SQLAlchemy for one unit.

    The transaction is the store's, which commits or rolls it back: SQLAlchemy's
    commit, rollback and close (which it calls when a connection goes back to its
    pool) do nothing here. Everything else is the connection's own.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


class Tables:
    """What both faces share: the metadata, the engine, the checkpoint table, and how a
    unit's SQLAlchemy connection is made. Everything here is sync (threads of the
    asyncio face call it)."""

    def __init__(
        self, metadata: MetaData, database: object, checkpoint_table: str, *, face: str, store_ok: bool
    ) -> None:
        sa = sqlalchemy_module()
        if not isinstance(metadata, sa.MetaData):
            raise ConfigurationError(f"{face} takes a sqlalchemy.MetaData, got {type(metadata).__name__}")
        if not isinstance(checkpoint_table, str) or not checkpoint_table:
            raise ConfigurationError(f"checkpoint_table must be a table name, got {checkpoint_table!r}")
        self.metadata: MetaData = metadata
        self.store: Any = None
        """The event store whose transactions units share (SQLite), else None."""
        self.owns_engine = True
        self.source = database
        """What ``database`` was (for messages)."""
        self._lent = threading.local()
        self._ready = False
        self._ready_lock = threading.Lock()
        checkpoints = sa.MetaData()
        self.checkpoints: Table = sa.Table(
            checkpoint_table,
            checkpoints,
            sa.Column("name", sa.String(200), primary_key=True),
            sa.Column("checkpoint", sa.String(200), nullable=False),
        )
        self.engine: Engine
        if isinstance(database, sa.Engine):
            self.engine, self.owns_engine = database, False
        elif isinstance(database, (str, sa.URL)):
            self.engine = _engine_for_url(sa, database)
        elif isinstance(database, SQLDatabase):
            if not store_ok:
                raise ConfigurationError(f"{face} takes {database!r} on the other face: see its twin")
            if shares_store_transactions(database):
                if not hasattr(database, "transaction"):
                    raise ConfigurationError(f"{database!r} has no transactions for {face} to share")
                self.store = database
                self.engine = sa.create_engine(
                    f"{database.sql_dialect}://", creator=self._lend, poolclass=sa.pool.NullPool
                )
            else:
                self.engine = sa.create_engine(f"{database.sql_dialect}://", creator=database.connect_dbapi)
        else:
            raise ConfigurationError(
                f"{face}'s database must be a SQLAlchemy Engine, a SQLAlchemy URL, or a chronik store "
                f"in a SQL database (chronik.store.SQLDatabase), got {database!r}"
            )

    @property
    def shared(self) -> bool:
        return self.store is not None

    # -- connections --------------------------------------------------------------------

    def _lend(self) -> _Lent:
        conn = getattr(self._lent, "conn", None)
        assert conn is not None, "a shared unit's connection is made through lend()"
        return _Lent(conn)

    def lend(self, dbapi_connection: sqlite3.Connection) -> Connection:
        """A SQLAlchemy connection over a store transaction's own connection."""
        self._lent.conn = dbapi_connection
        try:
            return self.engine.connect()
        finally:
            self._lent.conn = None

    # -- tables -------------------------------------------------------------------------

    def needs_tables(self) -> bool:
        return not self._ready

    def create_tables(self, conn: Connection) -> None:
        """``create_all`` of the metadata (and of the checkpoint table, unless shared)."""
        with self._ready_lock:
            if self._ready:
                return
            self.metadata.create_all(conn)
            if not self.shared:
                self.checkpoints.metadata.create_all(conn)
            self._ready = True

    def create_tables_with_engine(self) -> None:
        with self.engine.begin() as conn:
            self.create_tables(conn)

    # -- the checkpoint table (engine units) --------------------------------------------

    def load(self, conn: Connection, name: str, *, lock: bool) -> Checkpoint | None:
        sa = sqlalchemy_module()
        table = self.checkpoints
        query = sa.select(table.c.checkpoint).where(table.c.name == name)
        if lock:
            # Held to the end of the unit: a second runner of the projection waits here,
            # then reads the checkpoint this one saved (and the runner's guard stops it).
            query = query.with_for_update()
        value = conn.execute(query).scalar_one_or_none()
        return None if value is None else Checkpoint.parse(value)

    def save(self, conn: Connection, name: str, checkpoint: Checkpoint) -> None:
        sa = sqlalchemy_module()
        table = self.checkpoints
        text = str(checkpoint)
        updated = conn.execute(sa.update(table).where(table.c.name == name).values(checkpoint=text))
        if updated.rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(table).values(name=name, checkpoint=text))
        except sa.exc.IntegrityError as err:
            raise ProjectionConflictError(
                f"another runner saved the first checkpoint of {name!r} at the same time; nothing was applied"
            ) from err

    def delete(self, conn: Connection, name: str) -> None:
        sa = sqlalchemy_module()
        table = self.checkpoints
        conn.execute(sa.delete(table).where(table.c.name == name))

    def close(self) -> None:
        if self.owns_engine:
            self.engine.dispose()

    def describe(self) -> str:
        sa = sqlalchemy_module()
        if isinstance(self.source, (str, sa.URL, sa.Engine)):
            return repr(self.engine.url.render_as_string(hide_password=True))
        return repr(self.source)


def _engine_for_url(sa: Any, url: str | URL) -> Engine:
    """An engine for ``url``; on SQLite, each transaction ``BEGIN IMMEDIATE``.

    IMMEDIATE takes the write lock at the start of a unit, so a second runner waits
    there instead of failing to upgrade its read lock later (SQLAlchemy's recipe:
    the driver's own transaction handling is turned off, and the begin event says
    BEGIN IMMEDIATE).
    """
    engine: Engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _no_driver_transactions)
        sa.event.listen(engine, "begin", _begin_immediate)
    return engine


def _no_driver_transactions(dbapi_connection: Any, record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class _EngineUnit:
    """A unit that is a transaction of the target's engine, with its checkpoint table."""

    def __init__(self, tables: Tables, conn: Connection) -> None:
        self._tables = tables
        self._conn = conn

    @property
    def context(self) -> Connection:
        return self._conn

    @property
    def states(self) -> ProjectionStateStore | None:
        return None

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        return self._tables.load(self._conn, name, lock=True)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        self._tables.save(self._conn, name, checkpoint)

    def delete_checkpoint(self, name: str) -> None:
        self._tables.delete(self._conn, name)


class SQLAlchemyTarget:
    """A read model in SQLAlchemy Core tables, committed with its checkpoint (exactly once).

    ``metadata``: the read model's tables (``create_all`` when first used).
    ``database``: where they live: the sync event store itself (its own database; on
    PostgreSQL its schema), a SQLAlchemy ``Engine`` (yours: never disposed here), or a
    SQLAlchemy URL (the target's engine; :meth:`close` disposes it).
    ``checkpoint_table``: the table of checkpoints made beside the read model when it
    is not in a SQLite store's own file. Handlers get a ``sqlalchemy.Connection``.
    See the module's docstring for how each kind of database commits.
    """

    exactly_once = True

    def __init__(
        self, metadata: MetaData, database: object, *, checkpoint_table: str = CHECKPOINT_TABLE
    ) -> None:
        store_ok = not getattr(database, "is_async", False)
        if isinstance(database, SQLDatabase) and not store_ok:
            raise ConfigurationError(
                f"SQLAlchemyTarget runs on a sync store, and {database!r} is an asyncio store: "
                "use AsyncSQLAlchemyTarget"
            )
        self.tables = Tables(metadata, database, checkpoint_table, face="SQLAlchemyTarget", store_ok=store_ok)

    @property
    def metadata(self) -> MetaData:
        return self.tables.metadata

    @property
    def engine(self) -> Engine:
        """The engine of the read model's database; on a SQLite store, query the file with
        the store's transactions, or an engine of your own."""
        return self.tables.engine

    def _ensure_tables(self) -> None:
        tables = self.tables
        if not tables.needs_tables():
            return
        if tables.shared:
            with tables.store.transaction() as tx:
                conn = tables.lend(tx.connection)
                try:
                    tables.create_tables(conn)
                finally:
                    conn.close()
        else:
            tables.create_tables_with_engine()

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        self._ensure_tables()
        tables = self.tables
        if tables.shared:
            with tables.store.transaction() as tx:
                checkpoint: Checkpoint | None = tx.load_checkpoint(name)
                return checkpoint
        with tables.engine.connect() as conn:
            return tables.load(conn, name, lock=False)

    @contextmanager
    def unit(self) -> Iterator[_TransactionUnit[Connection] | _EngineUnit]:
        """One transaction of the read model's database; commits when the block ends."""
        self._ensure_tables()
        tables = self.tables
        if tables.shared:
            with tables.store.transaction() as tx:
                conn = tables.lend(tx.connection)
                try:
                    yield _TransactionUnit(tx, conn)
                finally:
                    conn.close()  # the store's transaction commits or rolls back
            return
        with tables.engine.begin() as conn:
            yield _EngineUnit(tables, conn)

    def close(self) -> None:
        """Dispose of the engine the target made (not of one you passed in)."""
        self.tables.close()

    def __enter__(self) -> SQLAlchemyTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLAlchemyTarget({self.tables.describe()})"
