"""The PostgreSQL backend: ``chronik.connect("postgresql://user@host/db?schema=name")``.

Needs the ``postgres`` extra (psycopg 3 and psycopg-pool) and PostgreSQL 13 or
newer. Each store lives in its own schema (``chronik`` unless ``?schema=`` says
otherwise), created and migrated on first use; several stores can share a database
under different schema names.

Options, in the URL's query string or as keyword arguments (other query parameters
go to libpq, e.g. ``sslmode``, ``connect_timeout``):

``schema``               the store's schema (default ``chronik``)
``migrate``              apply pending migrations on open (default true)
``pool_min_size``        connections kept open (default 1)
``pool_max_size``        most connections at once (default 10)
``pool_timeout``         seconds to wait for a connection (default 30)
``notify``               wake readers with LISTEN/NOTIFY (default true)
``visibility_timeout``   seconds a read, or an append running inline projections,
                         waits for older transactions (default 5)
``max_event_size``       largest encoded event in bytes (default 1 MiB)
``read_model_schema``    where table names without a schema resolve in the store's
                         transactions (default: the store's schema; must exist)

Layout (the same files as every backend). The logic is written once, for asyncio,
in ``_async/``; ``_sync/`` holds the sync twins, generated from it by
``tools/unasync.py`` (a test fails when they are stale), so neither face hops
threads and neither repeats the other. In both:

``store.py``             the store class, thin: each method hands over to one below
``writing.py``           appending (the fast path, the careful path), transactions,
                         snapshots and checkpoints
``reader.py``            the store's reads, and subscription hooks (pages, waiting)
``schema.py``            checking the server and the schema, migrating
``projection_state.py``  projection state, dead letters, and the inline projections'
                         lock and wait, with the guarantee they give
``connections.py``       ``Connections``: the pool and what every operation needs
                         (statements, codec, hooks, closed state, readers); the store,
                         its transactions and its readers share it, and reach into
                         nothing else of each other

Shared by both faces, with no I/O: ``_common.py`` (constants, adapters, the server
check, error translation, rows as events), ``_decide.py`` (the append statement and
the careful path's decision), ``_projection_rows.py`` (projection states and dead
letters as rows), ``_config.py`` (the URL and options), ``_notify.py`` (the two small
parts that threads and tasks do differently: sending notifications, waiting for
them), ``sql.py`` and ``migrations/`` (the SQL).

The stores record projection state and dead letters (``ProjectionStateStore``) and
run append hooks (``AppendHooks``): the sync store runs chronik's inline projections;
the async one awaits hooks whose methods are coroutines.
"""

from typing import Any

from chronik.backend import Backend, SchemaStatus, pending_migrations
from chronik.codec import EventRegistry
from chronik.stores.postgres import sql
from chronik.stores.postgres._async.reader import AsyncPostgresLogReader
from chronik.stores.postgres._async.store import AsyncPostgresEventStore, AsyncPostgresTransaction
from chronik.stores.postgres._common import MIGRATIONS, translate
from chronik.stores.postgres._config import parse_config
from chronik.stores.postgres._sync.reader import PostgresLogReader
from chronik.stores.postgres._sync.schema import applied_migrations, check_schema, connect
from chronik.stores.postgres._sync.store import PostgresEventStore, PostgresTransaction

__all__ = [
    "AsyncPostgresEventStore",
    "AsyncPostgresLogReader",
    "AsyncPostgresTransaction",
    "PostgresEventStore",
    "PostgresLogReader",
    "PostgresTransaction",
    "backend",
    "check_schema",
    "check_store_schema",
    "open_async_store",
    "open_store",
    "store_size",
]


def open_store(url: str, registry: EventRegistry | None, options: dict[str, Any]) -> PostgresEventStore:
    """Open (connect, check, migrate) the store at ``url``; used by ``chronik.connect``."""
    store = PostgresEventStore(url, registry, **options)
    try:
        store.open()
    except BaseException:
        store.close()
        raise
    return store


def open_async_store(
    url: str, registry: EventRegistry | None, options: dict[str, Any]
) -> AsyncPostgresEventStore:
    """The store at ``url``, connecting at first use; used by ``chronik.connect_async``."""
    return AsyncPostgresEventStore(url, registry, **options)


def check_store_schema(url: str) -> SchemaStatus:
    """The migrations applied to, and pending for, the schema at ``url``; read-only."""
    import psycopg

    config = parse_config(url, {})
    conn = connect(config)
    try:
        applied = applied_migrations(conn, config)
    except psycopg.Error as err:
        raise translate(err, config.where) from err
    finally:
        conn.close()
    return SchemaStatus(applied, [m.name for m in pending_migrations(MIGRATIONS, applied, config.where)])


def store_size(url: str) -> int:
    """Bytes the schema at ``url`` takes: its tables with their indexes and TOAST; read-only."""
    import psycopg

    config = parse_config(url, {})
    conn = connect(config)
    try:
        row = conn.execute(sql.SCHEMA_SIZE, (config.schema,)).fetchone()
    except psycopg.Error as err:
        raise translate(err, config.where) from err
    finally:
        conn.close()
    return int(row[0]) if row else 0


backend = Backend(
    "postgresql",
    open=open_store,
    open_async=open_async_store,
    check_schema=check_store_schema,
    store_size=store_size,
)
"""The ``postgresql://`` (and ``postgres://``) backend (entry points ``chronik.backends``)."""
