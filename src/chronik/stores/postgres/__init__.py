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

Layout. The logic is written once, for asyncio: ``async_store.py`` (the store and
its transactions), ``async_reader.py`` (subscription hooks) and ``async_schema.py``
(checks and migrations). ``store.py``, ``reader.py`` and ``schema.py``, the sync
twins, are generated from them by ``tools/unasync.py`` (a test fails when
they are stale), so neither face hops threads and neither repeats the other.
``async_projections.py`` (projection state, and the inline projections' lock and
wait, with the guarantee they give) has its sync twin ``projections.py`` too.
``_common.py`` holds what both share without I/O, ``sql.py`` and ``migrations/`` the
SQL, ``_notify.py`` the two small parts that threads and tasks do differently
(sending notifications, waiting for them), ``_config.py`` the URL parsing.

The stores record projection state and dead letters (``ProjectionStateStore``) and
run append hooks (``AppendHooks``): the sync store runs chronik's inline projections;
the async one awaits hooks whose methods are coroutines.
"""

from typing import Any

from chronik.backend import Backend
from chronik.codec import EventRegistry
from chronik.stores.postgres.async_reader import AsyncPostgresLogReader
from chronik.stores.postgres.async_store import AsyncPostgresEventStore, AsyncPostgresTransaction
from chronik.stores.postgres.reader import PostgresLogReader
from chronik.stores.postgres.schema import check_schema
from chronik.stores.postgres.store import PostgresEventStore, PostgresTransaction

__all__ = [
    "AsyncPostgresEventStore",
    "AsyncPostgresLogReader",
    "AsyncPostgresTransaction",
    "PostgresEventStore",
    "PostgresLogReader",
    "PostgresTransaction",
    "backend",
    "check_schema",
    "open_async_store",
    "open_store",
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


backend = Backend("postgresql", open=open_store, open_async=open_async_store)
"""The ``postgresql://`` (and ``postgres://``) backend (entry points ``chronik.backends``)."""
