"""Each face of the PostgreSQL store is a whole chronik store: the sync one a
``chronik.Store``, the asyncio one a ``chronik.AsyncStore``, and not the other."""

from __future__ import annotations

import asyncio

import pytest

import chronik
from chronik import NewEvent
from chronik.store import AsyncTransactional, Transactional, is_async
from chronik.stores.postgres import AsyncPostgresEventStore, PostgresEventStore

pytestmark = pytest.mark.postgres


def test_the_sync_store_is_a_store(postgres_store_url: str) -> None:
    with chronik.connect(postgres_store_url) as store:
        assert isinstance(store, PostgresEventStore)
        assert isinstance(store, chronik.Store)
        assert isinstance(store, Transactional)
        assert not isinstance(store, chronik.AsyncStore)
        assert not is_async(store)
        with store.transaction() as tx:
            tx.append("faces-1", [NewEvent("Noted", {"n": 1})])
        assert store.stream_info("faces-1").version == 1


def test_the_asyncio_store_is_an_async_store(postgres_store_url: str) -> None:
    async def main() -> None:
        async with chronik.connect_async(postgres_store_url) as store:
            assert isinstance(store, AsyncPostgresEventStore)
            assert isinstance(store, chronik.AsyncStore)
            assert isinstance(store, AsyncTransactional)
            assert not isinstance(store, chronik.Store)
            assert is_async(store)
            async with store.transaction() as tx:
                await tx.append("faces-1", [NewEvent("Noted", {"n": 1})])
            assert (await store.stream_info("faces-1")).version == 1

    asyncio.run(main())


def _as_stores(
    sync: PostgresEventStore, aio: AsyncPostgresEventStore
) -> tuple[chronik.Store, chronik.AsyncStore]:
    """Type-checked (mypy --strict): each class is the whole Protocol, without casts."""
    return sync, aio


def test_the_classes_are_typed_as_the_whole_protocols(postgres_store_url: str) -> None:
    sync = PostgresEventStore(postgres_store_url)
    aio = AsyncPostgresEventStore(postgres_store_url)
    try:
        typed_sync, typed_aio = _as_stores(sync, aio)  # the check is mypy's
        assert isinstance(typed_sync, chronik.Store) and isinstance(typed_aio, chronik.AsyncStore)
    finally:
        sync.close()
        asyncio.run(aio.close())
