"""The in-memory backend: ``chronik.connect("memory://")``, the reference store.

The same file layout as the other backends (no SQL, no migrations): ``store.py`` (the
store), ``writing.py`` (transactions: every write is one), ``reader.py`` (the log the
store, its transactions and its readers share, and the subscription hooks),
``projection_state.py``.
"""

from typing import Any
from urllib.parse import urlsplit

from chronik.backend import AsyncStoreAdapter, Backend, parse_options
from chronik.codec import EventRegistry
from chronik.errors import ConfigurationError
from chronik.stores.memory.store import MemoryEventStore
from chronik.stores.memory.writing import MemoryTransaction

__all__ = ["MemoryEventStore", "MemoryTransaction", "backend", "open_async_store", "open_store"]


def open_store(url: str, registry: EventRegistry | None, options: dict[str, Any]) -> MemoryEventStore:
    """``memory://``: a new, empty store (each call its own)."""
    if urlsplit(url).netloc or urlsplit(url).path not in ("", "/"):
        raise ConfigurationError(f"memory store URL takes no host or path: {url!r} (use memory://)")
    opts = parse_options(url, options, {"max_event_size": int})
    return MemoryEventStore(registry, **opts)


def open_async_store(
    url: str, registry: EventRegistry | None, options: dict[str, Any]
) -> AsyncStoreAdapter[MemoryEventStore]:
    """``memory://`` for asyncio: calls run on worker threads (``chronik.aio``), as its
    transactions and append hooks hold a lock the event loop must never wait for."""
    return AsyncStoreAdapter(open_store(url, registry, options))


backend = Backend("memory", open=open_store, open_async=open_async_store)
"""The ``memory://`` backend (entry point ``chronik.backends:memory``)."""
