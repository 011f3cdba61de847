"""The memory store, the reference, passes the whole conformance suite on both faces."""

import asyncio

import pytest

import chronik
from chronik.testing.conformance import CAPABILITIES, EventStoreConformance, StoreFactory, capabilities


class TestMemoryConformance(EventStoreConformance):
    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        # Each open of memory:// is a store of its own.
        return StoreFactory.from_url("memory://", shared=False)


def test_memory_declares_its_capabilities() -> None:
    # Every power on both faces: dropping one from either fails here, not as skips.
    with chronik.connect("memory://") as store:
        assert capabilities(store) == set(CAPABILITIES)
    async_store = chronik.connect_async("memory://")
    assert capabilities(async_store) == set(CAPABILITIES)
    asyncio.run(async_store.close())
