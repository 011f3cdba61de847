"""The NATS JetStream backend: ``chronik.connect("nats://127.0.0.1:4222?stream=orders")``.

Needs the ``nats`` extra (nats-py) and a NATS server 2.9 or newer with JetStream.
Each store is one JetStream stream (``stream=``, default ``chronik``) and three
key-value buckets beside it (``<stream>-ids``, ``<stream>-state``, ``<stream>-keys``
for subjects' keys), created on first connect; several stores share a server under
different names. The URL may list several servers of a cluster: ``nats://h1:4222,h2:4222,h3:4222?stream=orders&replicas=3``.

Options, in the URL's query string or as keyword arguments:

``stream``            the JetStream stream's name (default ``chronik``)
``replicas``          copies of the stream and buckets in a cluster (default 1)
``storage``           ``file`` (default) or ``memory``
``duplicate_window``  seconds JetStream drops a re-published append (default 120)
``connect_timeout``   seconds to reach a server before giving up (default 5)
``request_timeout``   seconds to wait for each answer of the server (default 10)
``create``            create the stream and buckets when missing (default true)
``max_event_size``    largest encoded event in bytes (default 1 MiB); an append is
                      also bounded by the server's ``max_payload``, as one message

Layout (the same files as every backend): ``store.py`` (the asyncio store, and its
sync face over it), ``writing.py`` (appends: the protocol and why it is safe),
``reader.py`` (reading the log, subscription hooks), ``projection_state.py`` (the
key-value records), ``subject_keys.py`` (subjects' keys); with no I/O:
``_config.py`` (the URL), ``_subjects.py`` (stream ids as subjects),
``_messages.py`` (the stored batch, positions); ``_connection.py`` (the client,
creating the stream, pull consumers). ``docs/nats.md`` says what is
guaranteed, under which server settings.
"""

import asyncio
from typing import Any

from chronik.backend import Backend
from chronik.codec import EventRegistry
from chronik.stores.nats.reader import AsyncNatsLogReader
from chronik.stores.nats.store import AsyncNatsEventStore, NatsEventStore

__all__ = [
    "AsyncNatsEventStore",
    "AsyncNatsLogReader",
    "NatsEventStore",
    "backend",
    "open_async_store",
    "open_store",
    "store_size",
]


def open_store(url: str, registry: EventRegistry | None, options: dict[str, Any]) -> NatsEventStore:
    """Connect to the store at ``url`` (creating it when missing); used by ``chronik.connect``."""
    face = NatsEventStore(AsyncNatsEventStore(url, registry, **options))
    try:
        face.open()
    except BaseException:
        face.close()
        raise
    return face


def open_async_store(
    url: str, registry: EventRegistry | None, options: dict[str, Any]
) -> AsyncNatsEventStore:
    """The store at ``url``, connecting at first use; used by ``chronik.connect_async``."""
    return AsyncNatsEventStore(url, registry, **options)


def store_size(url: str) -> int:
    """Bytes the JetStream stream at ``url`` and its three buckets hold (read-only)."""

    async def measure() -> int:
        store = AsyncNatsEventStore(url, create=False)
        try:
            return await store.size()
        finally:
            await store.close()

    return asyncio.run(measure())


backend = Backend("nats", open=open_store, open_async=open_async_store, store_size=store_size)
"""The ``nats://`` backend (entry point ``chronik.backends:nats``)."""
