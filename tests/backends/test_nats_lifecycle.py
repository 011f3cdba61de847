"""NATS specifics of deleting and scavenging: purges give the space back, an append's
events go together, a soft delete whose metadata was lost still hides what it deleted."""

import asyncio

import pytest

import chronik
from chronik import NewEvent, StreamMetadata
from chronik.stores.nats import AsyncNatsEventStore, NatsEventStore, store_size

pytestmark = pytest.mark.nats


def _batch(n: int, text: str = "filler") -> list[NewEvent]:
    return [NewEvent("Noted", {"text": f"{text} {i}" * 20}) for i in range(n)]


def test_a_scavenge_gives_the_space_back(nats_store_url: str) -> None:
    with chronik.connect(nats_store_url) as store:
        for _ in range(50):
            store.append("big-1", _batch(20))
        store.append("small-1", _batch(1))
        before = store_size(nats_store_url)
        store.delete_stream("big-1")
        result = store.scavenge()
        assert (result.events, result.streams) == (1000, 1)
        assert store_size(nats_store_url) < before / 4
        assert [e.type for e in store.read_all() if e.stream_id == "big-1"] == ["$StreamDeleted"]


def test_an_append_s_events_are_removed_together(nats_store_url: str) -> None:
    # One message per append: a scavenge removes a message when all its events are hidden.
    with chronik.connect(nats_store_url) as store:
        store.append("s-1", _batch(3))  # versions 1-3, one message
        store.append("s-1", _batch(3))  # versions 4-6
        store.set_stream_metadata("s-1", StreamMetadata(max_count=4))
        assert [e.version for e in store.read_stream("s-1")] == [3, 4, 5, 6]
        assert store.scavenge().events == 0  # version 3 still shows, so 1-3 stay
        store.set_stream_metadata("s-1", StreamMetadata(max_count=3))
        assert store.scavenge().events == 3
        assert [e.version for e in store.read_all()] == [4, 5, 6]


def test_a_soft_delete_whose_metadata_was_lost_still_hides_its_events(nats_store_url: str) -> None:
    async def main() -> None:
        store = AsyncNatsEventStore(nats_store_url)
        try:
            await store.append("s-1", _batch(2))
            await store.delete_stream("s-1")
            # As if the process had died after the deletion event, before its metadata.
            await store.set_stream_metadata("s-1", StreamMetadata())
            assert (await store.get_stream_metadata("s-1")).truncate_before is None
            result = await store.append("s-1", _batch(1), chronik.NO_STREAM)
            assert result.version == 4
            assert [e.version for e in await store.read_stream("s-1")] == [4]
            assert (await store.get_stream_metadata("s-1")).truncate_before == 4
        finally:
            await store.close()

    asyncio.run(main())


def test_the_sync_face_declares_what_the_asyncio_store_has(nats_store_url: str) -> None:
    with chronik.connect(nats_store_url) as store:
        assert isinstance(store, NatsEventStore)
        assert isinstance(store, chronik.store.StreamDeletion)
        assert isinstance(store, chronik.store.StreamRetention)
        assert not isinstance(store, chronik.store.EventRepair)
