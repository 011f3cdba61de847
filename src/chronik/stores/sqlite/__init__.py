"""The embedded SQLite backend: ``chronik.connect("sqlite:///path.db")``."""

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from chronik.backend import AsyncStoreAdapter, Backend, SchemaStatus, parse_bool, parse_options
from chronik.codec import EventRegistry
from chronik.errors import ConfigurationError
from chronik.stores.sqlite.schema import check_schema, schema_status
from chronik.stores.sqlite.store import SQLiteEventStore
from chronik.stores.sqlite.writing import SQLiteTransaction

__all__ = [
    "SQLiteEventStore",
    "SQLiteTransaction",
    "backend",
    "check_schema",
    "check_store_schema",
    "open_async_store",
    "open_store",
    "store_size",
]


def _path(url: str) -> str:
    parts = urlsplit(url)
    if parts.netloc:
        raise ConfigurationError(
            f"SQLite URL {url!r} has a host; use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path:
        raise ConfigurationError(f"SQLite URL {url!r} names no file")
    return path


def open_store(url: str, registry: EventRegistry | None, options: dict[str, Any]) -> SQLiteEventStore:
    """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
    path = _path(url)
    opts = parse_options(
        url,
        options,
        {
            "synchronous": str.upper,
            "busy_timeout": float,
            "max_event_size": int,
            "migrate": parse_bool,
        },
    )
    return SQLiteEventStore(path, registry, **opts)


def open_async_store(
    url: str, registry: EventRegistry | None, options: dict[str, Any]
) -> AsyncStoreAdapter[SQLiteEventStore]:
    """The same URLs for asyncio: every call runs on a worker thread (``chronik.aio``)."""
    return AsyncStoreAdapter(open_store(url, registry, options))


def check_store_schema(url: str) -> SchemaStatus:
    """The migrations applied to, and pending for, the file at ``url``; read-only."""
    return schema_status(_path(url))


def store_size(url: str) -> int:
    """Bytes of the file at ``url`` and of its write-ahead log."""
    path = _path(url)
    total = 0
    for name in (path, f"{path}-wal"):
        try:
            total += os.stat(name).st_size
        except FileNotFoundError:
            pass
    return total


backend = Backend(
    "sqlite",
    open=open_store,
    open_async=open_async_store,
    check_schema=check_store_schema,
    store_size=store_size,
)
"""The ``sqlite://`` backend (entry point ``chronik.backends:sqlite``)."""
