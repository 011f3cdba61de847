"""``chronik.connect`` and ``connect_async`` are typed with every power, so application
code calls ``transaction()`` and ``subscribe()`` on them without casts (mypy --strict
checks this file like every other)."""

import asyncio

import chronik
from chronik import NewEvent


def test_the_sync_store_has_every_power_without_a_cast() -> None:
    store: chronik.Store = chronik.connect("memory://")
    with store.transaction() as tx:
        result = tx.append("order-1", [NewEvent("OrderPlaced", {})])
        tx.save_checkpoint("reader", result.checkpoint)
    with store.subscribe() as subscription:
        [event] = subscription.next_batch(timeout=0)
    assert (event.stream_id, store.load_checkpoint("reader")) == ("order-1", event.checkpoint)
    assert isinstance(store, chronik.Store) and not chronik.is_async(store)
    store.close()


def test_the_asyncio_store_has_every_power_without_a_cast() -> None:
    async def main() -> str:
        store: chronik.AsyncStore = chronik.connect_async("memory://")
        async with store.transaction() as tx:
            await tx.append("order-2", [NewEvent("OrderPlaced", {})])
        async with store.subscribe() as subscription:
            [event] = await subscription.next_batch(timeout=0)
        assert isinstance(store, chronik.AsyncStore) and chronik.is_async(store)
        assert not isinstance(store, chronik.EventStore)
        await store.close()
        return event.stream_id

    assert asyncio.run(main()) == "order-2"
